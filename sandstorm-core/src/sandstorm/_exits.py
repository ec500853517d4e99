"""Nothing a process created outlives it: the process-exit path shared by every provider.

Every provider registers here when it is built. At interpreter exit -- before Python shuts
its thread pools down, so cleanups can still use them -- each provider that still holds
process-bound workspaces (one-shot runs, sandbox handles, non-persistent workspaces) or
cleanups in flight is closed: on its own event loop when that loop still runs in another
thread (the blocking facade), else on a fresh loop.

SIGTERM and SIGHUP, whose default action kills the process without running any Python,
are turned into ``SystemExit(128 + signum)`` so the same path runs. A handler the
application installed before is called instead (chained, never replaced); a handler it
installs later replaces this one, which is the application's decision.

Every workspace also records its owner (host, pid and process start time), so a reaper
in another process can tell a live owner from a dead one: :func:`owner_alive`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # registered before us, so its pools shut down after us
import logging
import os
import signal
import socket
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._provider import AsyncProvider

__all__ = ["EXIT_SIGNALS", "current_owner", "hold", "owner_alive", "register", "release"]

log = logging.getLogger("sandstorm")

EXIT_SIGNALS = tuple(
    sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig
)
"""Signals whose default action would end the process without any cleanup."""

_lock = threading.Lock()
_providers: weakref.WeakSet[AsyncProvider] = weakref.WeakSet()
_holding: set[AsyncProvider] = set()
"""Providers with work left: kept alive until it is done, even if the application drops them."""
_hooked = False
_previous: dict[int, Any] = {}
_owner: str | None = None


def register(provider: AsyncProvider) -> None:
    """Have ``provider`` closed at process exit if the application did not close it."""
    global _hooked
    with _lock:
        _providers.add(provider)
        if not _hooked:
            _hooked = True
            hook = getattr(threading, "_register_atexit", None)
            try:
                # runs before concurrent.futures refuses new work (plain atexit runs after)
                if hook is None:
                    raise RuntimeError
                hook(_at_exit)
            except RuntimeError:
                atexit.register(_at_exit)
    _install_signal_handlers()


def hold(provider: AsyncProvider) -> None:
    """Keep ``provider`` alive until :func:`release`: it has something to delete at exit."""
    with _lock:
        _holding.add(provider)


def release(provider: AsyncProvider) -> None:
    """``provider`` has nothing left to delete."""
    with _lock:
        _holding.discard(provider)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in EXIT_SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal or current in (signal.SIG_IGN, None):
            continue  # ours already, ignored on purpose, or set outside Python
        _previous[signum] = current
        try:
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            return


def _on_signal(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)  # the application's own handler decides
        return
    raise SystemExit(128 + signum)


def _at_exit() -> None:
    with _lock:
        providers = list(_providers)
    for provider in providers:
        if provider._sandstorm_needs_exit():
            try:
                _close_at_exit(provider)
            except BaseException as exc:  # never let one provider stop the others
                log.warning("sandstorm: could not clean up %s at exit: %r", provider.name, exc)


def _close_at_exit(provider: AsyncProvider) -> None:
    loop = provider._sandstorm_home
    timeout = provider.exit_timeout + 5
    if (
        loop is not None
        and loop.is_running()
        and not loop.is_closed()
        and getattr(loop, "_thread_id", None) != threading.get_ident()
    ):
        future = asyncio.run_coroutine_threadsafe(provider._sandstorm_exit(rebind=False), loop)
        try:
            future.result(timeout)
            return
        except concurrent.futures.TimeoutError:
            future.cancel()
            return
    _in_fresh_loop(lambda: provider._sandstorm_exit(rebind=True), timeout)


def _in_fresh_loop(make: Callable[[], Any], timeout: float) -> None:
    """Run ``make()`` on a new event loop in a new thread (this thread may own a dead loop)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="sandstorm-exit", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # some Pythons (3.12.0-3.12.x) refuse new threads at shutdown
        target()
    else:
        thread.join(timeout)
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------- owners


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def current_owner() -> str:
    """This process as ``host/pid/start`` (start: clock ticks after boot, Linux)."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner.split("/")[1] != str(pid):  # recomputed after a fork
        _owner = f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '0'}"
    return _owner


def owner_alive(owner: str | None) -> bool | None:
    """True when ``owner`` is a live process of this host, False when it is gone.

    ``None`` when it cannot be told: another host, or no usable owner recorded.
    """
    if not owner:
        return None
    parts = owner.split("/")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, start = parts
    if host != socket.gethostname():
        return None
    ticks = _start_ticks(int(pid))
    if ticks is None:
        return False
    return start in ("0", ticks)
