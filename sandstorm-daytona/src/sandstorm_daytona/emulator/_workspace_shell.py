"""Running shell scripts in a sandbox's workspace through the engine's public API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sandstorm import Capability, RunResult, TerminationReason

from ._errors import DaemonError
from ._shell import shell_probe, user_shell

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._state import Emulator

__all__ = ["TRUNCATED_HEADER", "probe_dirs", "session_shell", "shell", "truncation_notice"]

TRUNCATED_HEADER = "X-Daytona-Emulator-Output-Truncated"
"""Response header of execute/code-run replies whose output the engine cut."""


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
    text = script if plain else user_shell(script, await session_shell(emulator, record))
    provider = emulator.provider
    streaming = Capability.STREAMING in provider.capabilities and (
        on_stdout is not None or on_stderr is not None
    )
    limit = timeout or emulator.config.command_timeout
    if provider.max_timeout is not None:
        # the daemon takes any uint32 of seconds; past the engine's longest run (a day)
        # the difference cannot be observed
        limit = min(limit, provider.max_timeout)
    return await provider.run_in_workspace(
        workspace,
        text,
        language="shell",
        timeout=limit,
        env=record.env or None,
        stdin=stdin,
        on_stdout=on_stdout if streaming else None,
        on_stderr=on_stderr if streaming else None,
    )


async def session_shell(emulator: Emulator, record: SandboxRecord) -> str:
    """The path of the shell that runs the sandbox's commands (``EmulatorConfig.shell``,
    else the daemon's choice), looked up once per sandbox.

    The daemon knows it from its start, so the first command of a new sandbox must not
    pay a probe (a whole engine run): the answer depends only on the snapshot's system
    files, which the sandboxes of the engine cannot change, and on ``$SHELL``, so it is
    probed once per snapshot and ``$SHELL``.
    """
    runtime = emulator.runtime_of(record)
    if runtime.shell is None:
        wanted = emulator.config.shell
        key = f"shell {record.snapshot!r} {record.env.get('SHELL')!r}"
        found = emulator.probes.get(key)
        if found is None:
            result = await shell(emulator, record, shell_probe(wanted), plain=True)
            lines = result.stdout.strip().splitlines()
            if not lines:
                raise DaemonError(
                    500, f"the session shell {wanted!r} is not installed in the sandbox", "INTERNAL"
                )
            found = emulator.probes[key] = lines[-1]
        runtime.shell = found
    return runtime.shell


async def probe_dirs(emulator: Emulator, record: SandboxRecord) -> tuple[str, str]:
    """The sandbox's working directory and home directory as its code sees them."""
    runtime = emulator.runtime_of(record)
    if runtime.work_dir is None or runtime.home_dir is None:
        result = await shell(emulator, record, 'pwd; printf "%s\\n" "${HOME:-}"', plain=True)
        lines = result.stdout.splitlines()
        work = lines[0] if lines else "/"
        home = lines[1] if len(lines) > 1 and lines[1] else work
        runtime.work_dir, runtime.home_dir = work, home
    return runtime.work_dir, runtime.home_dir


def truncation_notice(emulator: Emulator, result: RunResult) -> str | None:
    """A line telling the client its output was cut, or None when it is whole.

    A real sandbox keeps all output; the engine behind the emulator keeps
    ``output_cap`` bytes per stream and kills the command past twice that, so the cut is
    made visible instead of silent.
    """
    killed = result.reason == TerminationReason.OUTPUT_LIMIT
    if not (killed or result.stdout_truncated or result.stderr_truncated):
        return None
    cap = _output_cap(emulator)
    kept = f"the first {_size(cap)} of each stream" if cap else "part of each stream"
    notice = f"\n[daytona emulator] output truncated: the engine kept {kept}"
    if killed:
        beyond = f" after {_size(2 * cap)} of output" if cap else ""
        notice += f"; the command was killed (exit {result.exit_code}){beyond}"
    return notice + "\n"


def _output_cap(emulator: Emulator) -> int | None:
    config = emulator.config
    if config.provider != "local":
        cap = config.provider_options.get("output_cap")
        return int(cap) if cap else None
    return int(config.provider_options.get("output_cap", config.output_cap))


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count % (1 << 20) == 0 else f"{count} bytes"
