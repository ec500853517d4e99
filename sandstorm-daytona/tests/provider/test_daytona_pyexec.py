"""Python's one-program run (``_pyexec``), fed to the real shells a daemon may pick.

The wrapper runs the code in a forked child of its own ``python3`` instead of a second
interpreter: these tests hold it to what ``python3 -u <run dir>/main.py`` does (run here
as a plain subprocess for comparison), to the run protocol (timeout, kill, uploads,
resend), and check where it must start an interpreter after all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sandstorm_daytona._command import (
    INLINE_LIMIT,
    PYTHON_WRAPPER,
    PYTHON_WRAPPER_KEY,
    ExecOutcome,
    build_exec,
    kill_command,
    parse_exec,
    run_dir,
)

from .shells import SHELLS, require_shell
from .test_daytona_exec_command import alive, execute, gone, run, tools

pytestmark = pytest.mark.parametrize("shell", SHELLS)

PYTHON = shutil.which("python3")


def fresh(code: str, tmp_path: Path, stdin: bytes = b"", path: str | None = None) -> ExecOutcome:
    """What ``python3 -u main.py`` does with ``code`` (paths shown as ``<D>``)."""
    directory = tmp_path / "fresh"
    directory.mkdir(exist_ok=True)
    (directory / "main.py").write_text(code)
    path = path or os.environ["PATH"]
    done = subprocess.run(
        [shutil.which("python3", path=path) or "python3", "-u", str(directory / "main.py")],
        input=stdin,
        capture_output=True,
        env={"PATH": path, "HOME": str(tmp_path), "A": "a b"},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    code_ = done.returncode if done.returncode >= 0 else 128 - done.returncode
    out, err = (s.decode().replace(str(directory), "<D>") for s in (done.stdout, done.stderr))
    return ExecOutcome(out, err, code_, False)


def wrapped(
    shell: str, code: str, tmp_path: Path, stdin: bytes = b"", path: str | None = None
) -> ExecOutcome:
    """The same code through the wrapper (paths shown as ``<D>``)."""
    outcome = run(shell, tmp_path, code, stdin=stdin, path=path)
    out, err = (
        re.sub(r"/tmp/\.sandstorm-[0-9a-f]+", "<D>", s) for s in (outcome.stdout, outcome.stderr)
    )
    return ExecOutcome(out, err, outcome.exit_code, outcome.timed_out)


PROBE = """\
import sys, os, atexit, threading, time
import __main__
shown = {k: type(v).__name__ if k in ('__loader__', '__builtins__') else v
         for k, v in globals().items()}
print(shown)
print(sys.argv, getattr(sys, 'orig_argv', [])[1:], sys.path[0], os.environ['A'])
print(__main__.__dict__ is globals(), sorted(sys.modules))
print(sys.stdout.write_through, sys.stdout.line_buffering, repr(sys.stdin.read()))
def late():
    time.sleep(0.2)
    print('thread done')
