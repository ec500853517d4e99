"""The one-request run (``build_exec``), fed to the real shells a daemon may pick.

The daemon writes an execute command into a fresh shell's stdin (zsh, else bash, else
sh), and answers stdout and stderr combined: these tests do the same with zsh, bash and
dash and read the answer back with ``parse_exec``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from sandstorm_daytona._command import (
    ExecOutcome,
    build_exec,
    exec_marker,
    kill_command,
    parse_exec,
    run_dir,
)

from .shells import SHELLS, require_shell

pytestmark = pytest.mark.parametrize("shell", SHELLS)


def execute(shell: str, command: str, home: Path, path: str | None = None) -> str:
    """What the daemon answers: the command through the shell's stdin, output combined."""
    env = {"PATH": path or os.environ["PATH"], "HOME": str(home)}
    done = subprocess.run(
        [require_shell(shell)],
        input=command.encode(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=home,
        timeout=60,
        check=False,
    )
    return done.stdout.decode("utf-8", errors="replace")


def run(
    shell: str,
    home: Path,
    code: str,
    *,
    language: str = "python",
    timeout: float = 20,
    max_output: int = 1 << 20,
    token: str | None = None,
    stdin: bytes | None = None,
    done: tuple[str, ...] = (),
    path: str | None = None,
    env: dict[str, str] | None = None,
) -> ExecOutcome:
    token = token or uuid.uuid4().hex[:16]
    env = {"A": "a b"} if env is None else env
    script = build_exec(token, language, code, env, stdin, max_output, timeout, done)
    assert script.uploads == {}
    reply = execute(shell, script.command, home, path)
    # the run's directory stays for the sandbox's next run to remove: this test removes it
    shutil.rmtree(run_dir(token), ignore_errors=True)
    outcome = parse_exec(token, reply)
    assert outcome is not None, reply
    return outcome


def test_streams_apart_exit_code_env_and_stdin(shell: str, tmp_path: Path) -> None:
    code = (
        "import os, sys\nprint('out', os.environ['A'])\nprint('err', file=sys.stderr)\n"
        "print(sys.stdin.read())\nsys.exit(3)"
    )
    outcome = run(shell, tmp_path, code, stdin=b"in")
    assert outcome == ExecOutcome("out a b\nin\n", "err\n", 3, False)


def test_any_bytes_come_back_exact_even_the_markers(shell: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:16]
    marker = exec_marker(token)
    code = (
        "import sys\n"
        f"sys.stdout.write({marker!r} + '\\n' + {marker!r} + ' 0 1\\n')\n"
        "sys.stdout.flush()\n"
        "sys.stdout.buffer.write(b'\\x00nul\\r\\n\\x01\\x01\\x01@@frame no newline')\n"
        "sys.stderr.write('\\u00e9\\u4e2d')"
    )
    outcome = run(shell, tmp_path, code, token=token)
    assert outcome.stdout == f"{marker}\n{marker} 0 1\n\x00nul\r\n\x01\x01\x01@@frame no newline"
    assert outcome.stderr == "\u00e9\u4e2d"
    assert (outcome.exit_code, outcome.timed_out) == (0, False)


def test_timeout_kills_the_group_and_keeps_partial_output(shell: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = f"sleep 300 & echo $! > {pid_file}\necho before\necho oops >&2\nsleep 300\necho after"
    started = time.monotonic()
    outcome = run(shell, tmp_path, code, language="shell", timeout=1)
    assert time.monotonic() - started < 10
    assert outcome.timed_out
    assert (outcome.stdout, outcome.stderr) == ("before\n", "oops\n")
    child = int(pid_file.read_text())
    assert gone(child)  # the whole process group is gone


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """Whether ``pid`` ends within 5 s (a killed process may take a moment to go)."""
    for _ in range(250):
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def test_output_is_cut_in_the_sandbox(shell: str, tmp_path: Path) -> None:
    code = "import sys\nsys.stdout.write('x' * 100000)\nsys.stderr.write('y' * 10)"
    outcome = run(shell, tmp_path, code, max_output=1000)
    assert outcome.stdout == "x" * 1001  # one byte past the cap tells the caller it was cut
    assert outcome.stderr == "y" * 10


def test_a_resent_command_answers_the_first_result_without_running_again(
    shell: str, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:16]
    code = "open('runs.txt', 'a').write('x')\nprint('once')"
    first = run(shell, tmp_path, code, token=token)
    again = run(shell, tmp_path, code, token=token)
    assert first == again == ExecOutcome("once\n", "", 0, False)
    assert (tmp_path / "runs.txt").read_text() == "x"
    kept = tmp_path / ".cache" / "sandstorm-runs" / token
    assert kept.is_dir()
    run(shell, tmp_path, "print(1)", done=(token,))  # the next run removes what was kept
    assert not kept.exists()
    assert not list(Path("/tmp").glob(f".sandstorm-{token}*"))  # the run dir is gone


def test_kill_removes_an_abandoned_run_and_its_key(shell: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:16]
    script = build_exec(token, "shell", "sleep 300", {}, None, 1000, 600)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    running = subprocess.Popen(
        [require_shell(shell)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env
    )
    assert running.stdin is not None
    running.stdin.write(script.command.encode())
    running.stdin.close()
    key = tmp_path / ".cache" / "sandstorm-runs" / token
    pgid = Path(f"/tmp/.sandstorm-{token}/pgid")
    for _ in range(250):
        if pgid.exists() and pgid.read_text():
            break
        time.sleep(0.02)
    code = int(pgid.read_text())
    execute(shell, kill_command(token, keyed=True), tmp_path)
    running.wait(timeout=20)  # the wrapper finishes once its code is killed
    assert not alive(code)
    assert not key.exists()
    assert not Path(f"/tmp/.sandstorm-{token}").exists()


def test_a_reply_without_a_frame_is_none(shell: str, tmp_path: Path) -> None:
    assert parse_exec("0123456789abcdef", "sh: 1: base64: not found\n") is None


def tools(directory: Path, *names: str) -> str:
    """A PATH of one directory holding only ``names`` (links to this machine's programs)."""
    directory.mkdir()
    for name in names:
        found = shutil.which(name)
        assert found is not None, name
        (directory / name).symlink_to(found)
    return str(directory)


WRAPPER_TOOLS = ("sh", "mkdir", "rm", "mv", "head", "base64", "sleep", "find", "python3", "bash")


# Without `timeout` the wrapper falls back on a watchdog under setsid, and without setsid
# on a watchdog that can kill the code alone (what the code started would outlive it, so
# that case starts nothing): zsh and dash run the first, bash the second.
def test_the_timeout_fallbacks(shell: str, tmp_path: Path) -> None:
    extra = () if shell == "bash" else ("setsid",)
    path = tools(tmp_path / "bin", *WRAPPER_TOOLS, *extra)
    pid_file = tmp_path / "child.pid"
    if shell == "bash":
        code = "import sys, time\nprint('before', flush=True)\nsys.stderr.write('oops\\n')\n"
        code += f"open({str(pid_file)!r}, 'w').write(str(__import__('os').getpid()))\n"
        code += "time.sleep(300)"
        outcome = run(shell, tmp_path, code, timeout=0.5, path=path)
    else:
        code = f"sleep 300 & echo $! > {pid_file}\necho before\necho oops >&2\nsleep 300"
        outcome = run(shell, tmp_path, code, language="shell", timeout=0.5, path=path)
    assert outcome == ExecOutcome("before\n", "oops\n", outcome.exit_code, True)
    child = int(pid_file.read_text())
    assert gone(child)


def test_a_kill_before_the_deadline_is_no_timeout_whatever_path_the_code_gets(
    shell: str, tmp_path: Path
) -> None:
    # the code's PATH has neither setsid nor timeout: the wrapper found them on its own
    code = "import os\nprint(os.environ['PATH'], flush=True)\nos.kill(os.getpid(), 9)"
    env = {"PATH": tools(tmp_path / "only", "python3")}
    outcome = run(shell, tmp_path, code, env=env)
    assert outcome == ExecOutcome(env["PATH"] + "\n", "", 137, False)
