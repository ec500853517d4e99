"""Per-workspace cgroups: enforced limits, whole-tree kill and the kernel's accounting.

Layout, created lazily and removed on :meth:`Cgroups.close` (and per workspace on
delete): ``<our cgroup>/sandstorm-<pid>-<token>/ws-<id>/`` in every usable hierarchy.

* cgroup v2 (``cgroup2`` mount): each run gets a child ``ws-<id>/run-<n>`` used for
  ``cgroup.kill``; ``ws-<id>/cpu.stat`` accumulates cpu time. When the v2 hierarchy
  offers the memory/pids/cpu controllers they carry the limits (``memory.max``, ...).
* cgroup v1 (hybrid hosts): ``memory``, ``pids``, ``cpu``, ``cpuacct`` and ``blkio``
  hierarchies carry the limits and the accounting when v2 does not.

Without any writable hierarchy the provider falls back to rlimits (see ``_provider``).

Each run also carries a *view*: the workspace's own cgroup directories, which the sandbox
binds read-only at ``/sys/fs/cgroup`` (``memory``, ``cpu``, ``cpuacct``, ``pids``,
``blkio`` for v1 and ``unified`` for v2 on hybrid hosts; the v2 directory as the root on
pure v2 hosts), as a container runtime would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..adapters import blkio_bytes, cgroup_counters, io_bytes

__all__ = ["CgroupRun", "Cgroups", "WorkspaceUsage"]

_V1_WANTED = ("memory", "pids", "cpu", "cpuacct", "blkio")
SOCKET_BUFFERS = 16 << 20
"""Bytes of TCP buffers a workspace may hold on a cgroup v1 host (v2 counts them in
``memory.max``); ``memory.kmem.tcp.limit_in_bytes`` caps them, on top of its memory limit."""
_TCP_LIMIT = "memory.kmem.tcp.limit_in_bytes"
_V2_LIMITS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class WorkspaceUsage:
    """Raw kernel accounting of one workspace's cgroups (absent figures are None)."""

    cpu_user_seconds: float | None
    cpu_system_seconds: float | None
    memory_current_bytes: int | None
    memory_peak_bytes: int | None
    io_read_bytes: int | None
    io_write_bytes: int | None
    process_count: int | None
    memory_limit_bytes: int | None
    cpu_limit: float | None


@dataclass
class CgroupRun:
    """The cgroups one run joins, and how to kill and remove them."""

    procs: list[str]
    """``cgroup.procs`` files the payload joins (limits and accounting)."""
    kill_procs: str | None
    """``cgroup.procs`` of the run's own v2 cgroup, joined by the payload (last)."""
    kill_file: Path | None
    run_dir: Path | None
    view: list[tuple[str, str]] = field(default_factory=list)
    """``(name below /sys/fs/cgroup, host directory)`` pairs the sandbox binds read-only;
    the name ``""`` is ``/sys/fs/cgroup`` itself. Every directory holds the run's processes."""

    def kill(self) -> bool:
        """Kill every process in the run's cgroup (``cgroup.kill``); False if unavailable."""
        if self.kill_file is None:
            return False
        try:
            _write(self.kill_file, "1")
        except OSError:
            return False
        return True

    def remove(self) -> bool:
        """Remove the run's own cgroup; False while processes are still leaving it."""
        if self.run_dir is None:
            return True
        try:
            self.run_dir.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


@dataclass
class _Mounts:
    v2: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)


def _mounts() -> _Mounts:
    found = _Mounts()
    own: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in mountinfo:
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        fstype, _, options = [*post.split(), "", "", ""][:3]
        mount_point = Path(fields[4])
        if fstype == "cgroup2" and found.v2 is None and "" in own:
            found.v2 = mount_point / own[""].lstrip("/")
        elif fstype == "cgroup":
            for name in options.split(","):
                if name in _V1_WANTED and name in own and name not in found.v1:
                    found.v1[name] = mount_point / own[name].lstrip("/")
    return found


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    """Write ``value`` to a cgroup file (one ``write``, no buffered text stream)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read_keyed(path: Path) -> dict[str, int]:
    return cgroup_counters(_read_text(path))


def _rmdir_tree(path: Path) -> bool:
    """Remove a cgroup directory and its child cgroups, deepest first."""
    if not path.exists():
        return True
    ok = True
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(FileNotFoundError):
            try:
                child.rmdir()
            except OSError:
                ok = False
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        ok = False
    return ok


def _remove_stale(parent: Path) -> None:
    """Remove empty ``sandstorm-<pid>-*`` cgroups left by processes that died uncleanly."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = re.fullmatch(r"sandstorm-(\d+)-[0-9a-f]+", entry.name)
        if match is None or not entry.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _rmdir_tree(entry)
        except OSError:
            continue


