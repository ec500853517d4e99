"""The provider contract: one async interface every adapter implements.

A provider subclasses :class:`AsyncProvider`, declares what it can do in class
attributes, and implements the protected primitives (``_create_workspace``,
``_execute``, ...). The public methods on this class are the user-facing API: they
check declared capabilities, call the plugin hooks, and build the one-shot ``run`` out
of the primitives, so an adapter writes each primitive once and gets the rest.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from . import _exits
from ._agents import AgentAPI
from ._audit import AuditEvent
from ._boundary import boundary as _boundary
from ._capabilities import Capability
from ._config import ProviderConfig
from ._errors import (
    CapabilityNotSupported,
    InvalidArgument,
    ProviderAPIError,
    ProviderConfigError,
    ProviderUnavailable,
    SandstormError,
    WorkspaceError,
    WorkspaceExists,
    WorkspaceNotFound,
)
from ._models import (
    CostEstimate,
    FileInfo,
    GitStatus,
    Language,
    NetworkPolicy,
    OutputChunk,
    ProviderInfo,
    Resources,
    RunResult,
    Snapshot,
    Workspace,
    WorkspaceMetrics,
)
from ._plugins import plugin_manager
from ._sandbox import AsyncSandbox
from ._validate import (
    check_callback,
    check_code,
    check_data,
    check_env,
    check_flag,
    check_labels,
    check_name,
    check_network,
    check_path,
    check_ref,
    check_resources,
    check_seconds,
    check_snapshot_name,
    check_stdin,
    check_text,
    check_timeout,
)
from .adapters._credentials import redact_credentials

if TYPE_CHECKING:
    from ._pool import WarmPool

__all__ = [
    "LABEL_BOUND",
    "LABEL_PROCESS",
    "AsyncProvider",
    "ExecRequest",
    "OutputCallback",
    "OutputStream",
    "WorkspaceSpec",
]

log = logging.getLogger("sandstorm")

T = TypeVar("T")

OutputCallback = Callable[[str], None]
"""Receives a piece of decoded output as soon as the provider has it."""

WorkspaceRef = Workspace | str

LABEL_PROCESS = "sandstorm-process"
"""Internal label: the process that created the workspace, ``host/pid/start`` (reapers)."""
LABEL_BOUND = "sandstorm-bound"
"""Internal label: ``"1"`` when the workspace must not outlive the process that made it."""


class WorkspaceSpec(BaseModel):
    """What to create: the validated arguments of ``create_workspace``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str | None = None
    template: str | None = None
    persistent: bool = True
    resources: Resources = Resources()
    network: NetworkPolicy = NetworkPolicy()
    labels: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)

    def pool_key(self) -> tuple[object, ...]:
        """The warm-pool key: workspaces with equal keys are interchangeable before use."""
        return (
            self.template,
            self.resources,
            self.network,
            tuple(sorted(self.labels.items())),
            tuple(sorted(self.env.items())),
        )


@dataclass(frozen=True)
class ExecRequest:
    """One piece of code to run in a workspace: the arguments of ``_execute``."""

    code: str
    language: str = "python"
    timeout: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    on_stdout: OutputCallback | None = None
    on_stderr: OutputCallback | None = None

    @property
    def streaming(self) -> bool:
        """True when the caller wants output as it is produced."""
        return self.on_stdout is not None or self.on_stderr is not None


RESERVED_PREFIX = "_sandstorm_"
"""Attribute names AsyncProvider keeps for itself; an adapter defining one is refused."""


