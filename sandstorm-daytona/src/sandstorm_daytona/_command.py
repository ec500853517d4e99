"""Shell command lines that run code in a sandbox session, one per run.

The code, its stdin and its environment travel base64-encoded inside the command line
(or, when large, as uploaded files), are decoded into a private run directory, and run
in a fresh process group so that a timeout can kill the whole tree. The outer subshell
keeps the session's shell alive whatever the code does (``exit``, ``cd``...).
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from sandstorm import ProviderConfigError

__all__ = ["INLINE_LIMIT", "RunScript", "build_run", "kill_command"]

INLINE_LIMIT = 96 * 1024
"""Above this many bytes of encoded payload, code and stdin are uploaded as files."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_INTERPRETERS = {
    "python": ("main.py", 'exec python3 -u "$D/main.py"'),
    "javascript": ("main.js", 'exec node "$D/main.js"'),
    "typescript": (
        "main.ts",
        # ts-node from PATH, else npx without installing anything (fails fast offline).
        "T='-T --ignore-diagnostics 5107'; O='{\"module\":\"CommonJS\"}'; "
        'if command -v ts-node >/dev/null 2>&1; then exec ts-node $T -O "$O" "$D/main.ts"; '
        "else npm_config_loglevel=error exec npx --no --offline "
        'ts-node $T -O "$O" "$D/main.ts"; fi',
    ),
    "shell": (
        "main.sh",
        'if command -v bash >/dev/null 2>&1; then exec bash "$D/main.sh"; '
        'else exec sh "$D/main.sh"; fi',
    ),
}


def upload_dir(token: str) -> str:
    """Where large payloads are uploaded, relative to the sandbox work dir."""
    return f".sandstorm-upload-{token}"


def run_dir(token: str) -> str:
    """The per-run directory inside the sandbox."""
    return f"/tmp/.sandstorm-{token}"


@dataclass(frozen=True)
class RunScript:
    """A command line for the session, plus files to upload first (large payloads)."""

    command: str
    uploads: dict[str, bytes]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_run(
    token: str,
    language: str,
    code: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    max_output: int = 16 * 1024 * 1024,
) -> RunScript:
    """The session command that runs ``code`` in ``language`` with ``env`` and ``stdin``.

    Each stream is cut inside the sandbox after ``max_output + 1`` bytes (``head -c``),
    so a flood never crosses the network and the caller sees that the cap was passed.
    """
    if language not in _INTERPRETERS:
        raise ProviderConfigError(f"daytona cannot run language {language!r}")
    for name in env:
        if not _NAME.match(name):
            raise ProviderConfigError(
                f"env name {name!r} is not a valid shell variable name "
                "(letters, digits and _, not starting with a digit)"
            )
    filename, launch = _INTERPRETERS[language]
    directory = run_dir(token)
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    # The launcher runs as the leader of its own process group and records its pid,
    # which is then also the group id that kill_command() signals.
    launcher = f'D={shlex.quote(directory)}\nprintf %s "$$" > "$D/pgid"\n{exports}{launch}\n'
    code_bytes = code.encode()
    payload = len(code_bytes) + len(stdin or b"")
    uploads: dict[str, bytes] = {}
    steps = [f"D={shlex.quote(directory)}", 'mkdir -p "$D"']
    steps.append(f"""printf %s '{_b64(launcher.encode())}' | base64 -d > "$D/run.sh\"""")
    if payload * 4 // 3 > INLINE_LIMIT:
        # Uploaded next to the work dir (the file API's home ground), then moved in.
        staging = upload_dir(token)
        uploads[f"{staging}/{filename}"] = code_bytes
        if stdin is not None:
            uploads[f"{staging}/stdin"] = stdin
        steps.append(f'mv -f {staging}/* "$D"/ && rmdir {staging}')
    else:
        steps.append(f"printf %s '{_b64(code_bytes)}' | base64 -d > \"$D/{filename}\"")
        if stdin is not None:
            steps.append(f"printf %s '{_b64(stdin)}' | base64 -d > \"$D/stdin\"")
    source = '"$D/stdin"' if stdin is not None else "/dev/null"
    # stdout and stderr pass through fifos into `head -c`, outside the code's process
    # group: once the code ends and its group is killed, the heads see EOF and finish.
    cap = max_output + 1
    steps.append('mkfifo "$D/o" "$D/e"')
    # head buffers its output on a pipe; stdbuf keeps the streams live where it exists
    steps.append('H=head; command -v stdbuf >/dev/null 2>&1 && H="stdbuf -o0 head"')
    steps.append(f'$H -c {cap} < "$D/o" & ho=$!')
    steps.append(f'$H -c {cap} < "$D/e" >&2 & he=$!')
    steps.append(
        "if command -v setsid >/dev/null 2>&1; "
        f'then setsid sh "$D/run.sh" < {source} > "$D/o" 2> "$D/e"; '
        f'else sh "$D/run.sh" < {source} > "$D/o" 2> "$D/e"; fi'
    )
    steps.append("rc=$?")
    # Whatever the code left running in its group (background jobs) dies with the run.
    steps.append('p=$(cat "$D/pgid" 2>/dev/null); [ -n "$p" ] && kill -KILL "-$p" 2>/dev/null')
    steps.append('wait "$ho" "$he"')
    steps.append('rm -rf "$D"')
    steps.append("exit $rc")
    return RunScript(command="(" + "; ".join(steps) + ")", uploads=uploads)


def kill_command(token: str) -> str:
    """A command line that kills the run's whole process group and removes its files."""
    directory = shlex.quote(run_dir(token))
    return (
        f'p=$(cat {directory}/pgid 2>/dev/null); if [ -n "$p" ]; then '
        'kill -KILL "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; fi; '
        f"rm -rf {directory} {upload_dir(token)}; true"
    )
