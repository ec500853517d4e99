"""Serving the app with uvicorn on loopback, in the foreground or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.lifespan.on import LifespanOn

from sandstorm import AsyncProvider

from ._app import create_app
from ._clock import Clock
from ._config import EmulatorConfig
from ._state import Emulator

__all__ = ["RunningEmulator", "running_emulator", "serve"]


@dataclass(frozen=True)
class RunningEmulator:
    """A live emulator: where to reach it and how to authenticate."""

    api_url: str
    """Main API base, e.g. ``http://127.0.0.1:41234/api`` (the SDK's ``api_url``)."""
    api_key: str
    """The first configured API key."""
    config: EmulatorConfig
    emulator: Emulator
    """The server's state (sandboxes, snapshots, clock), for assertions in tests."""

    @property
    def base_url(self) -> str:
        """``http://host:port`` without the API prefix."""
        return (
            self.api_url[: -len(self.config.api_prefix)] if self.config.api_prefix else self.api_url
        )


class _Server(uvicorn.Server):
    """uvicorn, with the emulator's shutdown: requests still running are interrupted at
    once (their commands killed), and SIGINT and SIGTERM both mean "clean up and exit 0"
    (a second signal skips waiting for connections, never the cleanup)."""

    def __init__(self, config: uvicorn.Config, emulator: Emulator) -> None:
        super().__init__(config)
        self.emulator = emulator

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.emulator.interrupt_requests()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # unlike uvicorn's, re-raises nothing afterwards: the process exits normally
        with handling_signals(self):
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


@contextlib.contextmanager
def handling_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGINT and SIGTERM ask ``server`` to exit (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _serve_then_close(
    server: uvicorn.Server, sock: socket.socket, emulator: Emulator
) -> None:
    """Serve until told to exit; the emulator is closed even when uvicorn skipped its
    lifespan shutdown (forced exit, or a signal that came before startup finished)."""
    try:
        await server.serve(sockets=[sock])
    finally:
        lifespan = getattr(server, "lifespan", None)
        if (
            isinstance(lifespan, LifespanOn)
            and lifespan.startup_event.is_set()
            and not lifespan.shutdown_event.is_set()
        ):
            # uvicorn skips the lifespan shutdown on a forced exit (and when told to exit
            # during startup): run it, rather than leave its task to be cancelled noisily
            await lifespan.shutdown()
        await emulator.aclose()


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the emulator's own lines (disconnects, engine errors) on
    the same handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["sandstorm_daytona.emulator"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


_WILDCARDS = ("0.0.0.0", "::", "")
"""Bind addresses no client can use: the toolbox URL then follows each request's Host."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so, and without it keep-alive requests wait ~40 ms (Nagle vs.
    # delayed ACK) whenever a response goes out in two writes.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        # listening at once: a client told the address (``on_ready``) may connect before
        # uvicorn has started; its connection then waits in the backlog, never refused
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, prefix: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{prefix}"


@contextlib.contextmanager
def running_emulator(
    config: EmulatorConfig | None = None,
    *,
    clock: Clock | None = None,
    provider: AsyncProvider | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningEmulator]:
    """Run the emulator with uvicorn in a background thread; yields a :class:`RunningEmulator`.

    On exit the server stops and every workspace and snapshot it created is deleted.

    >>> with running_emulator() as emu:  # doctest: +SKIP
    ...     daytona = Daytona(DaytonaConfig(api_key=emu.api_key, api_url=emu.api_url))
    """
    config = config or EmulatorConfig()
    sock = _bind(config.host, config.port)
    port: int = sock.getsockname()[1]
    if not config.public_url:
        config = config.model_copy(update={"port": port, "public_url": _url(config.host, port, "")})
    app = create_app(config, clock=clock, provider=provider)
    emulator: Emulator = app.state.emulator
    server = _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=port,
            log_level="warning",
            lifespan="on",
            ws="wsproto",
            timeout_graceful_shutdown=5,
        ),
        emulator,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_serve_then_close(server, sock, emulator))
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name="daytona-emulator", daemon=True)
    thread.start()
    deadline = threading.Event()
    waited = 0.0
    while not server.started and thread.is_alive() and waited < startup_timeout:
        deadline.wait(0.02)
        waited += 0.02
    if not server.started:
        server.should_exit = True
        thread.join(10)
        sock.close()
        raise RuntimeError(
            f"the emulator did not start on {config.host}:{port}: {errors or 'timeout'}"
        )
    try:
        yield RunningEmulator(
            api_url=_url(config.host, port, config.api_prefix),
            api_key=config.default_api_key,
            config=config,
            emulator=app.state.emulator,
        )
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def serve(
    config: EmulatorConfig | None = None,
    *,
    clock: Clock | None = None,
    provider: AsyncProvider | None = None,
    on_ready: Callable[[RunningEmulator], None] | None = None,
) -> None:
    """Serve the emulator in the foreground until interrupted (what the CLI runs).

    ``on_ready`` is called with the address and key once the socket is bound.
    """
    config = config or EmulatorConfig()
    sock = _bind(config.host, config.port)
    port: int = sock.getsockname()[1]
    if not config.public_url and config.host not in _WILDCARDS:
        config = config.model_copy(update={"port": port, "public_url": _url(config.host, port, "")})
    app = create_app(config, clock=clock, provider=provider)
    emulator: Emulator = app.state.emulator
    server = _Server(
        uvicorn.Config(
            app,
            log_level="info",
            log_config=_log_config(),
            ws="wsproto",
            lifespan="on",
            timeout_graceful_shutdown=5,
        ),
        emulator,
    )
    # signals count from here on: one that arrives before uvicorn starts still cleans up
    with handling_signals(server):
        if on_ready is not None:
            on_ready(
                RunningEmulator(
                    api_url=_url(config.host, port, config.api_prefix),
                    api_key=config.default_api_key,
                    config=config,
                    emulator=emulator,
                )
            )
        try:
            asyncio.run(_serve_then_close(server, sock, emulator))
        finally:
            sock.close()
