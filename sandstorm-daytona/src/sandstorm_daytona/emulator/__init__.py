"""A Daytona-compatible server that really executes code, on sandstorm's ``local`` engine.

It is to Daytona what moto's server mode is to AWS: the official ``daytona`` SDK (and
sandstorm's Daytona provider) work against it unchanged, offline and without
credentials.

>>> from daytona import Daytona, DaytonaConfig            # doctest: +SKIP
>>> from sandstorm_daytona.emulator import running_emulator
>>> with running_emulator() as emu:                       # doctest: +SKIP
...     daytona = Daytona(DaytonaConfig(api_key=emu.api_key, api_url=emu.api_url))
...     sandbox = daytona.create()
...     sandbox.process.code_run("print(6*7)").result
'42\\n'

Public names: :class:`EmulatorConfig` (with :class:`RateLimit`, :class:`Quotas`,
:class:`Faults`, :class:`FaultRule`), :func:`create_app`, :func:`running_emulator`,
:func:`serve`, :class:`RunningEmulator`, :class:`Emulator`, and the clocks
:class:`ManualClock` / :class:`SystemClock`.
"""

from __future__ import annotations

EXTRA_HINT = "pip install 'sandstorm-daytona[emulator]'"
"""How to install what the emulator needs beyond the provider (its server stack)."""


def _require_server_stack() -> None:
    """Raise ``ModuleNotFoundError`` naming the extra when the server stack is missing."""
    import importlib

    for name in ("starlette", "uvicorn", "python_multipart"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ModuleNotFoundError(
                f"the Daytona emulator needs the 'emulator' extra ({name} is missing): "
                f"{EXTRA_HINT}",
                name=name,
            ) from exc


_require_server_stack()

from ._app import create_app  # noqa: E402
from ._clock import Clock, ManualClock, SystemClock  # noqa: E402
from ._config import EmulatorConfig, FaultRule, Faults, Quotas, RateLimit  # noqa: E402
from ._edge import ConnectionDropped  # noqa: E402
from ._server import RunningEmulator, running_emulator, serve  # noqa: E402
from ._state import Emulator, Exchange  # noqa: E402

DAEMON_VERSION = "0.226.1-sandstorm"
"""What ``/version`` and ``/config`` report."""

__all__ = [
    "DAEMON_VERSION",
    "EXTRA_HINT",
    "Clock",
    "ConnectionDropped",
    "Emulator",
    "EmulatorConfig",
    "Exchange",
    "FaultRule",
    "Faults",
    "ManualClock",
    "Quotas",
    "RateLimit",
    "RunningEmulator",
    "SystemClock",
    "create_app",
    "running_emulator",
    "serve",
]
