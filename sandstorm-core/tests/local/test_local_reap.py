"""``reap`` on the local provider: what a killed process left goes, a live process's stays."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import sandstorm
from sandstorm._sync import run_sync
from sandstorm_testkit.exits import leave_behind

pytestmark = pytest.mark.slow

_CLI = "import sys; from sandstorm._cli import main; sys.exit(main(sys.argv[1:]))"


def test_reap_deletes_what_a_killed_process_left(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    left = leave_behind("local", {"root": root})
    with sandstorm.get_provider("local", root=root) as provider:
        mine = provider.create_workspace(persistent=False)
        try:
            listed = {ws.id for ws in provider.list_workspaces()}
            assert {left["bound"], left["persistent"], mine.id} <= listed
            found = run_sync(provider.async_provider.reap(dry_run=True))
            assert found == [left["bound"]]
            assert found == run_sync(provider.async_provider.reap())
            listed = {ws.id for ws in provider.list_workspaces()}
            assert left["bound"] not in listed
            assert {left["persistent"], mine.id} <= listed
            older = run_sync(provider.async_provider.reap(older_than=0))
            assert older == [left["persistent"]]
            assert [ws.id for ws in provider.list_workspaces()] == [mine.id]
        finally:
            provider.delete_workspace(mine)


def test_cli_reap_local(tmp_path: Path, leftovers: Callable[[Path], list[str]]) -> None:
    root = str(tmp_path / "state")
    left = leave_behind("local", {"root": root})
    env = {**os.environ, "SANDSTORM_LOCAL_ROOT": root}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, "reap", "-p", "local", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {left['bound']}" in dry.stdout
    assert left["persistent"] not in dry.stdout
    done = cli()
    assert done.returncode == 0, done.stderr
    assert f"deleted {left['bound']}" in done.stdout
    old = cli("--older-than", "0")
    assert f"deleted {left['persistent']}" in old.stdout
    assert leftovers(Path(root)) == []
    # the killed owner's shared bind of workspaces/ went with the last provider on the root
    assert not (Path(root) / ".workspaces-bind").exists()
    assert (
        str((Path(root) / "workspaces").resolve()) not in Path("/proc/self/mountinfo").read_text()
    )
