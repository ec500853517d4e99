"""sandstorm.adapters' process runner and directory store, on real host processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandstorm
from sandstorm.adapters import DirectoryStore, clean_env, decode_prefix, run_process

DAEMON = """
import os, subprocess, sys, time
code = "import os, time\\nopen('daemon.pid', 'w').write(str(os.getpid()))\\ntime.sleep(60)"
subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("started", flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(path: Path) -> int:
    for _ in range(200):
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_decode_prefix_drops_only_a_cut_character() -> None:
    euro = "€".encode()
    assert decode_prefix(b"a" + euro[:2], truncated=True) == "a"
    assert decode_prefix(b"a" + euro[:2], truncated=False) == "a\ufffd"
    assert decode_prefix(b"a\xffb", truncated=True) == "a\ufffdb"


def test_clean_env_has_nothing_of_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSTK_HOST_ONLY", "x")
    env = clean_env("/home/ws", {"A": "1", "B": "1"}, {"B": "2"})
    assert env["HOME"] == "/home/ws"
    assert (env["A"], env["B"]) == ("1", "2")
    assert "SSTK_HOST_ONLY" not in env


def test_timeout_kills_a_setsid_daemon_and_keeps_partial_output(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(sandstorm.ExecutionTimeout) as caught:
            await run_process(
                [sys.executable, "-c", DAEMON],
                cwd=tmp_path,
                env=clean_env(tmp_path),
                timeout=2,
                output_cap=1 << 20,
            )
        assert caught.value.stdout == "started\n"

    asyncio.run(main())
    pid = _wait_for(tmp_path / "daemon.pid")
    for _ in range(100):
        if not _alive(pid):
            break
        time.sleep(0.02)
    assert not _alive(pid), "the setsid daemon survived the timeout"


def test_cap_cuts_a_multibyte_character_cleanly(tmp_path: Path) -> None:
    async def main() -> sandstorm.adapters.ProcessResult:
        return await run_process(
            [sys.executable, "-c", "import sys; sys.stdout.write('a' + '€' * 100)"],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            timeout=30,
            output_cap=5,
        )

    result = asyncio.run(main())
    assert (result.stdout, result.stdout_truncated) == ("a€", True)


def test_store_delete_kills_what_works_inside(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "root", "test")
    workspace = store.create(name="w")
    files = store.files(workspace)
    proc = __import__("subprocess").Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], cwd=files, start_new_session=True
    )
    try:
        store.delete(workspace.id)
        assert proc.wait(timeout=10) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(sandstorm.WorkspaceNotFound) as caught:
        store.files(workspace)
    assert caught.value.workspace_id == workspace.id
    assert store.list_workspaces() == []
    assert os.listdir(tmp_path / "root" / "workspaces") == []


# a tree (a shell, a child, a setsid daemon), and a kill of it on a daemon thread that the
# interpreter abandons at exit right after the kill's first SIGSTOP: os.kill is wrapped so
# that thread stays there (as if the interpreter froze it at shutdown) while the main
# thread returns and the interpreter exits
ABANDONED_KILL = """
import os, signal, subprocess, sys, threading, time
from sandstorm.adapters import kill_process_tree

tree = subprocess.Popen(
    ["/bin/sh", "-c", "sleep 600 & echo $!; setsid sleep 600 & echo $!; echo $$; wait"],
    start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
)
pids = [tree.stdout.readline().strip() for _ in range(3)]
with open(sys.argv[1], "w") as f:
    f.write(" ".join(pids))
time.sleep(0.2)  # the setsid has happened
stopped = threading.Event()
real_kill = os.kill

def kill(pid, sig):
    real_kill(pid, sig)
    if sig == signal.SIGSTOP and threading.current_thread().daemon:
        stopped.set()
        time.sleep(600)  # abandoned here, mid-kill

os.kill = kill
threading.Thread(target=kill_process_tree, args=(tree.pid,), daemon=True).start()
assert stopped.wait(30)
print("exiting", flush=True)
"""


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_kill_abandoned_at_interpreter_exit_leaves_nothing_stopped_or_alive(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pids"
    try:
        done = subprocess.run(
            [sys.executable, "-c", ABANDONED_KILL, str(pidfile)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout == "exiting\n"
        pids = [int(pid) for pid in pidfile.read_text().split()]
        assert len(pids) == 3
        deadline = time.monotonic() + 10
        while any(_state(pid) not in (None, "Z") for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = {pid: _state(pid) for pid in pids if _state(pid) not in (None, "Z")}
        assert not left, f"left behind (T: stopped): {left}"
    finally:
        for pid in pidfile.read_text().split() if pidfile.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
