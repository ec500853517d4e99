"""Shell scripts the emulator runs inside a workspace (through the engine's ``exec``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

__all__ = ["DAEMON_SHELLS", "q", "script_in", "shell_probe", "user_shell"]

DAEMON_SHELLS = ("/usr/bin/zsh", "/bin/zsh", "/usr/bin/bash", "/bin/bash")
"""The shells the daemon looks for in ``/etc/shells``, in its order of preference."""


def q(value: str) -> str:
    """``value`` quoted for a POSIX shell."""
    return shlex.quote(value)


def shell_probe(wanted: str | None) -> str:
    """A script printing the path of the session shell.

    With ``wanted`` (a name or a path) that shell, or nothing when it is missing. Without,
    the daemon's choice (``apps/daemon/pkg/common/get_shell.go``): the first of
    :data:`DAEMON_SHELLS` listed in ``/etc/shells`` (zsh before bash), else ``$SHELL``,
    else ``sh``; a listed shell that is not installed is passed over.
    """
    if wanted:
        return f"command -v {q(wanted)} || true\n"
    checks = "".join(
        f'case "$l" in *{q(path)}*) if [ -x {q(path)} ]; then echo {q(path)}; exit 0; fi ;; esac\n'
        for path in DAEMON_SHELLS
    )
    return (
        "l=$(grep '^[^#]' /etc/shells 2>/dev/null)\n"
        f"{checks}"
        'if [ -n "${SHELL:-}" ] && [ -x "$SHELL" ]; then echo "$SHELL"; else command -v sh; fi\n'
    )


def user_shell(script: str, shell: str) -> str:
    """Run ``script`` with ``shell`` (a path from :func:`shell_probe`), as ``shell -c``."""
    return f"exec {q(shell)} -c {q(script)}\n"


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
