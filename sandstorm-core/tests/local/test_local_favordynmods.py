"""``cgroup_favordynmods``: the opt-in host tuning that makes cgroup moves skip an RCU wait.

The speed itself is measured in ``benchmarks/local_run.py`` (its ``host`` line); here: the
hierarchy exists exactly while an opted-in provider lives, and only then.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sandstorm

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a cgroup hierarchy needs root")


def _favordynmods_mounts(root: Path) -> list[str]:
    """Mount points below ``root`` of cgroup hierarchies carrying ``favordynmods``."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        point = pre.split()[4]
        fstype, _, options = post.split()[:3]
        favored = fstype == "cgroup" and "favordynmods" in options.split(",")
        if favored and point.startswith(f"{root.resolve()}/"):
            found.append(point)
    return found


def _favored(root: Path) -> list[Path]:
    return sorted(root.glob("cgroup-favordynmods-*"))


def test_opted_in_provider_holds_the_hierarchy_while_it_lives(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with sandstorm.get_provider("local", root=str(root), cgroup_favordynmods=True) as provider:
        assert provider.run("print(1)").stdout == "1\n"
        mounts = _favordynmods_mounts(root)
        assert len(mounts) == 1, mounts
        assert Path(mounts[0]).name.startswith(f"cgroup-favordynmods-{os.getpid()}-")
        assert [p for p in Path(mounts[0]).iterdir() if p.is_dir()] == []  # no cgroup in it
    assert _favordynmods_mounts(root) == []
    assert _favored(root) == []


def test_default_provider_leaves_the_host_alone(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with sandstorm.get_provider("local", root=str(root)) as provider:
        assert provider.run("print(1)").stdout == "1\n"
        assert _favordynmods_mounts(root) == []
        assert _favored(root) == []


def test_a_dead_providers_hierarchy_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    crashed = root / f"cgroup-favordynmods-{dead.stdout.strip()}-0badc0de"
    crashed.mkdir()
    options = "none,name=sandstorm-favordynmods,favordynmods"
    subprocess.run(["mount", "-t", "cgroup", "-o", options, "cgroup", str(crashed)], check=True)
    try:
        with sandstorm.get_provider("local", root=str(root), cgroup_favordynmods=True) as p:
            assert p.run("print(1)").stdout == "1\n"
            assert [Path(m).name for m in _favordynmods_mounts(root)] == [
                path.name for path in _favored(root)
            ]
            assert crashed not in _favored(root)
    finally:
        if crashed.exists():  # the test failed: leave nothing behind anyway
            subprocess.run(["umount", "-l", str(crashed)], check=False)
            crashed.rmdir()
    assert _favordynmods_mounts(root) == []


def test_refused_tuning_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the mount is refused (here: the kernel does not know the option), the
    provider says why and runs as before."""
    from sandstorm.local import _favordynmods

    monkeypatch.setattr(_favordynmods, "_OPTIONS", b"none,name=sandstorm-test,no-such-option")
    root = tmp_path / "state"
    with sandstorm.get_provider("local", root=str(root), cgroup_favordynmods=True) as provider:
        assert provider.run("print(1)").stdout == "1\n"
    warned = [r.getMessage() for r in caplog.records if "cgroup_favordynmods" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "refused the mount" in warned[0], warned
    assert _favordynmods_mounts(root) == []
    assert _favored(root) == []
