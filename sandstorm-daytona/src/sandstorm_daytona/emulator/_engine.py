"""Running shell scripts in a sandbox's workspace through the engine's public API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sandstorm import Capability, RunResult

from ._shell import user_shell

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._state import Emulator

__all__ = ["probe_dirs", "shell"]


async def shell(
    emulator: Emulator,
    record: SandboxRecord,
    script: str,
    *,
    timeout: float | None = None,
    stdin: bytes | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    plain: bool = False,
    workspace_id: str | None = None,
) -> RunResult:
    """Run ``script`` in the sandbox's workspace, in the user's shell unless ``plain``.

    The sandbox's env is exported first. ``workspace_id`` targets another workspace than
    the sandbox's own (a restore in progress). Raises the engine's errors as they are
    (``ExecutionTimeout`` on timeout).
    """
    if workspace_id is not None:
        workspace = await emulator.provider.get_workspace(workspace_id)
    else:
        workspace = await emulator.workspace(record)
    provider = emulator.provider
    text = script if plain else user_shell(script)
    streaming = Capability.STREAMING in provider.capabilities and (
        on_stdout is not None or on_stderr is not None
    )
    return await provider.run_in_workspace(
        workspace,
        text,
        language="shell",
        timeout=timeout or emulator.config.command_timeout,
        env=record.env or None,
        stdin=stdin,
        on_stdout=on_stdout if streaming else None,
        on_stderr=on_stderr if streaming else None,
    )


async def probe_dirs(emulator: Emulator, record: SandboxRecord) -> tuple[str, str]:
    """The sandbox's working directory and home directory as its code sees them."""
    runtime = emulator.rt(record)
    if runtime.work_dir is None or runtime.home_dir is None:
        result = await shell(emulator, record, 'pwd; printf "%s\\n" "${HOME:-}"', plain=True)
        lines = result.stdout.splitlines()
        work = lines[0] if lines else "/"
        home = lines[1] if len(lines) > 1 and lines[1] else work
        runtime.work_dir, runtime.home_dir = work, home
    return runtime.work_dir, runtime.home_dir
