"""``LocalProvider``: run code on this machine, isolated, with workspaces as directories.

Python runs in-process inside a forked child of a pre-started sandbox interpreter (the
fork server, ``_forkserver.py``); javascript (node) and shell are ``execve``'d from an
identically isolated child. Every run gets: a root assembled from an allow-list
(``pivot_root``; the workspace at ``workspace_path``), new net (no network unless the
workspace asks for the host's), pid (fresh /proc), mount, ipc, uts and cgroup namespaces;
the workspace's own uid when the host is root; rlimits; Landlock; seccomp; per-workspace
cgroups for memory/pids/cpu limits, whole-tree kill and metrics, shown to the code
read-only at ``/sys/fs/cgroup`` (its own cgroups only, ``cgroup_view``). Without one of
these layers the provider refuses to start unless ``allow_weaker`` names it.

Python semantics match ``python -I -S -c CODE`` run in the workspace: ``sys.argv ==
["-c"]``, ``__name__ == "__main__"``, the same tracebacks, exit codes, atexit handlers and
thread joins; ``sys.path`` is ``""`` plus the stdlib plus the interpreter's own
site-packages (no ``.pth`` processing) plus ``python_path``. Differences from a cold
start: common stdlib modules are already in ``sys.modules``, and every run shares the
fork server's string-hash seed.

Metrics come from the workspace's cgroups, which live as long as the provider object:
cpu time, peak memory and io count from the workspace's first use by this provider
(a persistent workspace reopened by a new provider starts again from zero); disk use
is measured on the workspace directory itself.

A run that hits its memory limit is killed by the kernel and returns a normal
:class:`~sandstorm.RunResult` with ``reason=TerminationReason.MEMORY_LIMIT``,
``exit_code=137`` and ``signal=9`` (no exception). A signal death gives
``exit_code = 128 + signal``. A timeout raises :class:`~sandstorm.ExecutionTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import shutil
import signal
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._capabilities import Capability
from .._errors import (
    CapabilityNotSupported,
    ExecutionTimeout,
    IsolationUnavailable,
    ProviderConfigError,
    ProviderUnavailable,
    WorkspaceError,
    WorkspaceExists,
    WorkspaceNotFound,
)
from .._models import (
    FileInfo,
    GitStatus,
    Language,
    NetworkPolicy,
    Resources,
    RunResult,
    Snapshot,
    TerminationReason,
    Workspace,
    WorkspaceMetrics,
)
from .._provider import AsyncProvider, ExecRequest, WorkspaceSpec
from . import _disk
from ._agents import LocalAgents
from ._config import SANDBOX_LAYERS, LocalConfig
from ._names import NameIndex
from ._probe import IsolationReport, build_report
from ._templates import TemplateRegistry
from ._workspaces import WorkspaceStore, chown_tree, disk_usage

if TYPE_CHECKING:
    # imported where used: a cold ``get_provider("local")`` loads none of the engine
    from ._cgroups import CgroupRun, Cgroups
    from ._favordynmods import FavorDynmods
    from ._files import Owner
    from ._forkserver import RunRequest, SandboxSpec
    from ._forkserver_host import ForkServer
    from ._git import GitCommand
    from ._snapshots import SnapshotStore

__all__ = ["LocalProvider"]

log = logging.getLogger("sandstorm.local")

_INLINE_CODE_LIMIT = 100_000
_STDLIB_PRELOAD = (
    "base64",
    "collections",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "itertools",
    "math",
    "pathlib",
    "random",
    "re",
    "statistics",
    "string",
    "subprocess",
    "textwrap",
    "time",
    "traceback",
    "typing",
    "uuid",
)
"""Stdlib modules the python fork server imports once, so runs find them ready."""
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Shown read-only (or as the same symlinks, where the host has ``/bin -> usr/bin``)."""
_ETC_BINDS = (
    "/etc/ssl",
    "/etc/pki",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/ld.so.cache",
)
"""Host files of ``/etc`` the languages need (CA certificates, tool links, the loader cache)."""
_ETC_COPIES = ("/etc/protocols", "/etc/services", "/etc/shells")
"""Small host files of ``/etc`` copied into the synthetic one (cheaper than a bind)."""
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_SCRATCH = ("/tmp", "/dev/shm")
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"
_NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\n"
_log = logging.getLogger("sandstorm.local")


_PROBES: dict[tuple[str, int, int], dict[str, Any]] = {}
"""Probe verdicts, once per (interpreter, uid, first sandbox uid) for the process's life."""


def _with_disk_quota(report: IsolationReport, unavailable: str | None) -> IsolationReport:
    """``report`` with the ``disk_quota`` entry: how the workspace disk limit is enforced."""
    active, missing, limits = dict(report.active), dict(report.unavailable), dict(report.limits)
    if unavailable is None:
        active["disk_quota"] = "per-workspace ext4 image on a loop device (kernel-enforced)"
        limits["disk"] = "size of the workspace's own filesystem image (kernel-enforced)"
    else:
        missing["disk_quota"] = (
            f"{unavailable}; the disk limit is a best-effort usage check of the workspace"
        )
    return report.model_copy(update={"active": active, "unavailable": missing, "limits": limits})


LABEL_NAMESPACE = "sandstorm-namespace"
"""Internal label: the application namespace a local workspace belongs to."""


def default_namespace(root: Path) -> str:
    """The namespace of a provider that names none: one per state directory."""
    digest = hashlib.sha256(str(root.expanduser().resolve()).encode()).hexdigest()
    return f"root-{digest[:12]}"


