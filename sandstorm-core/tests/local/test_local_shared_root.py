"""Several processes on one state root: none unmounts a workspace another live one uses.

Real processes (each a Python interpreter with its own ``local`` provider) share one
``SANDSTORM_LOCAL_ROOT``; a provider that closes leaves the mounts of live ones alone, and
still unmounts the ones a killed process left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import sandstorm
from sandstorm.local import _disk

pytestmark = pytest.mark.skipif(
    _disk.unavailable() is not None, reason=f"no disk images: {_disk.unavailable()}"
)

# a provider driven line by line over stdin: each command's answer is one line on stdout
_DRIVER = textwrap.dedent(
    """
    import os, sys
    import sandstorm

    provider = sandstorm.get_provider("local", spare_workspaces=0)
    workspaces = {}
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "create":
            ws = provider.create_workspace(disk=16)
            workspaces[ws.id] = ws
            answer = ws.id
        elif command == "list":
            answer = " ".join(sorted(ws.id for ws in provider.list_workspaces()))
        elif command == "run":  # run: ID SCRIPT, answer: its stdout on one line
            ws_id, _, script = arg.partition(" ")
            ws = workspaces.get(ws_id) or provider.get_workspace(ws_id)
            result = provider.run_in_workspace(ws, script, language="shell", timeout=60)
            answer = f"{result.exit_code} " + result.stdout.strip().replace(chr(10), "|")
        elif command == "ping":  # starts the engine (which prepares the store)
            answer = provider.run("print('pong')").stdout.strip()
        elif command == "kill":
            os.kill(os.getpid(), 9)
        elif command == "close":
            provider.close()
            answer = "closed"
        print(answer, flush=True)
        if command == "close":
            break
    """
)


class Driver:
    """One interpreter with its own provider on the shared root."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "SANDSTORM_LOCAL_ROOT": str(root)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,
        )
        assert self.ask_line() == "ready"

    def ask_line(self) -> str:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        assert line, f"the driver ended (exit {self.proc.wait(30)})"
        return line.rstrip("\n")

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        assert self.ask("close") == "closed"
        assert self.proc.wait(60) == 0

    def kill(self) -> None:
        """SIGKILL the interpreter (no cleanup runs) and wait for its whole session to go."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("kill\n")
        self.proc.stdin.flush()
        assert self.proc.wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while _session_members(self.proc.pid):
            assert time.monotonic() < deadline, "the killed provider's processes stay"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _session_members(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[3]) == sid and stat[0] != "Z":
                found.append(int(entry))
    return found


def _mounts_below(root: Path) -> list[Path]:
    return _disk.mounted_below(root)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    try:
        yield path
    finally:
        for point in [*_mounts_below(path), path / "workspaces"]:  # and the shared bind
            if _disk.is_mount_point(point):
                subprocess.run(["umount", "-l", str(point)], check=False)
        subprocess.run(["rm", "-rf", str(path)], check=False)


def test_a_provider_closing_leaves_another_live_providers_workspace_mounted(
    root: Path,
) -> None:
    drivers: list[Driver] = []
    try:
        a = Driver(root)
        drivers.append(a)
        ws = a.ask("create")
        assert a.ask(f"run {ws} echo from-a > f; cat f") == "0 from-a"
        files = root / "workspaces" / ws / "files"
        device = _disk.attached_device(root / "workspaces" / ws / "disk.img")
        assert _disk.is_mounted(files)
        assert device is not None

        b = Driver(root)
        drivers.append(b)
        assert ws in b.ask("list").split()
        assert b.ask(f"run {ws} cat f; echo from-b >> f") == "0 from-a"
        b.close()
        # A still uses it: mounted as before, from the same loop device (never mounted twice)
        assert _disk.is_mounted(files)
        assert _disk.attached_device(root / "workspaces" / ws / "disk.img") == device
        assert a.ask(f"run {ws} cat f") == "0 from-a|from-b"

        # a process killed while using the workspace leaves a mount no live process uses
        c = Driver(root)
        drivers.append(c)
        own = c.ask("create")
        assert c.ask(f"run {own} echo from-c > g; cat g") == "0 from-c"
        assert c.ask(f"run {ws} cat f") == "0 from-a|from-b"
        c.kill()
        crashed = root / "workspaces" / own / "files"
        assert _disk.is_mounted(crashed)
        # the next provider to start adopts that mount (not A's) and unmounts it at close
        d = Driver(root)
        drivers.append(d)
        assert d.ask("ping") == "pong"
        d.close()
        assert not _disk.is_mounted(crashed)
        assert _disk.attached_device(root / "workspaces" / own / "disk.img") is None
        assert _disk.is_mounted(files)
        assert a.ask(f"run {ws} cat f") == "0 from-a|from-b"
        assert a.ask(f"run {own} cat g") == "0 from-c"  # mounted again, content intact

        a.close()  # the last user: unmounts its workspace (and the last provider: the bind)
        assert _mounts_below(root) == []
        assert not _disk.is_mount_point(root / "workspaces")
    finally:
        for driver in drivers:
            driver.stop()


def test_two_providers_of_one_process_share_a_mount(root: Path) -> None:
    """A second provider in the same process (as the kit's factories make) is a user too."""
    with sandstorm.get_provider("local", root=str(root), spare_workspaces=0) as first:
        ws = first.create_workspace(disk=16)
        first.write_file(ws, "f", b"first")
        files = root / "workspaces" / ws.id / "files"
        with sandstorm.get_provider("local", root=str(root), spare_workspaces=0) as second:
            second.run("pass")  # prepares its store: the mount is the first's, not adopted
            assert second.read_file(ws, "f") == b"first"  # and now the second's too
        assert _disk.is_mounted(files)
        out = first.run_in_workspace(ws, "cat f; echo more >> f", language="shell")
        assert out.stdout == "first"
        with sandstorm.get_provider("local", root=str(root), spare_workspaces=0) as third:
            third.run("pass")
        assert _disk.is_mounted(files)
        assert first.read_file(ws, "f") == b"firstmore\n"
    assert _mounts_below(root) == []
