"""sandstorm.adapters' process runner and directory store, on real host processes."""

from __future__ import annotations

import asyncio
import os
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
