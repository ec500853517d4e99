"""Shell scripts the emulator runs inside a workspace (through the engine's ``exec``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

__all__ = ["q", "script_in", "user_shell"]


def q(value: str) -> str:
    """``value`` quoted for a POSIX shell."""
    return shlex.quote(value)


def user_shell(script: str) -> str:
    """Run ``script`` with the first of zsh, bash, sh that exists, as the daemon does."""
    return (
        f"__s={q(script)}\n"
        'for __sh in zsh bash; do if command -v "$__sh" >/dev/null 2>&1; then '
        'exec "$__sh" -c "$__s"; fi; done\n'
        'exec sh -c "$__s"\n'
    )


def script_in(
    command: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    merge_stderr: bool = False,
) -> str:
    """A script that runs ``command`` (any shell text) in ``cwd`` with ``env`` exported.

    The command goes through ``eval`` so a syntax error in it is the command's failure
    (exit 2 with the shell's message), not the wrapper's.
    """
    lines = []
    if merge_stderr:
        lines.append("exec 2>&1")
    for key, value in (env or {}).items():
        lines.append(f"export {key}={q(value)}")
    if cwd:
        lines.append(f"cd -- {q(cwd)} || exit 1")
    lines.append(f"eval {q(command)}")
    return "\n".join(lines) + "\n"