class AsyncProvider(AgentAPI, abc.ABC):
    """Base class of every provider, and the async API users call.

    Class attributes declare the provider, readable without credentials:
    ``name``, ``description``, ``capabilities``, ``languages`` and ``config_model``.
    An adapter implements the abstract primitives (``_create_workspace``,
    ``_get_workspace``, ``_list_workspaces``, ``_delete_workspace``, ``_execute``); a
    subclass missing one cannot be instantiated, and the error names it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    languages: ClassVar[frozenset[str]] = frozenset({Language.PYTHON})
    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig
    internal_labels: ClassVar[frozenset[str]] = frozenset()
    """Label keys the provider keeps for itself; they never appear in ``Workspace.labels``."""
    exit_timeout: ClassVar[float] = 30.0
    enforces_unique_names: ClassVar[bool] = False
    """True when the backend itself refuses a second workspace with a taken name (409)."""
    max_cpu: ClassVar[float | None] = None
    """Most cores one workspace can get; a larger ``cpu=`` is refused before any call."""
    max_memory: ClassVar[int | None] = None
    """Most MiB of memory one workspace can get."""
    max_disk: ClassVar[int | None] = None
    """Most MiB of disk one workspace can get."""
    max_timeout: ClassVar[float | None] = 86400.0
    """Longest ``timeout=`` in seconds a run may ask for."""
    """Seconds ``aclose()`` and the process-exit path spend deleting what is left."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        taken = sorted(n for n in vars(cls) if n.startswith(RESERVED_PREFIX))
        if taken:
            raise TypeError(
                f"{cls.__qualname__} defines {', '.join(taken)}: names starting with "
                f"{RESERVED_PREFIX!r} are reserved for AsyncProvider's own machinery; "
                "rename them (an adapter writes the _-prefixed primitives such as _execute)"
            )

    def __init__(self, config: ProviderConfig | None = None) -> None:
        if config is None:
            config = self.config_model.load({})
        elif not isinstance(config, self.config_model):
            raise ProviderConfigError(
                f"{type(self).__name__} needs a {self.config_model.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config
        self._sandstorm_pool: WarmPool | None = None
        self._sandstorm_closed = False
        self._sandstorm_released = False
        self._sandstorm_owned: dict[str, None] = {}
        self._sandstorm_deleting: dict[str, asyncio.Task[None]] = {}
        self._sandstorm_cleanups: set[asyncio.Task[Any]] = set()
        self._sandstorm_home: asyncio.AbstractEventLoop | None = None
        self._sandstorm_inflight: set[asyncio.Task[Any]] = set()
        self._sandstorm_stopped: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._sandstorm_name_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        _exits.register(self)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, **values: Any) -> Self:
        """Build the provider from keyword arguments, falling back to the environment."""
        return cls(cls.config_model.load(values))

    @classmethod
    def info(cls) -> ProviderInfo:
        """The provider's declaration, without instantiating it."""
        from ._registry import package_of

        package, version = package_of(cls.__module__)
        return ProviderInfo(
            name=cls.name,
            description=cls.description,
            capabilities=frozenset(str(cap) for cap in cls.capabilities),
            languages=frozenset(str(lang) for lang in cls.languages),
            package=package,
            version=version,
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun: nothing new may start."""
        return self._sandstorm_closed

    @classmethod
    def supports(cls, capability: Capability) -> bool:
        """True when the provider declares ``capability``."""
        return capability in cls.capabilities

    def require(self, capability: Capability, detail: str | None = None) -> None:
        """Raise :class:`CapabilityNotSupported` unless ``capability`` is declared."""
        if capability not in self.capabilities:
            raise CapabilityNotSupported(self.name, str(capability), detail)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release everything the provider holds; idempotent.

        Waits (at most ``exit_timeout`` seconds) for deletions in flight, deletes what
        this process still owns (warm workspaces, one-shot and sandbox-handle workspaces,
        non-persistent workspaces), then closes connections. Cancelling it does not stop
        the cleanup: the cancellation is re-raised once the cleanup is done.
        """
        if self._sandstorm_closed and self._sandstorm_released and not self._sandstorm_needs_exit():
            return
        self._sandstorm_closed = True
        await self._sandstorm_shutdown()

    # ------------------------------------------------------------------ public API

    async def is_available(self) -> bool:
        """True when the provider can run code now. Never creates anything billable."""
        try:
            return await self._is_available()
        except SandstormError:
            return False

    @_boundary
    async def effective_capabilities(self) -> frozenset[Capability]:
        """What this instance can do on this host: the declared capabilities, less any the
        backend turns out to lack (``capabilities`` is what the class can do anywhere)."""
        self._sandstorm_check_open()
        return frozenset(await self._effective_capabilities())

    @_boundary
    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        workspace_id: str | None = None,
        workspace_template: str | None = None,
        git_repo: str | None = None,
        git_branch: str | None = None,
        network: NetworkPolicy | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` and return its result.

        With ``workspace_id`` the code runs in that existing workspace. Otherwise a fresh
        workspace is made (from the warm pool when one is configured), optionally seeded
        with ``git_repo``, and deleted afterwards whatever happens.
        """
        self._sandstorm_check_open()
        request = self._sandstorm_request(code, language, timeout, env, stdin, on_stdout, on_stderr)
        resources = self._sandstorm_resources(cpu, memory, disk)
        workspace_template = check_text(workspace_template, "workspace_template")
        network = check_network(network)
        git_repo = check_text(git_repo, "git_repo")
        git_branch = check_text(git_branch, "git_branch")
        if workspace_id is not None:
            workspace_id = check_ref(workspace_id)
            if any(v is not None for v in (cpu, memory, disk, workspace_template, network)):
                raise ProviderConfigError(
                    "cpu, memory, disk, workspace_template and network apply to new "
                    "workspaces; they cannot be combined with workspace_id"
                )
            workspace = await self._sandstorm_resolve(workspace_id)
            if git_repo is not None:
                await self.git_clone(workspace, git_repo, branch=git_branch)
            return await self._sandstorm_guarded(self._sandstorm_run_hooked(workspace, request))
        spec = self._sandstorm_spec(
            template=workspace_template,
            persistent=False,
            resources=resources,
            network=self._network_for_run(network, git_repo),
        )
        if git_repo is not None:
            self.require(Capability.GIT, "git_repo")
        return await self._sandstorm_guarded(
            self._sandstorm_one_shot(spec, request, git_repo, git_branch)
        )

    async def _sandstorm_one_shot(
        self,
        spec: WorkspaceSpec,
        request: ExecRequest,
        git_repo: str | None,
        git_branch: str | None,
    ) -> RunResult:
        workspace = await self._sandstorm_acquire(spec)
        try:
            if git_repo is not None:
                await self.git_clone(workspace, git_repo, branch=git_branch)
            result = await self._sandstorm_run_hooked(workspace, request)
        except GeneratorExit:
            raise  # the coroutine is being destroyed (its loop is gone): the exit path deletes
        except BaseException:
            self._sandstorm_refill(spec)
            await _shielded(self._sandstorm_discard(workspace), quiet=True)
            raise
        self._sandstorm_refill(spec)
        await _shielded(self._sandstorm_discard(workspace))
        return result

    def stream(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        workspace_id: str | None = None,
        workspace_template: str | None = None,
        git_repo: str | None = None,
        git_branch: str | None = None,
        network: NetworkPolicy | None = None,
    ) -> OutputStream:
        """Run ``code`` and iterate its output as it is produced.

        ``async for chunk in provider.stream(code): ...`` yields :class:`OutputChunk`;
        after the loop, ``stream.result`` holds the :class:`RunResult`. The keyword
        arguments are those of :meth:`run`.
        """
        self.require(Capability.STREAMING)
        options = {
            "language": language,
            "timeout": timeout,
            "cpu": cpu,
            "memory": memory,
            "disk": disk,
            "env": env,
            "stdin": stdin,
            "workspace_id": workspace_id,
            "workspace_template": workspace_template,
            "git_repo": git_repo,
            "git_branch": git_branch,
            "network": network,
        }
        return OutputStream(self, code, options)

    @_boundary
    async def create_workspace(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """Create a workspace; persistent ones keep their files between runs."""
        return await self._sandstorm_new_workspace(
            False,
            name=name,
            template=template,
            persistent=persistent,
            cpu=cpu,
            memory=memory,
            disk=disk,
            network=network,
            labels=labels,
            env=env,
        )

    async def _sandstorm_new_workspace(
        self,
        bound: bool,
        *,
        name: str | None = None,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """``create_workspace``; ``bound`` ties the workspace to this process (handles)."""
        self._sandstorm_check_open()
        if persistent:
            self.require(Capability.PERSISTENCE, "persistent workspaces")
        spec = self._sandstorm_spec(
            name=name,
            template=template,
            persistent=persistent,
            resources=self._sandstorm_resources(cpu, memory, disk),
            network=network,
            labels=labels,
            env=env,
        )
        return await self._sandstorm_guarded(self._sandstorm_create_hooked(spec, bound=bound))

    def sandbox(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncSandbox:
        """A handle that creates a workspace on ``async with`` entry and deletes it on exit.

        Keyword arguments are those of :meth:`create_workspace`.
        """
        create = {
            "name": name,
            "template": template,
            "persistent": persistent,
            "cpu": cpu,
            "memory": memory,
            "disk": disk,
            "network": network,
            "labels": labels,
            "env": env,
        }
        return AsyncSandbox(self, create=create)

    @_boundary
    async def attach(self, workspace: WorkspaceRef) -> AsyncSandbox:
        """A handle on an existing workspace; leaving it does not delete the workspace."""
        return AsyncSandbox(self, self._sandstorm_public(await self._sandstorm_resolve(workspace)))

    @_boundary
    async def get_workspace(self, workspace_id: str) -> Workspace:
        """The workspace with this id or name; :class:`WorkspaceNotFound` if there is none."""
        self._sandstorm_check_open()
        return self._sandstorm_public(await self._sandstorm_find(check_ref(workspace_id)))

    @_boundary
    async def get_or_create_workspace(
        self,
        *,
        name: str,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """The workspace called ``name``; made as :meth:`create_workspace` would if there is none.

        An existing workspace is returned as it is (its labels and resources are not
        changed).
        """
        self._sandstorm_check_open()
        name = check_name(name, "workspace name") or ""
        try:
            return self._sandstorm_public(await self._sandstorm_find(name))
        except WorkspaceNotFound:
            pass
        try:
            return await self.create_workspace(
                name=name,
                template=template,
                persistent=persistent,
                cpu=cpu,
                memory=memory,
                disk=disk,
                network=network,
                labels=labels,
                env=env,
            )
        except WorkspaceExists:  # made meanwhile by someone else
            return self._sandstorm_public(await self._sandstorm_find(name))

    @_boundary
    async def list_workspaces(self, *, labels: Mapping[str, str] | None = None) -> list[Workspace]:
        """Every workspace this provider's account can see (with ``labels``: carrying them)."""
        self._sandstorm_check_open()
        wanted = check_labels(labels, frozenset())
        return [self._sandstorm_public(ws) for ws in await self._list_labelled(wanted)]

    @_boundary
    async def reap(
        self,
        *,
        older_than: float | None = None,
        dry_run: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Delete the workspaces Sandstorm created that nobody will delete; return their ids.

        Reaped: a workspace bound to the process that created it (one-shot, sandbox
        handle, non-persistent) once that process is gone (killed with SIGKILL, crashed,
        power cut); one the provider says has expired; and, with ``older_than``, any
        Sandstorm workspace created more than that many seconds ago. Never one whose
        creator process is alive on this host. ``labels`` narrows the sweep; ``dry_run``
        only lists.
        """
        self._sandstorm_check_open()
        if older_than is not None:
            older_than = check_seconds(older_than, "older_than", zero=True)
        check_flag(dry_run, "dry_run")
        now = datetime.now(UTC)
        wanted = check_labels(labels, frozenset())
        doomed = []
        for workspace in await self._list_labelled(wanted):
            marks = workspace.labels
            alive = _exits.owner_alive(marks.get(LABEL_PROCESS))
            if alive:
                continue
            age = (now - workspace.created_at).total_seconds()
            if (
                (marks.get(LABEL_BOUND) == "1" and alive is False)
                or self._expired(workspace, now)
                or (older_than is not None and age >= older_than)
            ):
                doomed.append(workspace.id)
        if dry_run:
            return doomed
        removed = []
        for workspace_id in doomed:
            try:
                await self._sandstorm_delete_hooked(workspace_id)
            except WorkspaceNotFound:
                pass
            except SandstormError as exc:
                log.warning("reap: could not delete %s: %s", workspace_id, exc)
                continue
            removed.append(workspace_id)
        return removed

    @_boundary
    async def delete_workspace(self, workspace: WorkspaceRef) -> None:
        """Delete a workspace and everything in it."""
        self._sandstorm_check_open()
        await self._sandstorm_delete_hooked(check_ref(workspace))

    @_boundary
    async def run_in_workspace(
        self,
        workspace: WorkspaceRef,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` inside an existing workspace; its files persist between runs."""
        self._sandstorm_check_open()
        request = self._sandstorm_request(code, language, timeout, env, stdin, on_stdout, on_stderr)
        return await self._sandstorm_guarded(
            self._sandstorm_run_hooked(await self._sandstorm_resolve(workspace), request)
        )

    async def exec(
        self,
        workspace: WorkspaceRef,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run a shell command line inside an existing workspace."""
        return await self.run_in_workspace(
            workspace, command, language="shell", timeout=timeout, env=env, stdin=stdin
        )

    # files

    @_boundary
    async def write_file(self, workspace: WorkspaceRef, path: str, data: str | bytes) -> None:
        """Write ``data`` (text is UTF-8 encoded) to ``path``, relative to the workspace root."""
        self._sandstorm_check_open()
        self.require(Capability.FILES)
        path = check_path(path)
        payload = check_data(data)
        ws = await self._sandstorm_resolve(workspace)
        await self._write_file(ws, path, payload)
        self._sandstorm_audit("file.write", ws.id, path=path, size=len(payload))

    @_boundary
    async def read_file(
        self, workspace: WorkspaceRef, path: str, *, max_size: int | None = None
    ) -> bytes:
        """The bytes of ``path``; :class:`FileNotFoundError` if it does not exist.

        ``max_size`` (bytes) refuses a larger file with :class:`WorkspaceError` before it
        is read whole (a sparse file can claim far more bytes than the disk holds), where
        the provider can tell; untrusted workspaces should always pass one.
        """
        self._sandstorm_check_open()
        self.require(Capability.FILES)
        path = check_path(path)
        if max_size is not None and (
            not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 0
        ):
            raise InvalidArgument(f"max_size must be a non-negative int (got {max_size!r})")
        ws = await self._sandstorm_resolve(workspace)
        if max_size is None:
            return await self._read_file(ws, path)
        data = await self._read_file_at_most(ws, path, max_size)
        if len(data) > max_size:
            raise WorkspaceError(
                f"{path!r} is {len(data)} bytes, over the {max_size}-byte read limit"
            )
        return data

    @_boundary
    async def list_files(self, workspace: WorkspaceRef, path: str = ".") -> list[FileInfo]:
        """The entries of directory ``path`` in the workspace."""
        self._sandstorm_check_open()
        self.require(Capability.FILES)
        path = check_path(path, root=True)
        return await self._list_files(await self._sandstorm_resolve(workspace), path)

    @_boundary
    async def delete_file(self, workspace: WorkspaceRef, path: str) -> None:
        """Delete a file or directory tree in the workspace."""
        self._sandstorm_check_open()
        self.require(Capability.FILES)
        path = check_path(path)
        ws = await self._sandstorm_resolve(workspace)
        await self._delete_file(ws, path)
        self._sandstorm_audit("file.delete", ws.id, path=path)

    # git

    @_boundary
    async def git_clone(
        self,
        workspace: WorkspaceRef,
        url: str,
        *,
        branch: str | None = None,
        path: str = ".",
    ) -> None:
        """Clone ``url`` (at ``branch``) into ``path`` inside the workspace."""
        self._sandstorm_check_open()
        self.require(Capability.GIT)
        url = check_text(url, "url", optional=False) or ""
        branch = check_text(branch, "branch")
        path = check_path(path, root=True)
        ws = await self._sandstorm_resolve(workspace)
        await self._git_clone(ws, url, branch, path)
        self._sandstorm_audit(
            "git.clone", ws.id, url=redact_credentials(url), branch=branch, path=path
        )

    @_boundary
    async def git_status(self, workspace: WorkspaceRef, path: str = ".") -> GitStatus:
        """``git status`` of the repository at ``path`` inside the workspace."""
        self._sandstorm_check_open()
        self.require(Capability.GIT)
        path = check_path(path, root=True)
        return await self._git_status(await self._sandstorm_resolve(workspace), path)

    # snapshots

    @_boundary
    async def snapshot(self, workspace: WorkspaceRef, *, name: str | None = None) -> Snapshot:
        """Capture the workspace's files into a snapshot."""
        self._sandstorm_check_open()
        self.require(Capability.SNAPSHOTS)
        name = check_snapshot_name(name)
        ws = await self._sandstorm_resolve(workspace)
        snap = await self._snapshot(ws, name)
        self._sandstorm_audit("snapshot.create", ws.id, snapshot_id=snap.id)
        return snap

    @_boundary
    async def restore(self, snapshot: Snapshot | str, *, name: str | None = None) -> Workspace:
        """A new workspace whose files are those captured in ``snapshot``."""
        self._sandstorm_check_open()
        self.require(Capability.SNAPSHOTS)
        snapshot_id = check_ref(snapshot, "snapshot")
        name = check_name(name, "workspace name")
        restored = await self._sandstorm_named(name, lambda: self._restore(snapshot_id, name))
        workspace = self._sandstorm_public(restored)
        self._sandstorm_audit("snapshot.restore", workspace.id, snapshot_id=snapshot_id)
        plugin_manager().hook.sandstorm_workspace_created(provider=self, workspace=workspace)
        return workspace

    @_boundary
    async def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot this provider holds."""
        self._sandstorm_check_open()
        self.require(Capability.SNAPSHOTS)
        return await self._list_snapshots()

    @_boundary
    async def delete_snapshot(self, snapshot: Snapshot | str) -> None:
        """Delete a snapshot."""
        self._sandstorm_check_open()
        self.require(Capability.SNAPSHOTS)
        snapshot_id = check_ref(snapshot, "snapshot")
        await self._delete_snapshot(snapshot_id)
        self._sandstorm_audit("snapshot.delete", None, snapshot_id=snapshot_id)

    # metrics and cost

    @_boundary
    async def get_workspace_metrics(self, workspace: WorkspaceRef) -> WorkspaceMetrics:
        """Resource figures for the workspace, from the backend's accounting."""
        self._sandstorm_check_open()
        self.require(Capability.METRICS)
        return await self._metrics(await self._sandstorm_resolve(workspace))

    @_boundary
    async def estimate_cost(
        self,
        *,
        duration: float,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
    ) -> CostEstimate:
        """What a workspace with these resources would cost for ``duration`` seconds."""
        self._sandstorm_check_open()
        self.require(Capability.COST)
        duration = check_seconds(duration, "duration", zero=True)
        return await self._estimate_cost(duration, self._sandstorm_resources(cpu, memory, disk))

    # ------------------------------------------------------------------ primitives (SPI)

    async def _is_available(self) -> bool:
        return True

    def _network_for_run(
        self, network: NetworkPolicy | None, git_repo: str | None
    ) -> NetworkPolicy | None:
        """The network policy of a one-shot run's new workspace (``run(network=...)``)."""
        return network

    def _cached_workspace(self, workspace_id: str) -> Workspace | None:
        """A workspace the provider knows without asking its backend, else ``None``.

        A call given a workspace id uses it instead of ``_get_workspace`` (one request
        fewer per call on a remote backend); the public ``get_workspace`` always asks.
        """
        return None

    async def _prepare_pooled(self, workspace: Workspace) -> None:
        """Ready a workspace the warm pool just made for its first run, in the background
        (e.g. compile what every run needs): the provider's own set-up, never user code,
        nothing its first run would not have done itself. By default nothing."""

    def _defer_delete(self, workspace_id: str) -> bool:
        """Take over deleting a workspace the core is done with (a one-shot run's, a
        handle's) in the background; ``True`` when taken. ``aclose()`` must wait for it.
        """
        return False

    async def _effective_capabilities(self) -> frozenset[Capability]:
        """The declared capabilities this instance really has; by default all of them."""
        return self.capabilities

    @abc.abstractmethod
    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        raise NotImplementedError

    @abc.abstractmethod
    async def _get_workspace(self, workspace_id: str) -> Workspace:
        raise NotImplementedError

    @abc.abstractmethod
    async def _list_workspaces(self) -> list[Workspace]:
        raise NotImplementedError

    @abc.abstractmethod
    async def _delete_workspace(self, workspace_id: str) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        raise NotImplementedError

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        raise CapabilityNotSupported(self.name, Capability.FILES)

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        raise CapabilityNotSupported(self.name, Capability.FILES)

    async def _read_file_at_most(self, workspace: Workspace, path: str, max_size: int) -> bytes:
        """``_read_file`` that refuses a file over ``max_size`` bytes before reading it whole.

        The default reads it, then the caller checks; override it where the backend can
        tell a file's size first (the result may be longer: the caller refuses it then).
        """
        return await self._read_file(workspace, path)

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        raise CapabilityNotSupported(self.name, Capability.FILES)

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        raise CapabilityNotSupported(self.name, Capability.FILES)

    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        raise CapabilityNotSupported(self.name, Capability.GIT)

    async def _git_status(self, workspace: Workspace, path: str) -> GitStatus:
        raise CapabilityNotSupported(self.name, Capability.GIT)

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        raise CapabilityNotSupported(self.name, Capability.SNAPSHOTS)

    async def _restore(self, snapshot_id: str, name: str | None) -> Workspace:
        raise CapabilityNotSupported(self.name, Capability.SNAPSHOTS)

    async def _list_snapshots(self) -> list[Snapshot]:
        raise CapabilityNotSupported(self.name, Capability.SNAPSHOTS)

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        raise CapabilityNotSupported(self.name, Capability.SNAPSHOTS)

    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        raise CapabilityNotSupported(self.name, Capability.METRICS)

    async def _estimate_cost(self, duration: float, resources: Resources) -> CostEstimate:
        raise CapabilityNotSupported(self.name, Capability.COST)

    async def _aclose(self) -> None:
        return None

    async def _list_labelled(self, labels: Mapping[str, str]) -> list[Workspace]:
        """The workspaces carrying every label in ``labels``; override to filter server-side."""
        return [
            ws
            for ws in await self._list_workspaces()
            if all(ws.labels.get(k) == v for k, v in labels.items())
        ]

    def _expired(self, workspace: Workspace, now: datetime) -> bool:
        """True when the backend's own expiry for ``workspace`` has passed (reap)."""
        return False

    def _rebind(self) -> None:
        """Drop what is bound to a dead event loop (connections) before a cleanup on a new one."""
        return  # nothing by default: providers that hold such state override it

    def _sweep_leftovers(self) -> None:
        """Synchronously finish cleanups that a dying event loop cancelled (last resort)."""
        return  # nothing by default: providers that hold such state override it

    def _has_leftovers(self) -> bool:
        """True while ``_sweep_leftovers`` would have something to do."""
        return False

    # ------------------------------------------------------------------ internals

    def _sandstorm_request(
        self,
        code: str,
        language: str,
        timeout: float | None,
        env: Mapping[str, str] | None,
        stdin: str | bytes | None,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
    ) -> ExecRequest:
        code = check_code(code)
        if not isinstance(language, str) or language not in self.languages:
            known = ", ".join(sorted(self.languages))
            raise InvalidArgument(
                f"provider {self.name!r} cannot run language {language!r} (it runs: {known})"
            )
        timeout = check_timeout(timeout, self.max_timeout)
        on_stdout = check_callback(on_stdout, "on_stdout")
        on_stderr = check_callback(on_stderr, "on_stderr")
        if on_stdout is not None or on_stderr is not None:
            self.require(Capability.STREAMING, "on_stdout/on_stderr")
        return ExecRequest(
            code=code,
            language=language,
            timeout=self.config.default_timeout if timeout is None else timeout,
            env=check_env(env),
            stdin=check_stdin(stdin),
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )

    def _sandstorm_resources(self, cpu: object, memory: object, disk: object) -> Resources:
        return check_resources(
            cpu,
            memory,
            disk,
            max_cpu=self.max_cpu,
            max_memory=self.max_memory,
            max_disk=self.max_disk,
        )

    def _sandstorm_spec(
        self,
        *,
        name: str | None = None,
        template: str | None,
        persistent: bool,
        resources: Resources,
        network: NetworkPolicy | None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> WorkspaceSpec:
        name = check_name(name, "workspace name")
        template = check_text(template, "template")
        persistent = check_flag(persistent, "persistent")
        network = check_network(network)
        labels = check_labels(labels, _INTERNAL_LABELS | self.internal_labels)
        env = check_env(env)
        if template is not None:
            self.require(Capability.TEMPLATES, f"template {template!r}")
        if resources != Resources():
            self.require(Capability.RESOURCE_LIMITS, "cpu/memory/disk limits")
        if network is not None and network != NetworkPolicy():
            self.require(Capability.NETWORK_POLICY, f"network mode {network.mode!r}")
        return WorkspaceSpec(
            name=name,
            template=template,
            persistent=persistent,
            resources=resources,
            network=network or NetworkPolicy(),
            labels=dict(labels or {}),
            env=dict(env or {}),
        )

    async def _sandstorm_resolve(self, workspace: WorkspaceRef) -> Workspace:
        self._sandstorm_check_open()
        if isinstance(workspace, Workspace):
            return workspace
        ref = check_ref(workspace)
        return self._cached_workspace(ref) or await self._sandstorm_find(ref)

    async def _sandstorm_find(self, ref: str) -> Workspace:
        """The workspace whose id, else whose name, is ``ref``."""
        try:
            return await self._get_workspace(ref)
        except WorkspaceNotFound:
            found = await self._find_by_name(ref)
            if found is None:
                raise
            return found

    async def _find_by_name(self, name: str) -> Workspace | None:
        """The workspace named ``name``, or ``None``. By default a scan of
        ``_list_workspaces``; a backend that can look a name up directly overrides it."""
        for workspace in await self._list_workspaces():
            if workspace.name == name:
                return workspace
        return None

    async def _sandstorm_check_name_free(self, name: str) -> None:
        if self.enforces_unique_names:
            return  # the backend refuses a taken name itself (a 409, made WorkspaceExists)
        if await self._find_by_name(name) is not None:
            raise WorkspaceExists(name, self.name)

    async def _sandstorm_create_hooked(
        self, spec: WorkspaceSpec, *, bound: bool = False
    ) -> Workspace:
        name = spec.name
        if name is None:
            return await self._sandstorm_create_unlocked(spec, bound)
        # creates of one name queue up (the second then finds the name taken); creates of
        # different names run side by side
        lock, users = self._sandstorm_name_locks.get(name, (asyncio.Lock(), 0))
        self._sandstorm_name_locks[name] = (lock, users + 1)
        try:
            async with lock:
                return await self._sandstorm_named(
                    name, lambda: self._sandstorm_create_unlocked(spec, bound)
                )
        finally:
            lock, users = self._sandstorm_name_locks[name]
            if users > 1:
                self._sandstorm_name_locks[name] = (lock, users - 1)
            else:
                del self._sandstorm_name_locks[name]

    async def _sandstorm_named(
        self, name: str | None, make: Callable[[], Awaitable[Workspace]]
    ) -> Workspace:
        """``make()`` a workspace called ``name`` (a create, a restore), refused with
        ``WorkspaceExists`` when the name is taken (a backend's 409 included). Takes no
        lock: a provider's ``_restore`` may itself create, which takes the name's lock."""
        if name is None:
            return await make()
        await self._sandstorm_check_name_free(name)
        try:
            return await make()
        except ProviderAPIError as exc:
            if exc.status == 409:  # taken meanwhile, by another process
                raise WorkspaceExists(name, self.name) from exc
            raise

    async def _sandstorm_create_unlocked(self, spec: WorkspaceSpec, bound: bool) -> Workspace:
        labels = {**spec.labels, LABEL_PROCESS: _exits.current_owner()}
        if bound or not spec.persistent:
            labels[LABEL_BOUND] = "1"
        spec = spec.model_copy(update={"labels": labels})
        workspace = await self._create_workspace(spec)
        if spec.labels.get(LABEL_BOUND) == "1":
            self._sandstorm_own(workspace.id)
        if self._sandstorm_closed:  # closed while this create was in flight: nothing may outlive it
            with contextlib.suppress(SandstormError):
                await self._sandstorm_delete_tracked(workspace.id)
            raise ProviderUnavailable("the provider is closed", provider=self.name)
        self._sandstorm_audit(
            "workspace.create", workspace.id, template=spec.template, persistent=spec.persistent
        )
        workspace = self._sandstorm_public(workspace)
        plugin_manager().hook.sandstorm_workspace_created(provider=self, workspace=workspace)
        return workspace

    def _sandstorm_public(self, workspace: Workspace) -> Workspace:
        """``workspace`` without the labels Sandstorm and the provider keep for themselves."""
        hidden = _INTERNAL_LABELS | self.internal_labels
        if not any(key in hidden for key in workspace.labels):
            return workspace
        labels = {k: v for k, v in workspace.labels.items() if k not in hidden}
        return workspace.model_copy(update={"labels": labels})

    def _sandstorm_check_open(self) -> None:
        if self._sandstorm_closed:
            raise ProviderUnavailable("the provider is closed", provider=self.name)

    # ------------------------------------------------------------------ exits

    def _sandstorm_own(self, workspace_id: str) -> None:
        """Tie ``workspace_id`` to this process: aclose() and the exit path delete it."""
        self._sandstorm_owned[workspace_id] = None
        self._sandstorm_home = asyncio.get_running_loop()
        _exits.hold(self)

    def _sandstorm_background(self, work: Any) -> None:
        """Run cleanup ``work`` without making the caller wait; aclose() waits for it."""
        task = asyncio.ensure_future(work)
        self._sandstorm_home = task.get_loop()
        self._sandstorm_cleanups.add(task)
        task.add_done_callback(self._sandstorm_cleanup_done)
        _exits.hold(self)

    def _sandstorm_cleanup_done(self, task: asyncio.Task[Any]) -> None:
        self._sandstorm_cleanups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sandstorm: a background cleanup failed: %r", task.exception())
        self._sandstorm_maybe_release()

    def _sandstorm_maybe_release(self) -> None:
        """Let the exit path forget this provider once it has nothing left to delete."""
        if not (
            self._sandstorm_owned
            or self._sandstorm_cleanups
            or self._sandstorm_deleting
            or self._has_leftovers()
        ):
            _exits.release(self)

    def _sandstorm_needs_exit(self) -> bool:
        return bool(
            self._sandstorm_owned
            or self._sandstorm_cleanups
            or self._sandstorm_deleting
            or self._sandstorm_inflight
            or self._has_leftovers()
        )

    async def _sandstorm_guarded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` in a task of its own, which aclose() can cancel and wait for.

        A call stopped that way raises :class:`ProviderUnavailable` in its caller (who
        did not ask for a cancellation); the caller's own cancellation stays one.
        """
        task = asyncio.ensure_future(work)
        self._sandstorm_inflight.add(task)
        task.add_done_callback(self._sandstorm_inflight.discard)
        try:
            return await task
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if task in self._sandstorm_stopped and (caller is None or not caller.cancelling()):
                raise ProviderUnavailable(
                    "the provider was closed while this call was in flight", provider=self.name
                ) from None
            raise

    async def _sandstorm_stop_inflight(self) -> None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task(loop)
        while True:
            mine = {
                task
                for task in self._sandstorm_inflight
                if task.get_loop() is loop and task is not current and not task.done()
            }
            self._sandstorm_inflight -= {
                task for task in self._sandstorm_inflight if task.get_loop() is not loop
            }
            if not mine:
                return
            for task in mine:
                self._sandstorm_stopped.add(task)
                task.cancel()
            await asyncio.wait(mine)

    async def _sandstorm_delete_hooked(self, workspace_id: str) -> None:
        await self._sandstorm_delete_tracked(workspace_id)
        self._sandstorm_audit("workspace.delete", workspace_id)
        plugin_manager().hook.sandstorm_workspace_deleted(provider=self, workspace_id=workspace_id)

    async def _sandstorm_delete_tracked(self, workspace_id: str) -> None:
        """Delete once, even when several callers ask; the deletion survives their cancellation."""
        loop = asyncio.get_running_loop()
        task = self._sandstorm_deleting.get(workspace_id)
        if task is None or task.cancelled() or task.get_loop() is not loop:
            task = asyncio.ensure_future(self._delete_workspace(workspace_id))
            self._sandstorm_deleting[workspace_id] = task
            task.add_done_callback(lambda done: self._sandstorm_deleted(workspace_id, done))
        await asyncio.shield(task)

    def _sandstorm_deleted(self, workspace_id: str, task: asyncio.Task[None]) -> None:
        if self._sandstorm_deleting.get(workspace_id) is task:
            del self._sandstorm_deleting[workspace_id]
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, WorkspaceNotFound):
            self._sandstorm_owned.pop(workspace_id, None)
        self._sandstorm_maybe_release()

    async def _sandstorm_exit(self, *, rebind: bool) -> None:
        """The process-exit path: like aclose(), possibly on a new event loop."""
        if rebind:
            self._rebind()
        self._sandstorm_closed = True
        await self._sandstorm_shutdown()

    async def _sandstorm_shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.exit_timeout
        interrupted = False
        steps = (
            self._sandstorm_stop_inflight,
            self._sandstorm_close_pool,
            self._sandstorm_drain_cleanups,
            self._sandstorm_release_owned,
            self._sandstorm_drain_cleanups,
            self._sandstorm_release,
        )
        for step in steps:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "sandstorm: %s: cleanup took over %gs", self.name, self.exit_timeout
                    )
                    break
                try:
                    await asyncio.wait_for(step(), remaining)
                    break
                except asyncio.CancelledError:
                    # asyncio.run's shutdown (or a caller) cancelled us: the cleanup goes
                    # on, repeating the step whose work was cancelled, and the
                    # cancellation is re-raised at the end
                    interrupted = True
                    current = asyncio.current_task(loop)
                    if current is not None:
                        current.uncancel()
                except TimeoutError:
                    log.warning(
                        "sandstorm: %s: cleanup took over %gs", self.name, self.exit_timeout
                    )
                    break
                except Exception as exc:
                    log.warning("sandstorm: %s: cleanup failed: %r", self.name, exc)
                    break
        self._sweep_leftovers()
        if not self._sandstorm_needs_exit():
            _exits.release(self)
        if interrupted:
            raise asyncio.CancelledError

    async def _sandstorm_close_pool(self) -> None:
        if self._sandstorm_pool is not None:
            await self._sandstorm_pool.aclose()

    async def _sandstorm_drain_cleanups(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = {task for task in self._sandstorm_cleanups if not task.done()}
            foreign = {task for task in pending if task.get_loop() is not loop}
            self._sandstorm_cleanups -= foreign | {
                task for task in self._sandstorm_cleanups if task.done()
            }
            mine = pending - foreign
            if not mine:
                return
            await asyncio.wait(mine)

    async def _sandstorm_release_owned(self) -> None:
        owned = list(self._sandstorm_owned)
        if owned:
            await asyncio.gather(
                *(self._sandstorm_delete_quietly(workspace_id) for workspace_id in owned)
            )

    async def _sandstorm_delete_quietly(self, workspace_id: str) -> None:
        try:
            await self._sandstorm_delete_tracked(workspace_id)
        except WorkspaceNotFound:
            self._sandstorm_owned.pop(workspace_id, None)
        except Exception as exc:
            self._sandstorm_owned.pop(workspace_id, None)  # tried; the reaper gets the rest
            log.warning("sandstorm: could not delete workspace %s: %r", workspace_id, exc)

    async def _sandstorm_release(self) -> None:
        if not self._sandstorm_released:
            await self._aclose()
            self._sandstorm_released = True

    async def _sandstorm_acquire(self, spec: WorkspaceSpec) -> Workspace:
        if (
            self.config.warm_pool_size > 0
            and self._sandstorm_pool is None
            and not self._sandstorm_closed
        ):
            from ._pool import WarmPool

            self._sandstorm_pool = WarmPool(
                self._sandstorm_create_hooked,
                self._sandstorm_discard,
                size=self.config.warm_pool_size,
                prepare=self._prepare_pooled,
            )
        if self._sandstorm_pool is not None:
            # refilled once the run is over (_sandstorm_refill): a refill's create running
            # beside the run would compete with it for the service
            return await self._sandstorm_pool.acquire(spec, refill=False)
        return await self._sandstorm_create_hooked(spec)

    def _sandstorm_refill(self, spec: WorkspaceSpec) -> None:
        if self._sandstorm_pool is not None and not self._sandstorm_closed:
            self._sandstorm_pool.refill(spec)

    async def _sandstorm_discard(self, workspace: Workspace) -> None:
        if not self._sandstorm_closed and self._defer_delete(workspace.id):
            return
        with contextlib.suppress(WorkspaceNotFound):
            await self._sandstorm_delete_hooked(workspace.id)

    async def _sandstorm_release_handle(self, workspace: Workspace) -> None:
        """A sandbox handle is left: delete its workspace (unless aclose() already did)."""
        if self._sandstorm_closed and workspace.id not in self._sandstorm_owned:
            return
        await self._sandstorm_discard(workspace)

    async def _sandstorm_run_hooked(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        hooks = plugin_manager().hook
        hooks.sandstorm_before_run(provider=self, workspace=workspace, request=request)
        started = time.perf_counter()
        try:
            result = await self._execute(workspace, request)
        except BaseException as exc:
            hooks.sandstorm_after_run(
                provider=self, workspace=workspace, request=request, result=None, error=exc
            )
            self._sandstorm_audit(
                "run",
                workspace.id,
                language=request.language,
                error=type(exc).__name__,
                duration=time.perf_counter() - started,
            )
            raise
        hooks.sandstorm_after_run(
            provider=self, workspace=workspace, request=request, result=result, error=None
        )
        self._sandstorm_audit(
            "run",
            workspace.id,
            language=request.language,
            exit_code=result.exit_code,
            duration=result.duration,
        )
        return result

    def _sandstorm_audit(self, action: str, workspace_id: str | None, **details: Any) -> None:
        event = AuditEvent(
            action=action, provider=self.name, workspace_id=workspace_id, details=details
        )
        plugin_manager().hook.sandstorm_audit(event=event)


class OutputStream:
    """An async iterator over a run's output; ``result`` is set once it is exhausted."""

    def __init__(self, provider: AsyncProvider, code: str, kwargs: dict[str, Any]) -> None:
        self._provider = provider
        self._code = code
        self._kwargs = kwargs
        self._queue: asyncio.Queue[OutputChunk | None] = asyncio.Queue()
        self._task: asyncio.Task[RunResult] | None = None
        self.result: RunResult | None = None

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[OutputChunk]:
        queue = self._queue

        def emit(stream: str) -> OutputCallback:
            def deliver(text: str) -> None:
                queue.put_nowait(OutputChunk(stream=stream, text=text))  # type: ignore[arg-type]

            return deliver

        async def produce() -> RunResult:
            try:
                return await self._provider.run(
                    self._code,
                    on_stdout=emit("stdout"),
                    on_stderr=emit("stderr"),
                    **self._kwargs,
                )
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(produce())
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            self.result = await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


_INTERNAL_LABELS = frozenset({LABEL_PROCESS, LABEL_BOUND})


def _id_of(workspace: WorkspaceRef) -> str:
    return workspace.id if isinstance(workspace, Workspace) else workspace


async def _shielded(awaitable: Any, *, quiet: bool = False) -> None:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile (cleanup must happen).

    A failure is raised, unless ``quiet`` is set or the caller was cancelled: then it is
    logged, so it never hides the error (or cancellation) that caused the cleanup.
    """
    from .adapters import shielded

    try:
        await shielded(awaitable)
    except Exception as error:
        if not quiet:
            raise
        log.warning("cleanup after a failed run also failed: %r", error)
