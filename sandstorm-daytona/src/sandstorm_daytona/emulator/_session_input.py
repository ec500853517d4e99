"""Asynchronous session commands that take input: run as engine background processes.

When the engine declares ``Capability.PROCESSES``, a ``runAsync`` session command is
started with ``start_process(stdin=True)``, so ``POST .../command/{id}/input`` can write
to its stdin as the daemon's does; its output streams into the command as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import sandstorm
from sandstorm import Capability

from ._shell import user_shell
from ._workspace_shell import session_shell

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._sessions import Command
    from ._state import Emulator

__all__ = ["interactive", "run_interactive"]


def interactive(emulator: Emulator) -> bool:
    """True when the engine can run commands that take input."""
    return Capability.PROCESSES in emulator.provider.capabilities


async def run_interactive(
    emulator: Emulator,
    record: SandboxRecord,
    command: Command,
    script: str,
    on_stdout: Callable[[str], None],
) -> tuple[int, str]:
    """Run ``script`` as a background process; the exit code and the whole stdout."""
    provider = emulator.provider
    workspace = await emulator.workspace(record)
    text = user_shell(script, await session_shell(emulator, record))
    handle = await provider.start_process(workspace, text, env=record.env or None, stdin=True)
    command.process = handle
    command.ready.set()
    stdout: list[str] = []

    async def follow() -> int:
        async for chunk in handle.stream():
            if chunk.stream == "stdout":
                stdout.append(chunk.text)
                on_stdout(chunk.text)
            else:
                command.emit("stderr", chunk.text)
        return await handle.wait()

    try:
        code = await asyncio.wait_for(follow(), emulator.config.session_command_timeout)
    except TimeoutError:
        code = 124
    finally:
        command.process = None
        with contextlib.suppress(sandstorm.SandstormError):
            await asyncio.shield(handle.kill())
    return code, "".join(stdout)
