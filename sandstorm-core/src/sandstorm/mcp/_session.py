"""One MCP session's sandbox state: its workspace, interpreter contexts and processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from .._capabilities import Capability
from .._errors import InvalidArgument, ProcessNotFound, SandstormError, SnapshotNotFound
from .._interactive import CodeContext, ProcessStatus
from .._provider import AsyncProvider
from .._sandbox import AsyncSandbox
from .._validate import check_name

__all__ = ["ServerOptions", "Session", "Sessions"]

log = logging.getLogger("sandstorm.mcp")


@dataclass(frozen=True)
class ServerOptions:
    """The limits and choices of one MCP server (the ``sandstorm mcp`` flags)."""

    max_output: int = 20_000
    """Characters of output one tool result may carry; the rest is cut with a notice."""
    default_timeout: float = 30.0
    """Seconds a ``run_code`` or ``run_command`` call gets when it names no timeout."""
    max_timeout: float = 300.0
    """Most seconds a call may ask for."""
    max_concurrency: int = 4
    """Tool calls of one session running at once; further calls wait their turn."""
    max_file_bytes: int = 10 * 1024 * 1024
    """Largest file ``write_file`` writes and ``read_file`` returns, in bytes."""
    max_processes: int = 16
    """Background processes of one session running at once (each holds pipes in the
    server: unbounded, they would use up its file descriptors for every session)."""
    max_ports: int = 8
    """Ports one session may expose (each is a listening socket of the server's host)."""
    max_snapshots: int = 5
    """Snapshots one session may hold (each is a copy of the workspace on the provider's
    storage, outside the workspace's disk limit); more are refused."""
    persistent: str | None = None
    """Reuse the workspace with this name across sessions (created if missing, never deleted)."""

    def __post_init__(self) -> None:
        if self.max_output < 100:
            raise ValueError("max_output must be at least 100 characters")
        if not 0 < self.default_timeout <= self.max_timeout:
            raise ValueError("need 0 < default_timeout <= max_timeout")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.max_file_bytes < 1:
            raise ValueError("max_file_bytes must be positive")
        check_name(self.persistent, "persistent workspace name")  # at startup, not per call
        if self.max_processes < 0:
            raise ValueError("max_processes must be at least 0")
        if self.max_ports < 0:
            raise ValueError("max_ports must be at least 0")
        if self.max_snapshots < 0:
            raise ValueError("max_snapshots must be at least 0")


@dataclass(eq=False)
class Session:
    """The sandbox side of one MCP session: a workspace made on first use, deleted at close
    with the snapshots the session made."""

    provider: AsyncProvider
    options: ServerOptions
    limit: asyncio.Semaphore = field(init=False)
    capabilities: frozenset[Capability] = frozenset()
    """The provider's effective capabilities (set by the server before each call)."""
    closed: bool = field(default=False, init=False)
    _sandbox: AsyncSandbox | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _contexts: dict[str, CodeContext] = field(default_factory=dict, init=False)
    _processes: set[str] = field(default_factory=set, init=False)
    _ports: set[int] = field(default_factory=set, init=False)
    _snapshots: set[str] = field(default_factory=set, init=False)
    _home: str | None = field(default=None, init=False)
    _restored: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.limit = asyncio.Semaphore(self.options.max_concurrency)

    @property
    def workspace_id(self) -> str | None:
        """The session's workspace id, once it exists."""
        return self._sandbox.id if self._sandbox is not None else None

    async def sandbox(self) -> AsyncSandbox:
        """The session's workspace handle, created (or attached) on first use."""
        async with self._lock:
            if self.closed:
                raise RuntimeError("the MCP session is closed")
            if self._sandbox is None:
                self._sandbox = await self._open()
            return self._sandbox

    async def _open(self) -> AsyncSandbox:
        provider = self.provider
        persistent = Capability.PERSISTENCE in provider.capabilities
        if self.options.persistent is not None:
            workspace = await provider.get_or_create_workspace(name=self.options.persistent)
            self._home = workspace.id
            return await provider.attach(workspace)
        sandbox = provider.sandbox(persistent=persistent, labels={"sandstorm-mcp": "1"})
        return await sandbox.__aenter__()

    async def context(self, language: str) -> CodeContext:
        """The session's interpreter context for ``language``, made on first use."""
        sandbox = await self.sandbox()
        async with self._lock:
            context = self._contexts.get(language)
            if context is None:
                context = await sandbox.create_context(language=language)
                self._contexts[language] = context
            return context

    def forget_context(self, language: str) -> None:
        """Drop the context of ``language`` (it broke); the next call makes a new one."""
        self._contexts.pop(language, None)

    async def check_process_room(self, sandbox: AsyncSandbox) -> None:
        """Refuse a background process past ``max_processes`` still running."""
        most = self.options.max_processes
        if len(self._processes) < most:
            return
        for process_id in list(self._processes):  # forget those that ended
            try:
                process = await sandbox.get_process(process_id)
            except ProcessNotFound:
                self._processes.discard(process_id)
                continue
            if process.info.status != ProcessStatus.RUNNING:
                self._processes.discard(process_id)
        if len(self._processes) >= most:
            raise InvalidArgument(
                f"this session already runs {len(self._processes)} background processes, the "
                f"most this server allows ({most}); stop one with stop_process first"
            )

    def started(self, process_id: str) -> None:
        """Record a background process this session started."""
        self._processes.add(process_id)

    def check_snapshot_room(self) -> None:
        """Refuse a snapshot past ``max_snapshots`` for this session."""
        most = self.options.max_snapshots
        if len(self._snapshots) >= most:
            raise InvalidArgument(
                f"this session already holds {len(self._snapshots)} snapshots, the most this "
                f"server keeps per session ({most}); restore one of them or work without"
            )

    def snapshotted(self, snapshot_id: str) -> None:
        """Record a snapshot this session made (deleted at close unless ``persistent``)."""
        self._snapshots.add(snapshot_id)

    async def check_restore(self, snapshot_id: str) -> None:
        """Refuse a snapshot this session may not restore: only its own, and (``persistent``)
        those of its named workspace; never another session's or the application's."""
        if snapshot_id in self._snapshots:
            return
        if self._home is not None:
            for snap in await self.provider.list_snapshots():
                if snap.id == snapshot_id and snap.workspace_id == self._home:
                    return
        raise SnapshotNotFound(snapshot_id)

    def check_port_room(self, port: int) -> None:
        """Refuse a new port past ``max_ports``."""
        most = self.options.max_ports
        if port not in self._ports and len(self._ports) >= most:
            raise InvalidArgument(
                f"this session already exposes {len(self._ports)} ports, the most this server "
                f"allows ({most}): {', '.join(str(p) for p in sorted(self._ports))}"
            )

    def exposed(self, port: int) -> None:
        """Record a port this session exposed."""
        self._ports.add(port)

    async def replace(self, sandbox: AsyncSandbox) -> None:
        """Make ``sandbox`` the session's workspace (``restore``); the old one is released."""
        async with self._lock:
            old, self._sandbox = self._sandbox, sandbox
            made, self._restored = self._restored, True
            processes, ports = set(self._processes), set(self._ports)
            self._contexts.clear()
            self._processes.clear()
            self._ports.clear()
        if old is not None:
            await self._release(old, processes, ports, made)

    async def aclose(self) -> None:
        """Delete the session's workspace (a ``persistent`` one only loses this session's
        processes and ports); idempotent, and never raises."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            sandbox, self._sandbox = self._sandbox, None
            processes, ports = set(self._processes), set(self._ports)
            snapshots = set() if self.options.persistent else set(self._snapshots)
        if sandbox is not None:
            await self._release(sandbox, processes, ports, self._restored)
        for snapshot_id in snapshots:  # the session's data does not outlive it
            try:
                await self.provider.delete_snapshot(snapshot_id)
            except SandstormError as exc:
                log.warning("sandstorm mcp: could not delete snapshot %s: %s", snapshot_id, exc)

    async def _release(
        self, sandbox: AsyncSandbox, processes: set[str], ports: set[int], restored: bool
    ) -> None:
        try:
            if sandbox.owned:
                await sandbox.__aexit__(None, None, None)
                return
            if restored:
                await sandbox.delete()  # a workspace ``restore`` made for this session
                return
            for process_id in processes:
                with contextlib.suppress(SandstormError):
                    await (await sandbox.get_process(process_id)).kill()
            for port in ports:
                with contextlib.suppress(SandstormError):
                    await sandbox.unexpose_port(port)
        except SandstormError as exc:  # the reaper gets what is left
            log.warning("sandstorm mcp: could not release workspace %s: %s", sandbox, exc)


@dataclass(eq=False)
class Sessions:
    """Every session of one server: per MCP connection, plus one for sessionless requests."""

    provider: AsyncProvider
    options: ServerOptions
    capabilities: frozenset[Capability] | None = None
    _open: set[Session] = field(default_factory=set, init=False)
    _shared: Session | None = field(default=None, init=False)

    def new(self) -> Session:
        """A new session, closed with the others at :meth:`aclose` if not before."""
        session = Session(self.provider, self.options)
        self._open.add(session)
        return session

    def shared(self) -> Session:
        """The session of requests that belong to no connection (2026-era requests)."""
        if self._shared is None or self._shared.closed:
            self._shared = self.new()
        return self._shared

    async def close(self, session: Session) -> None:
        """Close one session."""
        self._open.discard(session)
        await session.aclose()

    async def effective(self) -> frozenset[Capability]:
        """The provider's effective capabilities, asked once."""
        if self.capabilities is None:
            self.capabilities = await self.provider.effective_capabilities()
        return self.capabilities

    async def aclose(self) -> None:
        """Close every session still open."""
        sessions, self._open = list(self._open), set()
        await asyncio.gather(*(session.aclose() for session in sessions))