class Cgroups:
    """The provider's cgroups on this host; probe with :meth:`report`, clean with :meth:`close`."""

    def __init__(self, enabled: bool = True) -> None:
        self._name = f"sandstorm-{os.getpid()}-{secrets.token_hex(4)}"
        self._errors: dict[str, str] = {}
        self._v2: Path | None = None
        self._v2_limits: set[str] = set()
        self._v1: dict[str, Path] = {}
        self._runs = 0
        self._workspaces: set[str] = set()
        self._leaf: dict[str, str] = {}
        self._cpu_base: dict[str, tuple[int, int]] = {}
        self._free_slots: list[str] = []
        self._slot_settings: dict[str, tuple[int | None, float | None, int]] = {}
        self._slots = 0
        self._dir_cache: dict[str, dict[str, Path]] = {}
        self._lock = threading.Lock()
        if enabled:
            self._setup(_mounts())
        else:
            self._errors["cgroups"] = "disabled by configuration"

    def _setup(self, mounts: _Mounts) -> None:
        for parent in {*mounts.v1.values(), *((mounts.v2,) if mounts.v2 else ())}:
            _remove_stale(parent)
        if mounts.v2 is not None:
            base = mounts.v2 / self._name
            try:
                base.mkdir()
            except OSError as exc:
                self._errors["cgroup_kill"] = f"cannot create {base}: {exc.strerror}"
            else:
                self._v2 = base
                if not (base / "cgroup.kill").exists():
                    self._errors["cgroup_kill"] = "the kernel has no cgroup.kill"
                available = set((base / "cgroup.controllers").read_text().split())
                for name in _V2_LIMITS:
                    if name not in available:
                        continue
                    try:
                        (base / "cgroup.subtree_control").write_text(f"+{name}")
                    except OSError:
                        continue
                    self._v2_limits.add(name)
        else:
            self._errors["cgroup_kill"] = "no cgroup2 hierarchy is mounted"
        seen: dict[Path, str] = {}
        for name, path in mounts.v1.items():
            if name in self._v2_limits:
                continue
            base = path / self._name
            if base in seen:
                self._v1[name] = base
                continue
            try:
                base.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                self._errors[f"cgroup_{name}"] = f"cannot create {base}: {exc.strerror}"
                continue
            seen[base] = name
            self._v1[name] = base

    # ------------------------------------------------------------------ report

    def report(self) -> dict[str, str]:
        """Primitive name -> mechanism for what is active (``cgroup_memory`` etc.)."""
        active: dict[str, str] = {}
        if self._v2 is not None and (self._v2 / "cgroup.kill").exists():
            active["cgroup_kill"] = "cgroup v2 cgroup.kill"
        for name in ("memory", "pids", "cpu"):
            if name in self._v2_limits:
                active[f"cgroup_{name}"] = f"cgroup v2 {name} controller"
            elif name in self._v1:
                active[f"cgroup_{name}"] = f"cgroup v1 {name} controller"
        if "memory" in self._v2_limits:
            active["cgroup_sockets"] = "socket buffers counted in the cgroup v2 memory limit"
        elif "memory" in self._v1 and (self._v1["memory"] / _TCP_LIMIT).exists():
            active["cgroup_sockets"] = (
                f"TCP buffers capped at {SOCKET_BUFFERS >> 20} MiB per workspace "
                "(cgroup v1 memory.kmem.tcp.limit_in_bytes); unix buffers count in memory, UDP "
                "queues are bounded per socket only"
            )
        return active

    def errors(self) -> dict[str, str]:
        """Why a cgroup primitive is not active."""
        return dict(self._errors)

    def bases(self) -> tuple[str, ...]:
        """The provider's own cgroup directories, one per hierarchy in use."""
        found = [*self._v1.values(), *((self._v2,) if self._v2 is not None else ())]
        return tuple(str(path) for path in dict.fromkeys(found))

    @property
    def active(self) -> bool:
        """True when at least one hierarchy is in use."""
        return self._v2 is not None or bool(self._v1)

    # ------------------------------------------------------------------ workspaces

    def _dirs(self, workspace_id: str) -> dict[str, Path]:
        leaf = self._leaf.get(workspace_id) or f"ws-{workspace_id}"
        dirs = self._dir_cache.get(leaf)
        if dirs is None:
            dirs = {name: base / leaf for name, base in self._v1.items()}
            if self._v2 is not None:
                dirs["v2"] = self._v2 / leaf
            if len(self._dir_cache) >= 1024:
                self._dir_cache.clear()
            self._dir_cache[leaf] = dirs
        return dict(dirs)

    def ensure_workspace(
        self,
        workspace_id: str,
        *,
        memory_mib: int | None,
        cpu: float | None,
        pids: int,
        reusable: bool = False,
    ) -> None:
        """Create the workspace's cgroups (idempotent) and write its limits.

        ``reusable`` workspaces (one-shot runs) take a recycled, reset cgroup set when
        one is free: removing cgroups costs milliseconds of kernel work per run.
        """
        with self._lock:
            if workspace_id in self._workspaces:
                return
            if reusable:
                if self._free_slots:
                    self._leaf[workspace_id] = self._free_slots.pop()
                else:
                    self._slots += 1
                    self._leaf[workspace_id] = f"slot-{self._slots}"
            self._workspaces.add(workspace_id)
        try:
            self._configure(workspace_id, memory_mib, cpu, pids)
        except BaseException:
            with self._lock:
                self._workspaces.discard(workspace_id)
                self._leaf.pop(workspace_id, None)
            raise

    def _configure(
        self, workspace_id: str, memory_mib: int | None, cpu: float | None, pids: int
    ) -> None:
        dirs = self._dirs(workspace_id)
        leaf = self._leaf.get(workspace_id)
        settings = (memory_mib, cpu, pids)
        if leaf is not None and self._slot_settings.get(leaf) == settings:
            # a recycled set already carries these limits: only reset its accounting
            self._reset_accounting(workspace_id, dirs)
            return
        for path in dirs.values():
            path.mkdir(exist_ok=True)
        self._reset_accounting(workspace_id, dirs)
        self._write_limits(workspace_id, dirs, memory_mib, cpu, pids)
        if leaf is not None:
            self._slot_settings[leaf] = settings

    def _reset_accounting(self, workspace_id: str, dirs: dict[str, Path]) -> None:
        v2 = dirs.get("v2")
        if v2 is not None and workspace_id in self._leaf:
            stat = _read_keyed(v2 / "cpu.stat")
            self._cpu_base[workspace_id] = (stat.get("user_usec", 0), stat.get("system_usec", 0))
        if "memory" in dirs and "memory" not in self._v2_limits:
            with contextlib.suppress(OSError):
                _write(dirs["memory"] / "memory.max_usage_in_bytes", "0")
        if "memory" in dirs and "memory" not in self._v2_limits and workspace_id in self._leaf:
            with contextlib.suppress(OSError):
                _write(dirs["memory"] / "memory.failcnt", "0")
        if "cpuacct" in dirs:
            # resets cpuacct.usage* and cpuacct.stat alike (kernel >= 5.14)
            with contextlib.suppress(OSError):
                _write(dirs["cpuacct"] / "cpuacct.usage", "0")

    def _write_limits(
        self,
        workspace_id: str,
        dirs: dict[str, Path],
        memory_mib: int | None,
        cpu: float | None,
        pids: int,
    ) -> None:
        v2 = dirs.get("v2")
        if memory_mib is None and workspace_id in self._leaf:
            if "memory" in self._v2_limits and v2 is not None:
                (v2 / "memory.max").write_text("max")
            elif "memory" in dirs:
                with contextlib.suppress(OSError):
                    (dirs["memory"] / "memory.memsw.limit_in_bytes").write_text("-1")
                (dirs["memory"] / "memory.limit_in_bytes").write_text("-1")
        if cpu is None and workspace_id in self._leaf:
            if "cpu" in self._v2_limits and v2 is not None:
                (v2 / "cpu.max").write_text("max")
            elif "cpu" in dirs:
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text("-1")
        if memory_mib is not None:
            limit = str(memory_mib << 20)
            if "memory" in self._v2_limits and v2 is not None:
                (v2 / "memory.max").write_text(limit)
                with contextlib.suppress(OSError):
                    (v2 / "memory.swap.max").write_text("0")
            elif "memory" in dirs:
                # memsw must stay >= the memory limit: open it up, set memory, then close it
                memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
                with contextlib.suppress(OSError):
                    memsw.write_text("-1")
                (dirs["memory"] / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):
                    memsw.write_text(limit)
        if "memory" in dirs and "memory" not in self._v2_limits:
            # v1 leaves socket buffers out of memory.limit_in_bytes: cap them apart
            tcp = dirs["memory"] / _TCP_LIMIT
            with contextlib.suppress(OSError):
                tcp.write_text(str(SOCKET_BUFFERS))
        if "pids" in self._v2_limits and v2 is not None:
            (v2 / "pids.max").write_text(str(pids))
        elif "pids" in dirs:
            (dirs["pids"] / "pids.max").write_text(str(pids))
        if cpu is not None:
            period = 100_000
            quota = max(1000, int(cpu * period))
            if "cpu" in self._v2_limits and v2 is not None:
                (v2 / "cpu.max").write_text(f"{quota} {period}")
            elif "cpu" in dirs:
                (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(period))
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))

    def new_run(
        self, workspace_id: str, *, cpu_limited: bool = True, view: bool = False
    ) -> CgroupRun:
        """A run's cgroup membership: the workspace's v1 dirs plus a fresh v2 run dir.

        Each join costs a cgroup migration, so hierarchies that would add nothing are
        skipped: v1 ``cpu`` without a cpu limit, v1 ``cpuacct`` when v2 ``cpu.stat``
        already accounts the cpu time, unless ``view`` asks for the code's own view of
        its cgroups (then ``cpuacct`` is joined so that what the code reads is true).
        """
        dirs = self._dirs(workspace_id)
        skip = {"v2"}
        if not cpu_limited:
            skip.add("cpu")
        if not view and "v2" in dirs and (dirs["v2"] / "cpu.stat").exists():
            skip.add("cpuacct")
        joined = {name: path for name, path in dirs.items() if name not in skip}
        procs = [str(path / "cgroup.procs") for path in dict.fromkeys(joined.values())]
        run_dir = None
        kill_file = None
        kill_procs = None
        if "v2" in dirs:
            self._runs += 1
            run_dir = dirs["v2"] / f"run-{self._runs}"
            run_dir.mkdir()
            kill_procs = str(run_dir / "cgroup.procs")
            if (run_dir / "cgroup.kill").exists():
                kill_file = run_dir / "cgroup.kill"
        shown: list[tuple[str, str]] = []
        if view:
            shown = [(name, str(path)) for name, path in sorted(joined.items())]
            if run_dir is not None:
                # a recycled (one-shot) set: only the fresh run dir is this workspace's alone
                v2 = run_dir if workspace_id in self._leaf else dirs["v2"]
                shown.append(("unified" if shown else "", str(v2)))
        return CgroupRun(
            procs=procs, kill_procs=kill_procs, kill_file=kill_file, run_dir=run_dir, view=shown
        )

    def oom_kills(self, workspace_id: str) -> int:
        """How many times the kernel's OOM killer fired inside the workspace so far."""
        dirs = self._dirs(workspace_id)
        if "memory" in self._v2_limits and "v2" in dirs:
            return _read_keyed(dirs["v2"] / "memory.events").get("oom_kill", 0)
        if "memory" in dirs:
            return _read_keyed(dirs["memory"] / "memory.oom_control").get("oom_kill", 0)
        return 0

    def usage(self, workspace_id: str) -> WorkspaceUsage:
        """The kernel's accounting for the workspace since its cgroups were created."""
        dirs = self._dirs(workspace_id)
        v2 = dirs.get("v2")
        user = system = None
        if v2 is not None and (v2 / "cpu.stat").exists():
            stat = _read_keyed(v2 / "cpu.stat")
            base_user, base_system = self._cpu_base.get(workspace_id, (0, 0))
            user = (stat.get("user_usec", 0) - base_user) / 1e6
            system = (stat.get("system_usec", 0) - base_system) / 1e6
        elif "cpuacct" in dirs:
            u = _read_int(dirs["cpuacct"] / "cpuacct.usage_user")
            s = _read_int(dirs["cpuacct"] / "cpuacct.usage_sys")
            user = u / 1e9 if u is not None else None
            system = s / 1e9 if s is not None else None
        current = peak = mem_limit = None
        if "memory" in self._v2_limits and v2 is not None:
            current = _read_int(v2 / "memory.current")
            peak = _read_int(v2 / "memory.peak")
            mem_limit = _read_int(v2 / "memory.max")
        elif "memory" in dirs:
            current = _read_int(dirs["memory"] / "memory.usage_in_bytes")
            peak = _read_int(dirs["memory"] / "memory.max_usage_in_bytes")
            mem_limit = _read_int(dirs["memory"] / "memory.limit_in_bytes")
            if mem_limit is not None and mem_limit >= 1 << 62:
                mem_limit = None
        read = write = None
        if v2 is not None and (v2 / "io.stat").exists():
            read, write = io_bytes((v2 / "io.stat").read_text())
        elif "blkio" in dirs:
            path = dirs["blkio"] / "blkio.throttle.io_service_bytes_recursive"
            if not path.exists():
                path = dirs["blkio"] / "blkio.throttle.io_service_bytes"
            read, write = blkio_bytes(_read_text(path))
        count = None
        if "pids" in self._v2_limits and v2 is not None:
            count = _read_int(v2 / "pids.current")
        elif "pids" in dirs:
            count = _read_int(dirs["pids"] / "pids.current")
        elif v2 is not None:
            count = sum(len(p.read_text().split()) for p in v2.rglob("cgroup.procs") if p.is_file())
        cpu_limit = None
        if "cpu" in dirs:
            quota = _read_int(dirs["cpu"] / "cpu.cfs_quota_us")
            period = _read_int(dirs["cpu"] / "cpu.cfs_period_us")
            if quota and quota > 0 and period:
                cpu_limit = quota / period
        elif "cpu" in self._v2_limits and v2 is not None:
            with contextlib.suppress(OSError, ValueError):
                quota_s, period_s = (v2 / "cpu.max").read_text().split()
                if quota_s != "max":
                    cpu_limit = int(quota_s) / int(period_s)
        return WorkspaceUsage(
            cpu_user_seconds=user,
            cpu_system_seconds=system,
            memory_current_bytes=current,
            memory_peak_bytes=peak,
            io_read_bytes=read,
            io_write_bytes=write,
            process_count=count,
            memory_limit_bytes=mem_limit,
            cpu_limit=cpu_limit,
        )

    def kill_workspace(self, workspace_id: str) -> None:
        """Kill everything still running in the workspace (used before deleting it)."""
        v2 = self._dirs(workspace_id).get("v2")
        if v2 is not None:
            with contextlib.suppress(OSError):  # no such cgroup, or no cgroup.kill
                _write(v2 / "cgroup.kill", "1")

    def remove_workspace(self, workspace_id: str, wait: float = 2.0) -> bool:
        """Kill and remove the workspace's cgroups; True when all are gone.

        A recycled (one-shot) cgroup set goes back to the free list once it is empty.
        """
        if workspace_id not in self._workspaces and not any(
            p.exists() for p in self._dirs(workspace_id).values()
        ):
            return True
        self.kill_workspace(workspace_id)
        leaf = self._leaf.get(workspace_id)
        if leaf is not None and self._recycle(workspace_id, wait):
            with self._lock:
                self._workspaces.discard(workspace_id)
                self._leaf.pop(workspace_id, None)
                self._cpu_base.pop(workspace_id, None)
                self._free_slots.append(leaf)
            return True
        deadline = time.monotonic() + wait
        while True:
            ok = all(_rmdir_tree(path) for path in self._dirs(workspace_id).values())
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if ok:
            with self._lock:
                self._workspaces.discard(workspace_id)
                self._leaf.pop(workspace_id, None)
                self._cpu_base.pop(workspace_id, None)
        return ok

    def _recycle(self, workspace_id: str, wait: float) -> bool:
        """True when every cgroup of the set is empty (run dirs removed) and can be reused."""
        deadline = time.monotonic() + wait
        for path in self._dirs(workspace_id).values():
            while True:
                busy = False
                # the directory's entries carry their type: no stat per control file
                with os.scandir(path) as entries:
                    children = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
                for child in children:
                    try:
                        os.rmdir(child)
                    except FileNotFoundError:
                        pass
                    except OSError:
                        busy = True
                try:
                    busy = busy or bool((path / "cgroup.procs").read_text().strip())
                except OSError:
                    return False
                if not busy:
                    break
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.005)
        return True

    def close(self) -> bool:
        """Remove every cgroup this object created; True when all are gone."""
        ok = True
        for workspace_id in list(self._workspaces):
            ok = self.remove_workspace(workspace_id) and ok
        self._free_slots.clear()
        bases = [*self._v1.values()]
        if self._v2 is not None:
            bases.append(self._v2)
        for base in dict.fromkeys(bases):
            try:
                ok = _rmdir_tree(base) and ok
            except OSError as exc:  # pragma: no cover - defensive
                ok = ok and exc.errno == errno.ENOENT
        return ok

    @property
    def name(self) -> str:
        """The provider-level cgroup directory name."""
        return self._name
