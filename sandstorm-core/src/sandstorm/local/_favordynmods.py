"""Opt-in host tuning: a cgroup hierarchy mounted with ``favordynmods``.

Every run moves its payload into its workspace's cgroups (a write to ``cgroup.procs``).
By default the kernel guards such moves with one global lock, whose writer waits for an
RCU grace period once the lock has been idle for a moment: 4-15 ms of every run's
latency on a quiet host (measured on a 2-core Linux 6.18 host: in-workspace run p50 16.1
-> 7.4 ms, one-shot 15.8 -> 8.8 ms). While any cgroup hierarchy carries the mount option
``favordynmods`` (Linux 6.0+), moves skip that wait, for the whole host; forks and exits
take a slightly slower path in exchange. On Linux 6.18 and later the kernel keeps the
faster moves until reboot, even once the hierarchy is gone.

So it is a host setting, and off unless ``cgroup_favordynmods=True``: the provider then
mounts a named, empty cgroup v1 hierarchy (no controllers, nothing ever joins it) under
its state directory and unmounts it when it closes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from . import _disk
from ._workspaces import pid_alive

__all__ = ["FavorDynmods"]

_PREFIX = "cgroup-favordynmods-"
_STALE = re.compile(rf"{_PREFIX}(\d+)-[0-9a-f]+")
_OPTIONS = b"none,name=sandstorm-favordynmods,favordynmods"
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8


class FavorDynmods:
    """The ``favordynmods`` hierarchy of one provider, mounted in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path: Path | None = None
        """Where the hierarchy is mounted, once :meth:`mount` succeeded."""
        self.error: str | None = None
        """Why :meth:`mount` failed."""

    def mount(self) -> bool:
        """Mount the hierarchy (and remove those of dead providers); False on failure."""
        self._remove_stale()
        if os.geteuid() != 0:
            self.error = "needs root (it mounts a cgroup hierarchy)"
            return False
        path = self.root / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        try:
            _disk.mount("cgroup", str(path), "cgroup", flags, _OPTIONS, "favordynmods")
        except OSError as exc:
            path.rmdir()
            self.error = (
                f"the kernel refused the mount ({exc.strerror}): favordynmods needs "
                "Linux 6.0+ with cgroup v1 hierarchies"
            )
            return False
        self.path = path
        return True

    def close(self) -> None:
        """Unmount the hierarchy (the kernel drops it with its last mount)."""
        path, self.path = self.path, None
        if path is not None:
            _release(path)

    def _remove_stale(self) -> None:
        with contextlib.suppress(OSError), os.scandir(self.root) as entries:
            for entry in entries:
                found = _STALE.fullmatch(entry.name)
                if found and not pid_alive(int(found.group(1))):
                    _release(Path(entry.path))


def _release(path: Path) -> None:
    with contextlib.suppress(OSError):
        _disk.unmount(path, lazy=True)
        path.rmdir()