def _host_memory_mib() -> int | None:
    """This machine's memory in MiB (the most one workspace could get), from /proc."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) >> 10
    except (OSError, ValueError, IndexError):
        pass
    return None


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _real(path: str) -> str:
    return os.path.realpath(path)


@dataclass
class _Engine:
    """Everything started once per provider: probe verdict, cgroups, fork server."""

    report: IsolationReport
    cgroups: Cgroups
    server: ForkServer
    python: str
    python_prefix: str
    python_path: tuple[str, ...]
    node: str | None
    shell: str
    cgroup_bases: tuple[str, ...] = ()
    static: dict[tuple[bool, tuple[str, ...]], SandboxSpec] = field(default_factory=dict)
    favordynmods: FavorDynmods | None = None

    def close(self) -> None:
        self.server.close()
        self.cgroups.close()
        if self.favordynmods is not None:
            self.favordynmods.close()


_METADATA_ALLOWANCE = 64 << 10
"""What a disk image's own bookkeeping may add before a run counts as past its limit."""


class _DiskGuard:
    """Ends a run whose workspace grows past ``limit`` bytes (checked every ``interval`` s).

    With a disk image the kernel already refuses what does not fit (the image holds at
    most ``limit`` + 1 MiB); the guard only reports and ends a run that used it all, and
    measuring is one ``statfs``. Without one the guard is the limit itself, best effort:
    a walk of the tree, which cannot see files unlinked while open and lets a fast
    writer overshoot by what it writes in one interval.
    """

    def __init__(
        self,
        files: Path,
        limit: int,
        interval: float,
        image: Callable[[], tuple[int, int] | None],
    ) -> None:
        self.files = files
        self.limit = limit
        self.interval = interval
        self.exceeded = False
        self._usage = image
        self._ceiling = limit

    def _image(self) -> int | None:
        usage = self._usage()
        return None if usage is None else usage[0]

    def _free(self) -> int | None:
        usage = self._usage()
        return None if usage is None else usage[1]

    def _used(self) -> int:
        used = self._image()
        if used is None:
            return disk_usage(self.files)
        # the filesystem's own blocks (directories, extent trees) are not the code's
        return max(0, used - _METADATA_ALLOWANCE)

    async def _measure(self) -> tuple[int, float]:
        started = time.perf_counter()
        image = self._image()  # one statfs: no thread needed
        if image is None:
            used = await asyncio.to_thread(self._used)
        else:
            used = max(0, image - _METADATA_ALLOWANCE)
        return used, time.perf_counter() - started

    def filled(self) -> bool:
        """True when the workspace's disk image is full (a write was refused for room)."""
        free = self._free()
        # ext4 refuses writes with up to a MiB or two still free (delayed allocation
        # reservations): that is what "full" looks like
        return free is not None and free < _disk.NEARLY_FULL

    async def watch(self, kill: Callable[[], None]) -> None:
        # a workspace already over its limit may still run code that cleans it up: only
        # growth past both the limit and the starting size kills the run
        used, cost = await self._measure()
        self._ceiling = max(self.limit, used)
        while True:
            # big workspaces are walked less often: at most ~10% of one core goes to this
            await asyncio.sleep(max(self.interval, cost * 10))
            used, cost = await self._measure()
            if used > self._ceiling:
                self.exceeded = True
                kill()
                return


