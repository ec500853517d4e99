"""The local provider's run semantics on the real engine: languages, results, timeouts, caps."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import sandstorm
from sandstorm import ExecutionTimeout, TerminationReason


def test_get_provider_runs_python(local_root: Path) -> None:
    with sandstorm.get_provider("local", root=str(local_root / "sync")) as provider:
        assert provider.run("print(6*7)").stdout == "42\n"
        assert provider.list_workspaces() == []


def test_async_provider_runs_python_under_asyncio(local_root: Path) -> None:
    async def main() -> str:
        provider = sandstorm.get_async_provider("local", root=str(local_root / "async"))
        async with provider:
            result = await provider.run("print(6*7)")
            return result.stdout

    assert asyncio.run(main()) == "42\n"


def test_python_keeps_cold_start_semantics(lp: sandstorm.SyncProvider) -> None:
    code = "import sys\nprint(sys.argv, __name__)\nprint('err', file=sys.stderr)\nsys.exit(3)"
    result = lp.run(code)
    assert result.stdout == "['-c'] __main__\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 3
    assert result.reason is TerminationReason.EXITED
    assert result.provider == "local"


def test_python_traceback_matches_python_c(lp: sandstorm.SyncProvider) -> None:
    result = lp.run("x = 1\n1/0")
    assert result.exit_code == 1
    assert result.stderr == (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 2, in <module>\n'
        "ZeroDivisionError: division by zero\n"
    )
    syntax = lp.run("print((")
    assert syntax.exit_code == 1
    assert syntax.stderr.startswith('  File "<string>", line 1\n')
    assert "SyntaxError" in syntax.stderr


def test_python_future_flags_do_not_leak_and_modules_are_fresh(
    lp: sandstorm.SyncProvider,
) -> None:
    # the fork server uses `from __future__ import annotations`; user code must not inherit it
    result = lp.run("def f(x: int) -> None: pass\nprint(f.__annotations__)")
    assert result.stdout == "{'x': <class 'int'>, 'return': None}\n"
    lp.run("import json; json.marker = 1")
    assert lp.run("import json; print(hasattr(json, 'marker'))").stdout == "False\n"


def test_stdin_and_env(lp: sandstorm.SyncProvider) -> None:
    result = lp.run(
        "import os, sys; print(sys.stdin.read().upper(), os.environ['GREETING'])",
        stdin="abc",
        env={"GREETING": "hi"},
    )
    assert result.stdout == "ABC hi\n"


def test_exit_handlers_and_threads_run(lp: sandstorm.SyncProvider) -> None:
    code = (
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('bye'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.1), print('thread'))).start()\n"
    )
    assert lp.run(code).stdout == "thread\nbye\n"


@pytest.mark.parametrize("end", ["", "raise SystemExit(3)\n", "1/0\n"])
def test_output_of_the_c_library_is_not_lost(lp: sandstorm.SyncProvider, end: str) -> None:
    """A C extension's ``printf`` comes out where ``python -u -c`` prints it (its stdout
    unbuffered too), however the code ends."""
    code = 'import ctypes\nctypes.CDLL(None).printf(b"from C\\n")\nprint("from Python")\n' + end
    plain = subprocess.run(
        [sys.executable, "-I", "-S", "-u", "-c", code], capture_output=True, text=True
    )
    assert plain.stdout == "from C\nfrom Python\n"
    assert lp.run(code).stdout == plain.stdout


def test_what_the_code_leaves_open_is_finalized_as_at_exit(
    lp: sandstorm.SyncProvider, tmp_path: Path
) -> None:
    """As at a real interpreter exit: a file written and never closed keeps its data, and
    ``__del__`` methods of what the code's globals hold run (after ``atexit``)."""
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
    plain = subprocess.run(
        [sys.executable, "-I", "-S", "-u", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert plain.stdout == "at exit\nfinalized\n"
    workspace = lp.create_workspace()
    try:
        assert lp.run(code, workspace_id=workspace.id).stdout == plain.stdout
        assert lp.read_file(workspace.id, "left-open.txt") == b"kept"
    finally:
        lp.delete_workspace(workspace.id)


LEFT_OPEN = (
    "import asyncio\nloop = asyncio.new_event_loop()\n"
    "print(loop.run_until_complete(asyncio.sleep(0, 'ok')))\n",
    "import multiprocessing as mp\npool = mp.Pool(2)\nprint(pool.apply(abs, (-3,)))\n",
    "import sqlite3\nc = sqlite3.connect('db.sqlite')\nc.execute('create table t(x)')\n",
    "def g():\n    try:\n        yield 1\n    finally:\n        print('closed')\n"
    "it = g()\nnext(it)\n",
    "import weakref\nclass A: pass\na = A()\nweakref.finalize(a, print, 'finalized')\n",
)


@pytest.mark.parametrize("code", LEFT_OPEN, ids=["loop", "pool", "sqlite", "generator", "finalize"])
def test_what_is_left_open_ends_as_with_python_c(
    lp: sandstorm.SyncProvider, tmp_path: Path, code: str
) -> None:
    """Finalizers of what the code leaves open run with their modules whole (``__main__``
    is cleared first, as the interpreter does): output and status as ``python -u -c``."""
    plain = subprocess.run(
        [sys.executable, "-I", "-S", "-u", "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    result = lp.run(code)
    assert (result.stdout, result.stderr, result.exit_code) == (
        plain.stdout,
        plain.stderr,
        plain.returncode,
    )


def test_javascript_and_shell(lp: sandstorm.SyncProvider) -> None:
    js = lp.run("console.log(6*7); console.error('e'); process.exit(2)", language="javascript")
    assert (js.stdout, js.stderr, js.exit_code) == ("42\n", "e\n", 2)
    sh = lp.run("echo $((6*7)); echo oops >&2; exit 4", language="shell")
    assert (sh.stdout, sh.stderr, sh.exit_code) == ("42\n", "oops\n", 4)
    big = "x = 1\n" * 30_000 + "print(x)"
    assert lp.run(big).stdout == "1\n"
    big_sh = "true\n" * 30_000 + "echo done"
    assert lp.run(big_sh, language="shell").stdout == "done\n"


def test_signal_death_is_a_result(lp: sandstorm.SyncProvider) -> None:
    result = lp.run("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert result.exit_code == 128 + 15
    assert result.signal == 15
    assert result.reason is TerminationReason.SIGNALED


def test_unicode_output_round_trips(lp: sandstorm.SyncProvider) -> None:
    text = "héllo wörld ✓ 🎉 中文"
    assert lp.run(f"print({text!r})").stdout == text + "\n"
    assert lp.run(f"echo '{text}'", language="shell").stdout == text + "\n"


def test_timeout_kills_whole_tree(lp: sandstorm.SyncProvider, no_leftovers: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        lp.run("print('before', flush=True)\nwhile True: pass", timeout=1)
    assert time.monotonic() - started < 2
    assert info.value.stdout == "before\n"
    assert isinstance(info.value, TimeoutError)


def test_timeout_kills_double_forked_daemon(
    lp: sandstorm.SyncProvider,
    no_leftovers: str,
    find_processes: Callable[[str], list[int]],
) -> None:
    code = f"""
import os, subprocess, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '300', '{no_leftovers}'])
    os._exit(0)
time.sleep(0.3)
print('spawned', flush=True)
time.sleep(60)
"""
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        lp.run(code, timeout=3)
    # ended by the timeout, not by the code's sleep(60) nor the daemon's sleep 300 (a bound
    # far from the timeout: a loaded machine may take seconds more, which is not a failure)
    assert time.monotonic() - started < 30
    assert info.value.stdout == "spawned\n"
    assert find_processes(no_leftovers) == []


def test_background_process_dies_with_the_run(
    lp: sandstorm.SyncProvider,
    no_leftovers: str,
    find_processes: Callable[[str], list[int]],
) -> None:
    result = lp.run(f"setsid sleep 300 {no_leftovers} & echo started", language="shell")
    assert result.stdout == "started\n"
    assert find_processes(no_leftovers) == []


def test_output_is_capped_and_flagged(local_root: Path) -> None:
    with sandstorm.get_provider(
        "local", root=str(local_root / "cap"), output_cap=1 << 20
    ) as provider:
        result = provider.run(
            "import sys; sys.stdout.write('a' * (3 << 19)); print('e', file=sys.stderr)"
        )
        assert result.stdout_truncated
        assert not result.stderr_truncated
        assert len(result.stdout) == 1 << 20
        assert result.stderr == "e\n"
        assert result.exit_code == 0
        flood = provider.run("while True: print('y' * 1000)", timeout=20)
        assert flood.reason is TerminationReason.OUTPUT_LIMIT
        assert flood.stdout_truncated
        assert len(flood.stdout) == 1 << 20


def test_gigabyte_print_keeps_host_memory_bounded(lp: sandstorm.SyncProvider) -> None:
    lp.run("pass")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = lp.run("print('x' * 10**9)", timeout=60)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.stdout_truncated
    assert result.reason is TerminationReason.OUTPUT_LIMIT
    assert grown_mib < 40, f"host grew by {grown_mib:.0f} MiB"


def test_code_runs_unprivileged_in_fresh_namespaces(lp: sandstorm.SyncProvider) -> None:
    if os.geteuid() != 0:
        pytest.skip("the uid drop only applies when the host runs as root")
    result = lp.run(
        "import os, socket; print(os.getuid(), os.getgid(), os.getpid(), socket.gethostname());"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))"
    )
    first, procs = result.stdout.splitlines()
    uid, gid, pid, host = first.split()
    assert uid == gid, first
    assert 1_000_000 <= int(uid) <= 1_999_999, first
    assert host == "sandbox"
    assert int(pid) <= 3
    assert eval(procs) == ["1", pid]


def test_host_environment_is_invisible(local_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDSTORM_TEST_SECRET", "hunter2")
    with sandstorm.get_provider("local", root=str(local_root / "env")) as provider:
        result = provider.run("import os; print(dict(os.environ))")
        shell = provider.run("env; cat /proc/1/environ", language="shell")
        node = provider.run("console.log(JSON.stringify(process.env))", language="javascript")
    for out in (result.stdout, shell.stdout, node.stdout):
        assert "hunter2" not in out
        assert "SANDSTORM_TEST_SECRET" not in out
    env = eval(result.stdout)
    allowed = {"PATH", "HOME", "PWD", "LANG", "TMPDIR", "USER", "LOGNAME", "SHELL"}
    assert set(env) <= allowed | {"PYTHONUNBUFFERED"}
    assert "NODE_EXTRA_CA_CERTS" not in node.stdout


def test_concurrent_runs(local_root: Path) -> None:
    async def main() -> list[str]:
        provider = sandstorm.get_async_provider("local", root=str(local_root / "concurrent"))
        async with provider:
            ws = await provider.create_workspace()
            one_shots = [
                provider.run(f"import time; time.sleep(0.2); print({i})") for i in range(6)
            ]
            shared = [
                provider.run_in_workspace(ws, f"open('f{i}', 'w').write('x'); print('w{i}')")
                for i in range(4)
            ]
            results = await asyncio.gather(*one_shots, *shared)
            files = sorted(info.name for info in await provider.list_files(ws))
            assert files == ["f0", "f1", "f2", "f3"]
            return [r.stdout.strip() for r in results]

    started = time.monotonic()
    outputs = asyncio.run(main())
    assert outputs == [str(i) for i in range(6)] + [f"w{i}" for i in range(4)]
    assert time.monotonic() - started < 5


def test_server_restarts_after_dying(local_root: Path) -> None:
    from sandstorm.local import LocalProvider

    with sandstorm.get_provider("local", root=str(local_root / "restart")) as provider:
        assert provider.run("print(1)").stdout == "1\n"
        impl = provider.async_provider
        assert isinstance(impl, LocalProvider)
        engine = impl._engine
        assert engine is not None
        pid = engine.server.pid
        assert pid is not None
        os.kill(pid, 9)
        time.sleep(0.1)
        assert provider.run("print(2)").stdout == "2\n"
        assert engine.server.pid not in (None, pid)


def test_close_releases_server_and_cgroups(local_root: Path) -> None:
    from sandstorm.local import LocalProvider

    provider = sandstorm.get_provider("local", root=str(local_root / "close"))
    ws = provider.create_workspace(memory=64)
    provider.run_in_workspace(ws, "print(1)")
    impl = provider.async_provider
    assert isinstance(impl, LocalProvider)
    engine = impl._engine
    assert engine is not None
    pid = engine.server.pid
    name = engine.cgroups.name
    provider.close()
    leftovers = [
        str(p)
        for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu")
        for p in Path(root).glob(f"**/{name}")
    ]
    assert leftovers == []
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.02)
    # persistent workspaces survive the provider
    with sandstorm.get_provider("local", root=str(local_root / "close")) as again:
        assert [w.id for w in again.list_workspaces()] == [ws.id]
        assert again.run_in_workspace(ws.id, "print(2)").stdout == "2\n"
        again.delete_workspace(ws.id)


def test_large_stdin_and_child_interpreter(lp: sandstorm.SyncProvider) -> None:
    data = "x" * (5 << 20)
    result = lp.run("import sys; print(len(sys.stdin.read()))", stdin=data)
    assert result.stdout == f"{5 << 20}\n"
    child = lp.run(
        "import subprocess, sys\n"
        "out = subprocess.run([sys.executable, '-c', 'print(6*7)'], capture_output=True)\n"
        "print(out.stdout.decode().strip(), out.returncode)"
    )
    assert child.stdout == "42 0\n", child.stderr


def test_home_and_cwd_are_the_workspace(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    result = lp.run_in_workspace(
        ws, "import os; print(os.getcwd() == os.environ['HOME'] == os.path.expanduser('~'))"
    )
    assert result.stdout == "True\n"
    lp.run_in_workspace(ws, "open('mod_here.py', 'w').write('X = 5')")
    assert lp.run_in_workspace(ws, "import mod_here; print(mod_here.X)").stdout == "5\n"


@pytest.mark.parametrize("prewarm", [0, 3])
def test_cold_and_prebuilt_sandboxes_behave_alike(
    local_root: Path,
    prewarm: int,
    no_leftovers: str,
    find_processes: Callable[[str], list[int]],
) -> None:
    root = local_root / f"prewarm{prewarm}"
    with sandstorm.get_provider("local", root=str(root), prewarm=prewarm) as provider:
        ws = provider.create_workspace()
        first = provider.run_in_workspace(
            ws, "import os, sys; open('f', 'w').write('1'); print(os.getpid(), sys.argv)"
        )
        assert first.stdout.split(" ", 1)[1] == "['-c']\n"
        assert provider.run_in_workspace(ws, "print(open('f').read())").stdout == "1\n"
        assert provider.run("1/0").stderr.endswith("ZeroDivisionError: division by zero\n")
        with pytest.raises(ExecutionTimeout):
            provider.run(
                f"import subprocess; subprocess.Popen(['sleep', '60', '{no_leftovers}'])\n"
                "while True: pass",
                timeout=0.5,
            )
        assert find_processes(no_leftovers) == []
        provider.delete_workspace(ws)


def _children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.append(int(entry))
    return found


def test_the_warm_pool_is_built_back_after_a_run_not_beside_it(local_root: Path) -> None:
    """Building a sandbox takes the CPU a run needs: the server builds the pool back up
    once the host says the run is over, not while it runs."""
    from sandstorm.local import LocalProvider

    async def main() -> tuple[int, int]:
        provider = sandstorm.get_async_provider("local", root=str(local_root / "refill"), prewarm=2)
        assert isinstance(provider, LocalProvider)
        async with provider:
            ws = await provider.create_workspace()
            await provider.run("pass", workspace_id=ws.id)
            assert provider._engine is not None
            server = provider._engine.server.pid
            assert server is not None

            async def settled(count: int) -> int:
                for _ in range(500):
                    found = len(_children(server))
                    if found == count:
                        return found
                    await asyncio.sleep(0.01)
                return found

            assert await settled(2) == 2  # the pool: two pre-built sandboxes
            printed = asyncio.Event()
            running = asyncio.ensure_future(
                provider.run(
                    "import time; print('go', flush=True); time.sleep(0.5)",
                    workspace_id=ws.id,
                    on_stdout=lambda _: printed.set(),
                )
            )
            await asyncio.wait_for(printed.wait(), 10)
            during = len(_children(server))
            assert (await running).stdout == "go\n"
            after = await settled(2)
            await provider.delete_workspace(ws)
            return during, after

    during, after = asyncio.run(main())
    assert during == 2  # the run's sandbox and the one left in the pool: none built beside it
    assert after == 2  # built back up once the run was over


_FIND_NOTE_PIPE = (
    "import os, stat\n"
    "pipes = [fd for fd in range(3, 1024)\n"
    "         if os.path.exists('/proc/self/fd/%d' % fd)\n"
    "         and stat.S_ISFIFO(os.fstat(fd).st_mode)]\n"
)


@pytest.mark.parametrize(
    ("note", "expected"),
    [(b"x\x07", ("", 7)), (b"garbage", ("went on\n", 0)), (b"x", ("went on\n", 0))],
)
def test_the_exit_note_is_only_an_exit(
    lp: sandstorm.SyncProvider, note: bytes, expected: tuple[str, int]
) -> None:
    """The payload tells init its exit code before its teardown (one pipe, which the
    code can reach): a well-formed note from the code ends the run with that code, as
    ``os._exit`` would; anything else is ignored and the run goes on."""
    result = lp.run(
        _FIND_NOTE_PIPE + f"assert len(pipes) == 1, pipes\nos.write(pipes[0], {note!r})\n"
        "import time\ntime.sleep(0.3)\nprint('went on')\n"
    )
    assert (result.stdout, result.exit_code) == expected, result.stderr


COLD_CASES = [
    "print('hi')",
    "import sys; sys.exit(3)",
    "import sys; sys.exit('bye')",
    "import sys; sys.exit(None)",
    "import os; os._exit(7)",
    "raise KeyboardInterrupt",
    "def f():\n    raise ValueError('deep')\nf()",
    "x = input()",
    "import sys; print(sys.stdin.read() == '')",
    "import sys; print(len(sys.argv), sys.argv[0], __name__, '__file__' in dir())",
    "print('unterminated",
    "import warnings; warnings.warn('careful')",
    "class E(Exception):\n    pass\n"
    "try:\n    1/0\nexcept ZeroDivisionError as e:\n    raise E('wrapped') from e",
]


@pytest.mark.parametrize("code", COLD_CASES)
def test_same_result_as_a_cold_interpreter(
    lp: sandstorm.SyncProvider, code: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    cold = subprocess.run(
        [os.path.realpath(sys.executable), "-I", "-S", "-c", code],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    )
    result = lp.run(code)
    expected_code = cold.returncode if cold.returncode >= 0 else 128 - cold.returncode
    assert result.exit_code == expected_code
    assert result.stdout == cold.stdout.decode()
    assert result.stderr == cold.stderr.decode()
