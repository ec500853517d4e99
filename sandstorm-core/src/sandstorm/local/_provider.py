"""``LocalProvider``: run code on this machine, isolated, with workspaces as directories.

Python runs in-process inside a forked child of a pre-started sandbox interpreter (the
fork server, ``_sandbox.py``); javascript (node) and shell are ``execve``'d from an
identically isolated child. Every run gets: new net (no network unless the workspace
asks for the host's), pid (fresh /proc), mount, ipc, uts and cgroup namespaces; an
unprivileged uid when the host is root; rlimits; Landlock and seccomp where the kernel
has them; per-workspace cgroups for memory/pids/cpu limits, whole-tree kill and metrics,
shown to the code read-only at ``/sys/fs/cgroup`` (its own cgroups only, ``cgroup_view``).

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
import hashlib
import os
import shutil
import signal
import stat
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._capabilities import Capability
from .._errors import (
    CapabilityNotSupported,
    ExecutionTimeout,
    IsolationUnavailable,
    ProviderConfigError,
    ProviderUnavailable,
    WorkspaceError,
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
from ._cgroups import CgroupRun, Cgroups
from ._config import LocalConfig
from ._files import Owner, delete_path, list_files, read_file, write_file
from ._git import clone as git_clone
from ._git import status as git_status
from ._probe import IsolationReport, build_report
from ._sandbox import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
)
from ._server import ForkServer, execute, run_probe
from ._snapshots import SnapshotStore
from ._templates import TemplateRegistry
from ._workspaces import WorkspaceStore, chown_tree, disk_usage

__all__ = ["LocalProvider"]

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
_SYSTEM_READ_ONLY = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/dev",
)
_CGROUP_VIEW = "/sys/fs/cgroup"
"""Where the code sees its workspace's own cgroups, read-only (``cgroup_view``)."""
_DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


_PROBES: dict[tuple[str, int, int], dict[str, Any]] = {}
"""Probe verdicts, once per (interpreter, uid, sandbox uid) for the life of the process."""


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
    static: dict[bool, dict[str, Any]] = field(default_factory=dict)

    def close(self) -> None:
        self.server.close()
        self.cgroups.close()


class _DiskGuard:
    """Kills a run whose workspace grows past ``limit`` bytes (checked every ``interval`` s)."""

    def __init__(self, files: Path, limit: int, interval: float) -> None:
        self.files = files
        self.limit = limit
        self.interval = interval
        self.exceeded = False

    async def _measure(self) -> tuple[int, float]:
        started = time.perf_counter()
        used = await asyncio.to_thread(disk_usage, self.files)
        return used, time.perf_counter() - started

    async def watch(self, kill: Callable[[], None]) -> None:
        # a workspace already over its limit may still run code that cleans it up: only
        # growth past both the limit and the starting size kills the run
        used, cost = await self._measure()
        ceiling = max(self.limit, used)
        while True:
            # big workspaces are walked less often: at most ~10% of one core goes to this
            await asyncio.sleep(max(self.interval, cost * 10))
            used, cost = await self._measure()
            if used > ceiling:
                self.exceeded = True
                kill()
                return