threading.Thread(target=late).start()
atexit.register(lambda: print('atexit', '__file__' in globals()))
"""


def test_the_code_runs_as_a_script(shell: str, tmp_path: Path) -> None:
    got = wrapped(shell, PROBE, tmp_path, b"in")
    assert got == fresh(PROBE, tmp_path, b"in")
    assert got.stdout.endswith("thread done\natexit False\n")


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        ("def f():\n    1/0\nf()\n", 1),
        ("try:\n    1/0\nexcept Exception as e:\n    raise ValueError('v') from e\n", 1),
        ("def (:\n", 1),
        ("import sys\nsys.exit('bye')", 1),
        ("raise SystemExit(3)", 3),
        ("import os\nprint('x')\nos._exit(5)", 5),
        ("import atexit\natexit.register(print, 'at exit')\nraise KeyboardInterrupt", 130),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", 143),
        ("import sys\nsys.excepthook = lambda *a: print('hooked', a[0].__name__)\n1/0", 1),
    ],
)
def test_exits_and_tracebacks_as_a_script(
    shell: str, tmp_path: Path, code: str, exit_code: int
) -> None:
    got = wrapped(shell, code, tmp_path)
    assert got == fresh(code, tmp_path)
    assert got.exit_code == exit_code


def test_pickle_and_spawned_processes_find_main(shell: str, tmp_path: Path) -> None:
    code = (
        "import multiprocessing as mp, pickle\n"
        "def square(x):\n    return x * x\n"
        "if __name__ == '__main__':\n"
        "    print(pickle.loads(pickle.dumps(square)) is square)\n"
        "    with mp.get_context('spawn').Pool(2) as pool:\n"
        "        print(pool.map(square, [1, 2, 3]))\n"
    )
    assert wrapped(shell, code, tmp_path) == ExecOutcome("True\n[1, 4, 9]\n", "", 0, False)


def test_an_env_that_changes_start_up_gets_its_own_interpreter(shell: str, tmp_path: Path) -> None:
    # a python3 of the code's PATH (which announces itself), and a module on PYTHONPATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\necho own >&2\nexec {PYTHON} "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.py").write_text("NAME = 'mine'\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(tmp_path / "lib")}
    code = "import sys, mine\nprint(mine.NAME, sys.argv[0].endswith('/main.py'))"
    assert run(shell, tmp_path, code, env=env) == ExecOutcome("mine True\n", "own\n", 0, False)
    # an env that changes nothing an interpreter reads as it starts: no second one
    env = {"PATH": os.environ["PATH"], "OTHER": "x"}
    code = "import os\nprint(os.environ['OTHER'])"
    assert run(shell, tmp_path, code, env=env) == ExecOutcome("x\n", "", 0, False)


def test_the_env_stays_off_the_wrappers_command_line_and_its_own_off_the_code(
    shell: str, tmp_path: Path
) -> None:
    # any process may read a command line (/proc/<pid>/cmdline), not another's environment
    env = {"SECRET": "s3cr3t-value", "EMPTY": "", "UNICODE": "\u00e9 \u4e2d\n="}
    code = "import os\nprint(sorted(k for k in os.environ if 'SANDSTORM' in k))\n"
    code += "print([os.environ[k] for k in ('SECRET', 'EMPTY', 'UNICODE')])\n"
    code += "line = open(f'/proc/{os.getppid()}/cmdline', 'rb').read()\n"
    code += "print(os.environ['SECRET'].encode() in line, b'-c' in line)"
    outcome = run(shell, tmp_path, code, env=env)
    assert outcome == ExecOutcome(f"[]\n{list(env.values())}\nFalse True\n", "", 0, False)


def test_binary_stdin_and_any_output_bytes(shell: str, tmp_path: Path) -> None:
    code = (
        "import sys\ndata = sys.stdin.buffer.read()\nprint(data.hex())\n"
        "sys.stdout.buffer.write(b'\\x00\\xff\\r\\n')"
    )
    outcome = run(shell, tmp_path, code, stdin=b"\x00\xff\xfe a")
    assert outcome.stdout.encode("utf-8", "surrogateescape").startswith(b"00fffe2061\n\x00")
    assert outcome.exit_code == 0


def test_timeout_kills_the_group_and_keeps_partial_output(shell: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '300'])\nopen({str(pid_file)!r}, 'w').write("
        "str(child.pid))\nprint('before')\nprint('oops', file=sys.stderr)\ntime.sleep(300)"
    )
    started = time.monotonic()
    outcome = run(shell, tmp_path, code, timeout=1)
    assert time.monotonic() - started < 10
    assert outcome == ExecOutcome("before\n", "oops\n", 137, True)
    child = int(pid_file.read_text())
    assert gone(child)


def test_what_the_code_leaves_running_dies_with_it(shell: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '300'], stdout=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\nprint('left')"
    )
    assert run(shell, tmp_path, code) == ExecOutcome("left\n", "", 0, False)
    child = int(pid_file.read_text())
    assert gone(child)


def test_output_past_the_cap_stops_the_code(shell: str, tmp_path: Path) -> None:
    code = "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)"
    outcome = run(shell, tmp_path, code, max_output=10000)
    assert outcome.stdout == "x" * 10001
    assert "BrokenPipeError" in outcome.stderr
    assert not outcome.timed_out


def test_uploaded_code_and_stdin(shell: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:16]
    code = "# " + "x" * INLINE_LIMIT + "\nimport sys\nprint(len(sys.stdin.read()))"
    script = build_exec(token, "python", code, {}, b"y" * 1000, 1 << 20, 20)
    assert set(script.uploads) == {
        f".sandstorm-upload-{token}/main.py",
        f".sandstorm-upload-{token}/stdin",
    }
    for name, data in script.uploads.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    reply = execute(shell, script.command, tmp_path)
    shutil.rmtree(run_dir(token), ignore_errors=True)
    assert parse_exec(token, reply) == ExecOutcome("1000\n", "", 0, False)
    assert not (tmp_path / f".sandstorm-upload-{token}").exists()


def test_a_kill_ends_an_abandoned_python_run(shell: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:16]
    script = build_exec(token, "python", "import time\ntime.sleep(300)", {}, None, 1000, 600)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    running = subprocess.Popen(
        [require_shell(shell)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env
    )
    assert running.stdin is not None
    running.stdin.write(script.command.encode())
    running.stdin.close()
    pgid = Path(f"/tmp/.sandstorm-{token}/pgid")
    for _ in range(250):
        if pgid.exists() and pgid.read_text():
            break
        time.sleep(0.02)
    code = int(pgid.read_text())
    execute(shell, kill_command(token, keyed=True), tmp_path)
    running.wait(timeout=20)
    assert not alive(code)
    assert not (tmp_path / ".cache" / "sandstorm-runs" / token).exists()
    assert not Path(f"/tmp/.sandstorm-{token}").exists()


def test_without_python3_on_the_daemons_path_the_shell_wrapper_runs_it(
    shell: str, tmp_path: Path
) -> None:
    names = ("sh", "mkdir", "rm", "mv", "head", "base64", "sleep", "find", "setsid", "timeout")
    daemon = tools(tmp_path / "daemon", *names)
    code_path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    code = "import os\nprint('ran', os.environ['B'])"
    outcome = run(shell, tmp_path, code, path=daemon, env={"PATH": code_path, "B": "b"})
    assert outcome == ExecOutcome("ran b\n", "", 0, False)


def test_the_wrapper_is_sent_without_quotes_to_escape(shell: str) -> None:
    assert "'" not in PYTHON_WRAPPER
    compile(PYTHON_WRAPPER, "<string>", "exec")


def test_the_wrapper_is_compiled_once_per_sandbox(shell: str, tmp_path: Path) -> None:
    """Its compiled form is kept in the run keys' directory and used by the next run;
    a damaged copy only costs a compile (and is written again)."""
    import marshal

    assert run(shell, tmp_path, "print(1)").stdout == "1\n"
    kept = list((tmp_path / ".cache" / "sandstorm-runs").glob(f"pyexec-{PYTHON_WRAPPER_KEY}.*"))
    assert len(kept) == 1, kept
    # the next run executes what is kept: a planted definition shows
    planted = compile(
        PYTHON_WRAPPER.replace("def _emit(reply: bytes) -> None:\n view = memoryview(reply)",
                               "def _emit(reply: bytes) -> None:\n os.write(1, b'planted')\n"
                               " view = memoryview(reply)"),
        "<string>", "exec", dont_inherit=True,
    )  # fmt: skip
    kept[0].write_bytes(marshal.dumps(planted))
    token = uuid.uuid4().hex[:16]
    script = build_exec(token, "python", "print(2)", {}, None, 1 << 20, 20)
    reply = execute(shell, script.command, tmp_path)
    shutil.rmtree(run_dir(token), ignore_errors=True)
    assert reply.startswith("planted"), reply
    kept[0].write_bytes(b"not a code object")
    assert run(shell, tmp_path, "print(3)") == ExecOutcome("3\n", "", 0, False)
    assert isinstance(marshal.loads(kept[0].read_bytes()), type(planted))


def test_what_the_code_leaves_is_finalized_as_at_exit(shell: str, tmp_path: Path) -> None:
    """The code's process skips tearing down the interpreter it was forked from, but what
    the code's modules hold is finalized as at a real exit: ``__del__`` runs after atexit,
    a file written and never closed keeps its data."""
    code = (
        "import atexit\n"
        "class Noisy:\n"
        "    def __del__(self):\n"
        "        print('finalized')\n"
        "noisy = Noisy()\n"
        "log = open('left-open.txt', 'w')\n"
        "log.write('kept')\n"
        "atexit.register(print, 'at exit')\n"
    )
    plain = fresh(code, tmp_path)
    assert plain == ExecOutcome("at exit\nfinalized\n", "", 0, False)
    (tmp_path / "left-open.txt").unlink()
    assert wrapped(shell, code, tmp_path) == plain
    assert (tmp_path / "left-open.txt").read_text() == "kept"


LEFT_OPEN = {
    "event loop": "import asyncio\nloop = asyncio.new_event_loop()\n"
    "print(loop.run_until_complete(asyncio.sleep(0, 'ok')))\n",
    "process pool": "import multiprocessing as mp\nif __name__ == '__main__':\n"
    "    pool = mp.Pool(2)\n    print(pool.apply(abs, (-3,)))\n",
    "sqlite": "import sqlite3\nc = sqlite3.connect('db.sqlite')\n"
    "c.execute('create table if not exists t(x)')\nc.commit()\nprint('ok')\n",
    "generator": "def g():\n    try:\n        yield 1\n    finally:\n        print('closed')\n"
    "it = g()\nnext(it)\n",
    "weakref.finalize": "import weakref\nclass A: pass\na = A()\n"
    "weakref.finalize(a, print, 'finalized')\n",
}
"""Programs that end with things still open, whose finalizers need their modules whole."""


@pytest.mark.parametrize("name", LEFT_OPEN)
def test_what_is_left_open_ends_as_in_a_script(shell: str, tmp_path: Path, name: str) -> None:
    assert wrapped(shell, LEFT_OPEN[name], tmp_path) == fresh(LEFT_OPEN[name], tmp_path)