class LocalProvider(LocalAgents, AsyncProvider):
    """Runs code on this machine in namespaces, cgroups and Landlock; no container engine."""

    name: ClassVar[str] = "local"
    enforces_unique_names: ClassVar[bool] = True
    description: ClassVar[str] = (
        "this machine, isolated in a root of its own with namespaces, one uid per "
        "workspace, cgroups, Landlock and seccomp (no Docker needed)"
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.FILES,
            Capability.SNAPSHOTS,
            Capability.GIT,
            Capability.TEMPLATES,
            Capability.PERSISTENCE,
            Capability.RESOURCE_LIMITS,
            Capability.METRICS,
            Capability.NETWORK_POLICY,
            Capability.STREAMING,
            Capability.INTERPRETER,
            Capability.PROCESSES,
            Capability.PORTS,
        }
    )
    languages: ClassVar[frozenset[str]] = frozenset(
        {Language.PYTHON, Language.JAVASCRIPT, Language.SHELL}
    )
    config_model: ClassVar[type[LocalConfig]] = LocalConfig
    internal_labels: ClassVar[frozenset[str]] = frozenset({LABEL_NAMESPACE})
    max_cpu: ClassVar[float | None] = float(os.cpu_count() or 1)
    max_memory: ClassVar[int | None] = _host_memory_mib()

    config: LocalConfig

    def __init__(self, config: LocalConfig | None = None) -> None:
        super().__init__(config)
        self._root_host = os.geteuid() == 0
        self._disk_reason = (
            _disk.unavailable() if self.config.disk_images else "disabled by configuration"
        )
        self._store = WorkspaceStore(
            Path(self.config.root), self.name, None, images=self._disk_reason is None
        )
        # images mounted by a provider that is never closed are unmounted at exit
        self._store_finalizer = weakref.finalize(self, self._store.close)
        self._templates = TemplateRegistry.from_config(self.config.templates)
        self._snapshots: SnapshotStore | None = None
        self._engine: _Engine | None = None
        self._engine_lock = threading.Lock()
        self._refused: IsolationReport | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._trash: set[Path] = set()
        self._namespace = self.config.namespace or default_namespace(Path(self.config.root))
        self._names = NameIndex(self._store.base, self._store.exists, self._named_workspaces)
        self._running = 0
        self._idle_event: asyncio.Event | None = None
        self._idle_loop: asyncio.AbstractEventLoop | None = None
        self._refilling: set[int] = set()

    # ------------------------------------------------------------------ engine

    def isolation_report(self) -> IsolationReport:
        """Probe (once) and report which isolation primitives are active and how limits work.

        Also when the provider refuses to start for a missing layer (then every call that
        needs the engine raises :class:`~sandstorm.IsolationUnavailable`), so that
        ``sandstorm doctor`` can show what is missing.
        """
        try:
            return self._start_engine().report
        except IsolationUnavailable:
            if self._refused is None:
                raise
            return self._refused

    def _start_engine(self) -> _Engine:
        with self._engine_lock:
            if self._engine is not None:
                return self._engine
            if self._sandstorm_closed:
                raise ProviderUnavailable("the provider is closed", provider=self.name)
            from ._cgroups import Cgroups
            from ._forkserver_host import ForkServer, run_probe

            config = self.config
            python = _real(sys.executable)
            key = (python, os.geteuid(), config.uid_range[0])
            raw = _PROBES.get(key)
            if raw is None:
                raw = _PROBES[key] = run_probe(python, {"uid": config.uid_range[0]})
            cgroups = Cgroups(enabled=config.cgroups)
            engine: _Engine | None = None
            try:
                report = build_report(
                    raw,
                    cgroups.report(),
                    cgroups.errors(),
                    landlock_enabled=config.landlock,
                    seccomp_enabled=config.seccomp,
                    uid_range=config.uid_range,
                )
                report = _with_disk_quota(report, self._disk_reason)
                self._refused = report
                self._check_layers(report)
                self._refused = None
                base_paths = sysconfig.get_paths(
                    vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
                )
                python_path = tuple(
                    dict.fromkeys(
                        [
                            *(str(p) for p in config.python_path),
                            base_paths["purelib"],
                            base_paths["platlib"],
                        ]
                    )
                )
                node = config.node or shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
                shell = config.shell or shutil.which("bash", path="/usr/bin:/bin") or "/bin/sh"
                engine = _Engine(
                    report=report,
                    cgroups=cgroups,
                    server=ForkServer(
                        python,
                        preload=(*_STDLIB_PRELOAD, *config.preload),
                        python_path=python_path,
                        direct=report.is_active("pidns") and not report.is_active("userns"),
                    ),
                    python=python,
                    python_prefix=_real(sys.base_prefix),
                    python_path=python_path,
                    node=_real(node) if node else None,
                    shell=_real(shell),
                    cgroup_bases=cgroups.bases(),
                )
                self._store.prepare()
                if config.cgroup_favordynmods and cgroups.active:
                    engine.favordynmods = self._favor_dynmods()
                if report.is_active("netns") and config.prewarm > 0:
                    engine.server.prewarm(self._sandbox_spec(engine, blocked=True), config.prewarm)
                engine.server.ensure_started()
            except BaseException:
                cgroups.close()
                if engine is not None and engine.favordynmods is not None:
                    engine.favordynmods.close()
                raise
            self._store.purge_trash()
            self._engine = engine
            self._finalizer = weakref.finalize(self, engine.close)
            return engine

    def _favor_dynmods(self) -> FavorDynmods | None:
        """Mount the opt-in ``favordynmods`` hierarchy (``cgroup_favordynmods``)."""
        from ._favordynmods import FavorDynmods

        tuning = FavorDynmods(Path(self.config.root))
        if tuning.mount():
            log.info("sandstorm: cgroup favordynmods on (%s)", tuning.path)
            return tuning
        log.warning("sandstorm: cgroup_favordynmods is set but unavailable: %s", tuning.error)
        return None

    def _check_layers(self, report: IsolationReport) -> None:
        """Refuse to start without a sandbox layer unless ``allow_weaker`` names it.

        The layers are :data:`SANDBOX_LAYERS` (``disk_quota`` only where the probe
        reports on it) plus ``require``; a layer turned off in the configuration
        (``landlock=False``, ``seccomp=False``, ``disk_images=False``) counts as allowed.
        Every layer allowed and missing is logged as a warning, on every start.
        """
        config = self.config
        known = {*report.active, *report.unavailable}
        layers = [name for name in SANDBOX_LAYERS if name != "disk_quota" or name in known]
        disabled = {
            "landlock": not config.landlock,
            "seccomp": not config.seccomp,
            "disk_quota": not config.disk_images,
        }
        wanted = dict.fromkeys([*layers, *config.require])
        missing = [name for name in wanted if not report.is_active(name)]
        allowed = set(config.allow_weaker) | {name for name, off in disabled.items() if off}
        refused = [name for name in missing if name not in allowed or name in config.require]
        if refused:
            reasons = "; ".join(
                f"{name}: {report.unavailable.get(name, 'not available')}" for name in refused
            )
            raise IsolationUnavailable(
                f"the local provider needs {', '.join(refused)}, which this host cannot "
                f"provide ({reasons}); to run with weaker isolation anyway, pass "
                f"allow_weaker={sorted(set(config.allow_weaker) | set(refused))!r}"
                + (" and remove them from 'require'" if set(refused) & set(config.require) else "")
            )
        for name in missing:
            _log.warning(
                "sandstorm local provider: running WITHOUT %s (%s), as allow_weaker permits",
                name,
                report.unavailable.get(name, "not available"),
            )

    async def _engine_ready(self) -> _Engine:
        engine = self._engine
        if engine is not None:
            return engine
        engine = await asyncio.to_thread(self._start_engine)
        self._refill_spares(self.config.disk_limit << 20)
        return engine

    def _refill_spares(self, disk: int) -> None:
        """Bring the blank workspaces of size ``disk`` back up, in the background."""
        if (
            disk in self._refilling
            or self.closed
            or self.config.spare_workspaces == 0
            or self._disk_reason is not None
        ):
            return
        self._refilling.add(disk)

        async def refill() -> None:
            try:
                await self._quiet()
                await asyncio.to_thread(self._store.make_spares, disk, self.config.spare_workspaces)
            except Exception as exc:
                log.warning("could not prepare blank workspaces: %r", exc)
            finally:
                self._refilling.discard(disk)

        self._sandstorm_background(refill())

    def _idle(self) -> asyncio.Event:
        """Set while no run is in flight (one event per event loop the provider serves)."""
        loop = asyncio.get_running_loop()
        if self._idle_event is None or self._idle_loop is not loop:
            self._idle_event, self._idle_loop = asyncio.Event(), loop
            if not self._running:
                self._idle_event.set()
        return self._idle_event

    async def _quiet(self, limit: float = 0.05) -> None:
        """Wait (at most ``limit`` s) until no run is in flight: background work waits
        for the CPU the runs need."""
        if self._running and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle().wait(), limit)

    async def _is_available(self) -> bool:
        await self._engine_ready()
        return True

    async def _aclose(self) -> None:
        self._close_agents()
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            await asyncio.to_thread(engine.close)
        self._store_finalizer.detach()
        await asyncio.to_thread(self._store.close)

    # ------------------------------------------------------------------ workspaces

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        spec = spec.model_copy(update={"labels": {**spec.labels, LABEL_NAMESPACE: self._namespace}})
        if spec.network.mode == "allow_list":
            raise ProviderConfigError(
                "the local provider supports network modes 'blocked' (default) and 'host'; "
                "an allow-list cannot be enforced honestly on one machine without a proxy"
            )
        if spec.template is not None:
            self._templates.get(spec.template)  # TemplateNotFound lists the known ones
        workspace = Workspace(
            id=WorkspaceStore.new_id(),
            provider=self.name,
            name=spec.name,
            template=spec.template,
            persistent=spec.persistent,
            created_at=WorkspaceStore.now(),
            resources=spec.resources,
            network=spec.network,
            labels=dict(spec.labels),
        )
        engine = await self._engine_ready()
        disk = (spec.resources.disk or self.config.disk_limit) << 20
        # formatting, mounting and claiming the name happen in a thread; a caller
        # cancelled meanwhile must not leave the workspace (nor its name) behind
        making = asyncio.ensure_future(asyncio.to_thread(self._make, workspace, spec.env, disk))
        try:
            taken = await asyncio.shield(making)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                if not await making:
                    await asyncio.to_thread(self._unmake, workspace)
            raise
        self._refill_spares(disk)
        if taken:  # by another provider or process on this root, meanwhile
            raise WorkspaceExists(str(spec.name), self.name)
        owner = self._owner_of(workspace.id)
        if owner is not None:
            os.chown(self._store.files(workspace.id), *owner)
        if engine.cgroups.active:
            try:
                self._ensure_cgroups(engine, workspace)
            except OSError:
                self._store.delete(workspace.id)
                raise
        if spec.template is not None:
            try:
                await self._apply_template(workspace, spec.template)
            except BaseException:
                await self._delete_workspace(workspace.id)
                raise
        return workspace

    def _make(self, workspace: Workspace, env: Mapping[str, str], disk: int) -> bool:
        """Store a new workspace and claim its name; True (and nothing made) when the
        name is taken."""
        self._store.create(workspace, env, disk)
        if workspace.name is None:
            return False
        if self._names.claim(self._namespace, workspace.name, workspace.id) is None:
            return False
        self._store.delete(workspace.id)
        return True

    def _unmake(self, workspace: Workspace) -> None:
        """Undo :meth:`_make` (its caller was cancelled)."""
        self._store.delete(workspace.id)
        if workspace.name is not None:
            self._names.release(self._namespace, workspace.name, workspace.id)

    async def _apply_template(self, workspace: Workspace, name: str) -> None:
        files = self._store.files(workspace.id)
        owner = self._owner_of(workspace.id)
        setup = await asyncio.to_thread(self._templates.materialize, name, files, owner)
        for command in setup:
            request = ExecRequest(code=command, language=Language.SHELL, timeout=600.0)
            # a run like any other: the run hooks see it and it is audited
            result = await self._sandstorm_run_hooked(workspace, request)
            if result.exit_code != 0:
                raise WorkspaceError(
                    f"setup command {command!r} of template {name!r} failed with exit code "
                    f"{result.exit_code}: {result.stderr[-2000:]}"
                )

    def _ensure_cgroups(self, engine: _Engine, workspace: Workspace) -> None:
        engine.cgroups.ensure_workspace(
            workspace.id,
            memory_mib=workspace.resources.memory or self.config.memory_limit,
            cpu=workspace.resources.cpu,
            pids=self.config.pids_limit,
            reusable=not workspace.persistent,
        )

    def _named_workspaces(self) -> Iterator[tuple[str, str, str]]:
        """(namespace, name, id) of every named workspace under the root (to index)."""
        default = default_namespace(Path(self.config.root))
        for workspace in self._store.list():
            if workspace.name is not None:
                namespace = workspace.labels.get(LABEL_NAMESPACE, default)
                yield namespace, workspace.name, workspace.id

    async def _find_by_name(self, name: str) -> Workspace | None:
        names = self._names
        if names.ready:
            workspace_id = names.find(self._namespace, name)
        else:
            workspace_id = await asyncio.to_thread(names.find, self._namespace, name)
        if workspace_id is None:
            return None
        try:
            workspace = await self._get_workspace(workspace_id)
        except WorkspaceNotFound:
            return None
        return workspace if workspace.name == name else None

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        workspace = self._store.get(workspace_id)
        if not self._mine(workspace):
            raise WorkspaceNotFound(workspace_id, self.name)
        return workspace

    async def _list_workspaces(self) -> list[Workspace]:
        return [ws for ws in await asyncio.to_thread(self._store.list) if self._mine(ws)]

    def _mine(self, workspace: Workspace) -> bool:
        """True when ``workspace`` is in this provider's namespace (unlabelled: the default)."""
        found = workspace.labels.get(LABEL_NAMESPACE)
        if found is None:
            return self._namespace == default_namespace(Path(self.config.root))
        return found == self._namespace

    async def _delete_workspace(self, workspace_id: str) -> None:
        # the workspace vanishes at once (renamed into trash/, its processes killed);
        # its files and cgroups are removed in the background, and aclose() waits for that
        workspace = await self._get_workspace(workspace_id)  # not found outside the namespace
        trash = self._store.discard(workspace_id)
        if workspace.name is not None:
            self._names.release(self._namespace, workspace.name, workspace_id)
        self._trash.add(trash)
        engine = self._engine
        if engine is not None:
            engine.cgroups.kill_workspace(workspace_id)
        self._forget_workspace(workspace_id)

        async def cleanup() -> None:
            await self._quiet()
            if engine is not None:
                await asyncio.to_thread(engine.cgroups.remove_workspace, workspace_id)
            await asyncio.to_thread(self._store.purge, trash)
            self._trash.discard(trash)

        self._sandstorm_background(cleanup())

    def _sweep_leftovers(self) -> None:
        # purges that a dying event loop cancelled (the files are already out of sight)
        for trash in list(self._trash):
            self._store.purge(trash)
            self._trash.discard(trash)
        if self.closed:
            # the store may have closed before these purges: its bind goes now
            self._store.release_bind()

    def _has_leftovers(self) -> bool:
        return bool(self._trash)

    # ------------------------------------------------------------------ running code

    def _env(
        self, workspace: Workspace, request: ExecRequest, home: str, shell: str
    ) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "PWD": home,
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "SHELL": shell,
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self._store.env(workspace.id))
        env.update(request.env)
        return env

    def _owner_of(self, workspace_id: str) -> Owner | None:
        """Who owns the workspace's files: its own uid (and gid) when the host is root."""
        if not self._root_host:
            return None
        uid = self._store.uid(workspace_id)
        if uid is None:
            uid = self._store.assign_uid(workspace_id, self.config.uid_range)
        return (uid, uid)

    def _sandbox_spec(
        self, engine: _Engine, blocked: bool, binds: tuple[str, ...] = ()
    ) -> SandboxSpec:
        """How this provider's sandboxes are built (for one network mode and extra binds).

        Pre-built sandboxes are made from exactly this (blocked network, no extra binds).
        """
        from ._forkserver import (
            CLONE_NEWIPC,
            CLONE_NEWNET,
            CLONE_NEWNS,
            CLONE_NEWPID,
            CLONE_NEWUTS,
            SandboxSpec,
        )

        key = (blocked, binds)
        cached = engine.static.get(key)
        if cached is not None:
            return cached
        report = engine.report
        config = self.config
        wanted = [engine.python_prefix, *engine.python_path, engine.shell]
        if engine.node:
            node_bin = os.path.dirname(engine.node)
            # a node installed under <prefix>/bin brings <prefix>/lib (its own modules)
            prefix = os.path.dirname(node_bin) if node_bin.endswith("/bin") else node_bin
            wanted.append(prefix if prefix != "/" else engine.node)
        root_links: list[tuple[str, str]] = [("/var/tmp", "/tmp")]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                root_links.append((path, os.readlink(path)))
            elif os.path.isdir(path):
                wanted.append(path)
        for path in (*_ETC_BINDS, "/etc/localtime"):
            if os.path.islink(path):
                # the same link inside; its target is bound where it is not already
                root_links.append((path, os.readlink(path)))
                if path != "/etc/localtime" and os.path.exists(path):
                    wanted.append(path)
            elif os.path.exists(path) and path != "/etc/localtime":
                wanted.append(path)
        wanted += [*config.read_only_binds, *binds]
        # bound at their real paths (a symlinked directory on the way, such as /lib ->
        # usr/lib, is a link inside too); a path inside another bound path comes along
        paths = [_real(p) for p in wanted]
        bound = tuple(
            sorted(
                path
                for path in dict.fromkeys(paths)
                if not any(other != path and _under(path, other) for other in paths)
            )
        )
        etc = [
            ("hostname", "sandbox\n"),
            ("hosts", _HOSTS.format(name="sandbox")),
            ("nsswitch.conf", _NSSWITCH),
        ]
        copies = [*_ETC_COPIES, *(() if blocked else ("/etc/resolv.conf",))]
        for path in copies:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                etc.append((os.path.basename(path), Path(path).read_text()))
        flags = 0
        for primitive, flag in (
            ("mountns", CLONE_NEWNS),
            ("ipcns", CLONE_NEWIPC),
            ("utsns", CLONE_NEWUTS),
            ("pidns", CLONE_NEWPID),
        ):
            if report.is_active(primitive):
                flags |= flag
        if blocked:
            flags |= CLONE_NEWNET
        spec = SandboxSpec(
            unshare=flags,
            userns=report.is_active("userns"),
            pidns=report.is_active("pidns"),
            mountns=report.is_active("mountns") and report.is_active("pivot_root"),
            netns=blocked,
            utsns=report.is_active("utsns"),
            hostname="sandbox",
            binds=bound,
            links=tuple(root_links),
            etc=tuple(etc),
            devices=tuple(path for path in _DEVICES if os.path.exists(path)),
            tmpfs_bytes=config.tmp_size << 20,
            workspaces=str(self._store.base.resolve()),
            workspace_path=config.workspace_path,
            cgroup_bases=engine.cgroup_bases,
            shell=engine.shell,
        )
        engine.static[key] = spec
        return spec

    def _request_for(
        self,
        engine: _Engine,
        workspace: Workspace,
        request: ExecRequest,
        *,
        host_network: bool = False,
        read_only: tuple[str, ...] = (),
    ) -> RunRequest:
        from ._forkserver import LandlockSpec, RunRequest

        report = engine.report
        files = str(self._store.files(workspace.id).resolve())
        blocked = workspace.network.mode != "host" and not host_network
        if blocked and not report.is_active("netns"):
            raise IsolationUnavailable(
                "network mode 'blocked' needs a network namespace, which this host cannot "
                "create; use network=NetworkPolicy.host() to run with the host network"
            )
        resources = workspace.resources
        disk_mib = resources.disk or self.config.disk_limit
        rlimits: dict[str, tuple[int, int]] = {
            "core": (0, 0),
            "nofile": (self.config.nofile_limit, self.config.nofile_limit),
            "fsize": (disk_mib << 20, disk_mib << 20),
            "cpu": (int(request.timeout) + 2, int(request.timeout) + 4),
        }
        memory = resources.memory or self.config.memory_limit
        if memory is not None and not report.is_active("cgroup_memory"):
            rlimits["data"] = (memory << 20, memory << 20)
        if not report.is_active("cgroup_pids") and report.is_active("uid_drop"):
            rlimits["nproc"] = (self.config.pids_limit, self.config.pids_limit)
        binds: tuple[str, ...] = ()
        if workspace.template is not None and workspace.template in self._templates:
            binds = tuple(str(p) for p in self._templates.get(workspace.template).binds)
        # git clone from a local repository: shown read-only to that run
        spec = self._sandbox_spec(engine, blocked, (*binds, *read_only))
        # inside a new root the workspace is always at the same place; without one
        # (allow_weaker=["pivot_root"]) the code works in the host's directory
        cwd = spec.workspace_path if spec.mountns else files
        landlock = None
        if report.is_active("landlock"):
            # the root holds only what is allowed: all of it may be read; writes only to
            # the workspace and the private scratch space
            landlock = LandlockSpec(
                ro=("/",) if spec.mountns else (*spec.binds, "/etc", "/proc", "/dev"),
                rw=(cwd, *_SCRATCH, *spec.devices),
                deny_tcp=False,
            )
        code = request.code
        argv: tuple[str, ...] | None = None
        code_file = None
        if request.language == Language.JAVASCRIPT:
            if engine.node is None:
                raise ProviderUnavailable(
                    "javascript needs node, which is not installed on this host", provider=self.name
                )
            if len(code.encode()) < _INLINE_CODE_LIMIT:
                argv = (engine.node, "-e", code)
            else:
                code_file = "/tmp/.sandstorm-main.js"
                argv = (engine.node, code_file)
        elif request.language == Language.SHELL:
            if len(code.encode()) < _INLINE_CODE_LIMIT:
                argv = (engine.shell, "-c", code)
            else:
                code_file = "/tmp/.sandstorm-main.sh"
                argv = (engine.shell, code_file)
        owner = self._owner_of(workspace.id) if report.is_active("uid_drop") else None
        return RunRequest(
            sandbox=spec,
            code=code,
            argv=argv,
            code_file=code_file,
            env=self._env(workspace, request, cwd, engine.shell),
            workspace=files,
            cwd=cwd,
            cgroupns=report.is_active("cgroupns"),
            uid=owner[0] if owner else None,
            gid=owner[1] if owner else None,
            inner_uid=1000 if report.is_active("userns") else None,
            rlimits=rlimits,
            landlock=landlock,
            landlock_abi=report.landlock_abi,
            seccomp=report.is_active("seccomp"),
            cgroups=(),
            kill_cgroup=None,
            cgroup_view=None,
        )

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        return await self._run(workspace, request)

    async def _run(
        self,
        workspace: Workspace,
        request: ExecRequest,
        *,
        host_network: bool = False,
        read_only: tuple[str, ...] = (),
    ) -> RunResult:
        """Run ``request`` in ``workspace``; ``host_network``/``read_only`` serve git clone."""
        from ._forkserver_host import execute

        engine = await self._engine_ready()
        files = self._files_dir(workspace)
        payload = self._request_for(
            engine, workspace, request, host_network=host_network, read_only=read_only
        )
        if payload.uid is not None and payload.gid is not None:
            st = files.stat()
            if (st.st_uid, st.st_gid) != (payload.uid, payload.gid):
                await asyncio.to_thread(chown_tree, files, payload.uid, payload.gid)
        cgroups = engine.cgroups
        run = None
        oom_before = 0
        if cgroups.active:
            self._ensure_cgroups(engine, workspace)
            view = self.config.cgroup_view and engine.report.is_active("mountns")
            run = cgroups.new_run(
                workspace.id, cpu_limited=workspace.resources.cpu is not None, view=view
            )
            payload = dataclasses.replace(
                payload,
                cgroups=tuple(run.procs),
                kill_cgroup=run.kill_procs,
                cgroup_view=tuple(run.view) if view else None,
            )
            oom_before = cgroups.oom_kills(workspace.id)
        disk_guard = _DiskGuard(
            files,
            (workspace.resources.disk or self.config.disk_limit) << 20,
            self.config.disk_check_interval,
            lambda: self._store.usage(workspace.id),
        )
        is_warm = engine.server.warm == payload.sandbox
        self._running += 1
        self._idle().clear()
        try:
            outcome = await execute(
                engine.server,
                payload,
                warm=is_warm,
                stdin=request.stdin,
                timeout=request.timeout,
                output_cap=self.config.output_cap,
                on_stdout=request.on_stdout,
                on_stderr=request.on_stderr,
                kill_group=run.kill if run is not None else None,
                monitor=disk_guard.watch,
            )
        finally:
            self._running -= 1
            idle, loop = self._idle_event, self._idle_loop
            # a coroutine destroyed at exit may have no running loop, or a closed one
            if not self._running and idle is not None and loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    idle.set()
            if run is not None:
                # the result may arrive while init is still exiting: SIGKILL whatever is
                # left; the emptied cgroup is removed in the background
                run.kill()
                if not run.remove():
                    self._sandstorm_background(self._remove_run(run))
        if outcome.callback_error is not None:
            raise outcome.callback_error
        if outcome.setup_error is not None:
            raise IsolationUnavailable(
                f"the sandbox could not be set up, so the code did not run: {outcome.setup_error}"
            )
        if outcome.timed_out:
            raise ExecutionTimeout(
                request.timeout, outcome.stdout, outcome.stderr, workspace_id=workspace.id
            )
        status = outcome.status
        sig: int | None = None
        if status is None:
            sig = signal.SIGKILL
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
        exit_code = 128 + sig if sig is not None else os.waitstatus_to_exitcode(status or 0)
        reason = TerminationReason.EXITED if sig is None else TerminationReason.SIGNALED
        stderr = outcome.stderr
        if outcome.output_killed:
            reason = TerminationReason.OUTPUT_LIMIT
        elif disk_guard.exceeded:
            reason = TerminationReason.DISK_LIMIT
            stderr += (
                f"\nsandstorm: the workspace went past its disk limit of "
                f"{disk_guard.limit >> 20} MiB; the run was killed\n"
            )
        elif exit_code != 0 and await asyncio.to_thread(disk_guard.filled):
            reason = TerminationReason.DISK_LIMIT
            stderr += (
                f"\nsandstorm: the workspace reached its disk limit of "
                f"{disk_guard.limit >> 20} MiB\n"
            )
        elif sig == signal.SIGKILL and run is not None:
            if cgroups.oom_kills(workspace.id) > oom_before:
                reason = TerminationReason.MEMORY_LIMIT
        elif sig == signal.SIGXCPU:
            reason = TerminationReason.CPU_LIMIT
        return RunResult(
            stdout=outcome.stdout,
            stderr=stderr,
            exit_code=exit_code,
            duration=outcome.duration,
            workspace_id=workspace.id,
            provider=self.name,
            language=request.language,
            stdout_truncated=outcome.stdout_truncated,
            stderr_truncated=outcome.stderr_truncated,
            reason=reason,
            signal=sig,
        )

    # ------------------------------------------------------------------ files

    def _files_dir(self, workspace: Workspace) -> Path:
        files = self._store.mounted(workspace.id)
        if not files.is_dir():
            raise WorkspaceNotFound(workspace.id, self.name)
        return files

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        from ._files import write_file

        files = self._files_dir(workspace)
        try:
            await asyncio.to_thread(write_file, files, path, data, self._owner_of(workspace.id))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                disk = workspace.resources.disk or self.config.disk_limit
                raise WorkspaceError(
                    f"{path!r} does not fit: the workspace's disk limit is {disk} MiB"
                ) from None
            raise

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        from ._files import read_file

        return await asyncio.to_thread(read_file, self._files_dir(workspace), path)

    async def _read_file_at_most(self, workspace: Workspace, path: str, max_size: int) -> bytes:
        from ._files import read_file

        files = self._files_dir(workspace)
        return await asyncio.to_thread(read_file, files, path, max_size=max_size)

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        from ._files import list_files

        return await asyncio.to_thread(list_files, self._files_dir(workspace), path)

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        from ._files import delete_path

        await asyncio.to_thread(delete_path, self._files_dir(workspace), path)

    # ------------------------------------------------------------------ git

    async def _git_run(
        self, workspace: Workspace, command: GitCommand, timeout: float
    ) -> RunResult:
        """Run a git script as sandboxed code of ``workspace`` (never on the host)."""
        request = ExecRequest(
            code=command.script, language=Language.SHELL, env=command.env, timeout=timeout
        )
        try:
            return await self._run(
                workspace,
                request,
                host_network=command.host_network,
                read_only=command.read_only,
            )
        except ExecutionTimeout:
            raise WorkspaceError(
                f"{command.what} timed out after {timeout:g}s and was killed"
            ) from None

    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        from ._git import clone_plan, git_error

        dest = await self._git_path(workspace, path)
        plan = clone_plan(url, dest, branch)
        timeout = self.config.git_timeout
        log.debug("git clone %s (branch %s) into %s", plan.shown, branch, dest)
        try:
            result = await self._git_run(workspace, plan.fetch, timeout)
        except WorkspaceError:
            await self._git_run(workspace, plan.cleanup, 60.0)
            raise
        if result.exit_code != 0:
            raise WorkspaceError(
                git_error(plan.fetch.what, result.exit_code, result.stderr, plan.secrets)
            )
        try:
            result = await self._git_run(workspace, plan.checkout, timeout)
        except WorkspaceError:
            await self._git_run(workspace, plan.cleanup, 60.0)
            raise
        if result.exit_code != 0:
            await self._git_run(workspace, plan.cleanup, 60.0)
            raise WorkspaceError(
                git_error(plan.checkout.what, result.exit_code, result.stderr, plan.secrets)
            )

    async def _git_path(self, workspace: Workspace, path: str) -> str:
        """``path`` relative to the run's directory; absolute ones as the code sees them."""
        from ._git import relative_path

        files = self._files_dir(workspace)
        report = (await self._engine_ready()).report
        new_root = report.is_active("mountns") and report.is_active("pivot_root")
        return relative_path(path, self.config.workspace_path if new_root else str(files))

    async def _git_status(self, workspace: Workspace, path: str) -> GitStatus:
        from ._git import (
            NOT_A_DIR,
            NOT_A_REPO,
            NOT_EMPTY,
            NOT_FOUND,
            git_error,
            parse_porcelain_v2,
            status_command,
        )

        command = status_command(await self._git_path(workspace, path))
        result = await self._git_run(workspace, command, self.config.git_timeout)
        if result.exit_code in (NOT_FOUND, NOT_A_REPO, NOT_EMPTY, NOT_A_DIR):
            raise WorkspaceError(result.stderr.strip()[-2000:])
        if result.exit_code != 0:
            raise WorkspaceError(git_error(command.what, result.exit_code, result.stderr))
        if result.stdout_truncated:
            raise WorkspaceError("git status printed more than the output limit")
        return parse_porcelain_v2(result.stdout.encode(errors="surrogateescape"))

    # ------------------------------------------------------------------ snapshots

    def _snapshot_store(self) -> SnapshotStore:
        from ._snapshots import SnapshotStore

        if self._snapshots is None:
            self._snapshots = SnapshotStore(Path(self.config.root) / "snapshots", self.name)
        return self._snapshots

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        store = await asyncio.to_thread(self._snapshot_store)
        files = self._files_dir(workspace)
        return await asyncio.to_thread(store.create, files, workspace.id, name)

    async def _restore(self, snapshot_id: str, name: str | None) -> Workspace:
        store = await asyncio.to_thread(self._snapshot_store)
        snap = await asyncio.to_thread(store.get, snapshot_id)
        source = None
        with contextlib.suppress(WorkspaceNotFound):
            source = self._store.get(snap.workspace_id)
        spec = WorkspaceSpec(
            name=name,
            resources=source.resources if source is not None else Resources(),
            network=source.network if source is not None else NetworkPolicy(),
            labels=dict(source.labels) if source is not None else {},
            env=self._store.env(source.id) if source is not None else {},
        )
        workspace = await self._create_workspace(spec)
        try:
            await asyncio.to_thread(
                store.restore_into,
                snapshot_id,
                self._files_dir(workspace),
                self._owner_of(workspace.id),
            )
        except OSError as exc:
            await self._delete_workspace(workspace.id)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WorkspaceError(
                    f"snapshot {snapshot_id!r} does not fit the workspace's disk limit of "
                    f"{spec.resources.disk or self.config.disk_limit} MiB"
                ) from None
            raise
        except BaseException:
            await self._delete_workspace(workspace.id)
            raise
        return workspace

    async def _list_snapshots(self) -> list[Snapshot]:
        store = await asyncio.to_thread(self._snapshot_store)
        return await asyncio.to_thread(store.list)

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        store = await asyncio.to_thread(self._snapshot_store)
        await asyncio.to_thread(store.delete, snapshot_id)

    @staticmethod
    async def _remove_run(run: CgroupRun) -> None:
        for _ in range(1000):
            await asyncio.sleep(0.002)
            if run.remove():
                return

    async def _effective_capabilities(self) -> frozenset[Capability]:
        engine = await self._engine_ready()
        if engine.cgroups.active:
            return self.capabilities
        return self.capabilities - {Capability.METRICS}

    # ------------------------------------------------------------------ metrics

    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        engine = await self._engine_ready()
        files = self._files_dir(workspace)
        if not engine.cgroups.active:
            raise CapabilityNotSupported(
                self.name, Capability.METRICS, "no writable cgroup hierarchy on this host"
            )
        self._ensure_cgroups(engine, workspace)
        image = await asyncio.to_thread(self._store.usage, workspace.id)
        used = image[0] if image is not None else await asyncio.to_thread(disk_usage, files)
        usage = engine.cgroups.usage(workspace.id)
        return WorkspaceMetrics(
            workspace_id=workspace.id,
            collected_at=WorkspaceStore.now(),
            cpu_user_seconds=usage.cpu_user_seconds or 0.0,
            cpu_system_seconds=usage.cpu_system_seconds or 0.0,
            memory_current_bytes=usage.memory_current_bytes or 0,
            memory_peak_bytes=usage.memory_peak_bytes or 0,
            disk_read_bytes=usage.io_read_bytes,
            disk_write_bytes=usage.io_write_bytes,
            process_count=usage.process_count or 0,
            disk_used_bytes=used,
            cpu_limit=usage.cpu_limit,
            memory_limit_bytes=usage.memory_limit_bytes,
        )