class LocalProvider(AsyncProvider):
    """Runs code on this machine in namespaces, cgroups and Landlock; no container engine."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = (
        "this machine, isolated with namespaces, an unprivileged uid, cgroups, "
        "Landlock and seccomp (no Docker needed)"
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
        owner = None
        if os.geteuid() == 0:
            owner = (self.config.sandbox_uid, self.config.sandbox_gid)
        self._owner: Owner | None = owner
        self._store = WorkspaceStore(Path(self.config.root), self.name, owner)
        self._templates = TemplateRegistry.from_config(self.config.templates)
        self._snapshots: SnapshotStore | None = None
        self._engine: _Engine | None = None
        self._engine_lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._trash: set[Path] = set()
        self._namespace = self.config.namespace or default_namespace(Path(self.config.root))

    # ------------------------------------------------------------------ engine

    def isolation_report(self) -> IsolationReport:
        """Probe (once) and report which isolation primitives are active and how limits work.

        Raises :class:`~sandstorm.IsolationUnavailable` when a primitive listed in
        ``require`` is missing.
        """
        return self._start_engine().report

    def _start_engine(self) -> _Engine:
        with self._engine_lock:
            if self._engine is not None:
                return self._engine
            if self._closed:
                raise ProviderUnavailable("the provider is closed", provider=self.name)
            config = self.config
            python = _real(sys.executable)
            key = (python, os.geteuid(), config.sandbox_uid)
            raw = _PROBES.get(key)
            if raw is None:
                raw = _PROBES[key] = run_probe(python, {"uid": config.sandbox_uid})
            cgroups = Cgroups(enabled=config.cgroups)
            try:
                report = build_report(
                    raw,
                    cgroups.report(),
                    cgroups.errors(),
                    landlock_enabled=config.landlock,
                    seccomp_enabled=config.seccomp,
                    sandbox_uid=config.sandbox_uid,
                )
                missing = [name for name in config.require if not report.is_active(name)]
                if missing:
                    reasons = "; ".join(
                        f"{name}: {report.unavailable.get(name, 'not available')}"
                        for name in missing
                    )
                    raise IsolationUnavailable(
                        f"the local provider requires {', '.join(missing)}, which this host "
                        f"cannot provide ({reasons}); remove them from 'require' to run "
                        "with weaker isolation"
                    )
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
                    ),
                    python=python,
                    python_prefix=_real(sys.base_prefix),
                    python_path=python_path,
                    node=_real(node) if node else None,
                    shell=_real(shell),
                )
                self._store.prepare()
                if report.is_active("netns") and config.prewarm > 0:
                    engine.server.prewarm(self._static(engine, blocked=True), config.prewarm)
                engine.server.ensure_started()
            except BaseException:
                cgroups.close()
                raise
            self._store.purge_trash()
            self._engine = engine
            self._finalizer = weakref.finalize(self, engine.close)
            return engine

    async def _engine_ready(self) -> _Engine:
        engine = self._engine
        if engine is not None:
            return engine
        return await asyncio.to_thread(self._start_engine)

    async def _is_available(self) -> bool:
        await self._engine_ready()
        return True

    async def _aclose(self) -> None:
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            await asyncio.to_thread(engine.close)

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
        self._store.create(workspace, spec.env)
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

    async def _apply_template(self, workspace: Workspace, name: str) -> None:
        files = self._store.files(workspace.id)
        setup = await asyncio.to_thread(self._templates.materialize, name, files, self._owner)
        for command in setup:
            request = ExecRequest(code=command, language=Language.SHELL, timeout=600.0)
            result = await self._execute(workspace, request)
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
        await self._get_workspace(workspace_id)  # WorkspaceNotFound outside the namespace
        trash = self._store.discard(workspace_id)
        self._trash.add(trash)
        engine = self._engine
        if engine is not None:
            engine.cgroups.kill_workspace(workspace_id)

        async def cleanup() -> None:
            if engine is not None:
                await asyncio.to_thread(engine.cgroups.remove_workspace, workspace_id)
            await asyncio.to_thread(self._store.purge, trash)
            self._trash.discard(trash)

        self._background(cleanup())

    def _sweep_leftovers(self) -> None:
        # purges that a dying event loop cancelled (the files are already out of sight)
        for trash in list(self._trash):
            self._store.purge(trash)
            self._trash.discard(trash)

    def _has_leftovers(self) -> bool:
        return bool(self._trash)

    # ------------------------------------------------------------------ running code

    def _env(
        self, workspace: Workspace, request: ExecRequest, files: str, shell: str
    ) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": files,
            "PWD": files,
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

    def _static(self, engine: _Engine, blocked: bool) -> dict[str, Any]:
        """The request fields that are the same for every run of this provider.

        Pre-built sandboxes are made from exactly these (for blocked networking).
        """
        cached = engine.static.get(blocked)
        if cached is not None:
            return cached
        report = engine.report
        wanted = [engine.python_prefix, *engine.python_path]
        if engine.node:
            wanted.append(engine.node)
        # a path inside another kept path comes along with it
        keeps = [
            path
            for path in dict.fromkeys(wanted)
            if not any(other != path and _under(path, other) for other in wanted)
        ]
        base = str(self._store.base.resolve())
        masks: dict[str, str] = {"/root": "0755", "/home": "0755", base: "0755"}
        masks.update(dict.fromkeys(_SCRATCH, "1777"))
        for keep in [*keeps, base]:
            for ancestor in reversed(Path(keep).parents):
                if str(ancestor) == "/":
                    continue
                try:
                    mode = os.stat(ancestor).st_mode
                except OSError:
                    break
                if not mode & stat.S_IXOTH:
                    masks.setdefault(str(ancestor), "0755")
                    break
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
        static = {
            "unshare": flags,
            "userns": report.is_active("userns"),
            "pidns": report.is_active("pidns"),
            "mountns": report.is_active("mountns"),
            "netns": blocked,
            "utsns": report.is_active("utsns"),
            "hostname": "sandbox",
            "masks": sorted(masks.items()),
            "keeps": keeps,
            "tmpfs_bytes": self.config.tmp_size << 20,
            "workspaces": base,
        }
        engine.static[blocked] = static
        return static

    def _request_for(
        self, engine: _Engine, workspace: Workspace, request: ExecRequest
    ) -> dict[str, Any]:
        report = engine.report
        files = str(self._store.files(workspace.id).resolve())
        blocked = workspace.network.mode != "host"
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
        static = self._static(engine, blocked)
        keeps = static["keeps"]
        landlock = None
        if report.is_active("landlock"):
            read_only = [*_SYSTEM_READ_ONLY, *keeps]
            if not blocked:
                read_only.append("/run")
            landlock = {
                "ro": read_only,
                "rw": [files, *_SCRATCH, *_DEVICES_RW],
                "deny_tcp": False,
            }
        code = request.code
        argv: list[str] | None = None
        code_file = None
        if request.language == Language.JAVASCRIPT:
            if engine.node is None:
                raise ProviderUnavailable(
                    "javascript needs node, which is not installed on this host", provider=self.name
                )
            if len(code.encode()) < _INLINE_CODE_LIMIT:
                argv = [engine.node, "-e", code]
            else:
                code_file = "/tmp/.sandstorm-main.js"
                argv = [engine.node, code_file]
        elif request.language == Language.SHELL:
            if len(code.encode()) < _INLINE_CODE_LIMIT:
                argv = [engine.shell, "-c", code]
            else:
                code_file = "/tmp/.sandstorm-main.sh"
                argv = [engine.shell, code_file]
        uid_drop = report.is_active("uid_drop")
        return {
            **static,
            "code": code,
            "argv": argv,
            "code_file": code_file,
            "env": self._env(workspace, request, files, engine.shell),
            "cwd": files,
            "cgroupns": report.is_active("cgroupns"),
            "uid": self.config.sandbox_uid if uid_drop else None,
            "gid": self.config.sandbox_gid if uid_drop else None,
            "inner_uid": 1000 if report.is_active("userns") else None,
            "rlimits": rlimits,
            "landlock": landlock,
            "landlock_abi": report.landlock_abi,
            "seccomp": report.is_active("seccomp"),
        }

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        engine = await self._engine_ready()
        files = self._store.files(workspace.id)
        if not files.is_dir():
            raise WorkspaceNotFound(workspace.id, self.name)
        if engine.report.is_active("uid_drop"):
            owner = (self.config.sandbox_uid, self.config.sandbox_gid)
            st = files.stat()
            if (st.st_uid, st.st_gid) != owner:
                await asyncio.to_thread(chown_tree, files, *owner)
        payload = self._request_for(engine, workspace, request)
        cgroups = engine.cgroups
        run = None
        oom_before = 0
        if cgroups.active:
            self._ensure_cgroups(engine, workspace)
            view = self.config.cgroup_view and engine.report.is_active("mountns")
            run = cgroups.new_run(
                workspace.id, cpu_limited=workspace.resources.cpu is not None, view=view
            )
            payload["cgroups"] = run.procs
            payload["kill_cgroup"] = run.kill_procs
            if view:
                payload["cgroup_view"] = run.view
                if payload.get("landlock"):
                    payload["landlock"]["ro"].append(_CGROUP_VIEW)
            oom_before = cgroups.oom_kills(workspace.id)
        disk_guard = _DiskGuard(
            files,
            (workspace.resources.disk or self.config.disk_limit) << 20,
            self.config.disk_check_interval,
        )
        warm = engine.server.warm
        is_warm = warm is not None and all(payload.get(k) == v for k, v in warm.items())
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
            if run is not None:
                # the result may arrive while init is still exiting: SIGKILL whatever is
                # left; the emptied cgroup is removed in the background
                run.kill()
                if not run.remove():
                    self._background(self._remove_run(run))
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
        files = self._store.files(workspace.id)
        if not files.is_dir():
            raise WorkspaceNotFound(workspace.id, self.name)
        return files

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        await asyncio.to_thread(write_file, self._files_dir(workspace), path, data, self._owner)

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        return await asyncio.to_thread(read_file, self._files_dir(workspace), path)

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        return await asyncio.to_thread(list_files, self._files_dir(workspace), path)

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        await asyncio.to_thread(delete_path, self._files_dir(workspace), path)

    # ------------------------------------------------------------------ git

    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        files = self._files_dir(workspace)
        dest = files if path in ("", ".") else files / path
        await asyncio.to_thread(
            git_clone,
            url,
            dest,
            branch,
            self._owner,
            self.config.git_timeout,
            workspace_root=files,
        )

    async def _git_status(self, workspace: Workspace, path: str) -> GitStatus:
        files = self._files_dir(workspace)
        repo = files if path in ("", ".") else files / path
        return await asyncio.to_thread(git_status, repo, self._owner, workspace_root=files)

    # ------------------------------------------------------------------ snapshots

    def _snapshot_store(self) -> SnapshotStore:
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
                store.restore_into, snapshot_id, self._store.files(workspace.id), self._owner
            )
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

    # ------------------------------------------------------------------ metrics

    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        engine = await self._engine_ready()
        files = self._store.files(workspace.id)
        if not files.is_dir():
            raise WorkspaceNotFound(workspace.id, self.name)
        if not engine.cgroups.active:
            raise CapabilityNotSupported(
                self.name, Capability.METRICS, "no writable cgroup hierarchy on this host"
            )
        self._ensure_cgroups(engine, workspace)
        used = await asyncio.to_thread(disk_usage, files)
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
