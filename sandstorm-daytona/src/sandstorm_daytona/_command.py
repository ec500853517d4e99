"""Shell command lines that run code in a sandbox session, one per run.

The code, its stdin and its environment travel base64-encoded inside the command line
(or, when large, as uploaded files), are decoded into a private run directory, and run
in a fresh process group so that a timeout can kill the whole tree. The outer subshell
keeps the session's shell alive whatever the code does (``exit``, ``cd``...).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from sandstorm import ProviderConfigError

__all__ = [
    "CHUNK",
    "FRAME",
    "INLINE_LIMIT",
    "ExecOutcome",
    "RunScript",
    "build_exec",
    "build_run",
    "exec_marker",
    "kill_command",
    "parse_exec",
]

INLINE_LIMIT = 96 * 1024
"""Above this many bytes of encoded payload, code and stdin are uploaded as files."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[0-9a-f]{8,64}$")

_INTERPRETERS = {
    "python": ("main.py", 'exec @X@python3 -u "$D/main.py"'),
    "javascript": ("main.js", 'exec @X@node "$D/main.js"'),
    "typescript": (
        "main.ts",
        # ts-node from PATH, else npx without installing anything (fails fast offline).
        'O=\'{"module":"CommonJS"}\'; '
        "if command -v ts-node >/dev/null 2>&1; then exec @X@ts-node -T --ignore-diagnostics "
        '5107 -O "$O" "$D/main.ts"; else npm_config_loglevel=error exec @X@npx --no --offline '
        'ts-node -T --ignore-diagnostics 5107 -O "$O" "$D/main.ts"; fi',
    ),
    "shell": (
        "main.sh",
        'if command -v bash >/dev/null 2>&1; then exec @X@bash "$D/main.sh"; '
        'else exec @X@sh "$D/main.sh"; fi',
    ),
}


FRAME = "@@"
"""Start of a line of the run's output that carries one base64 chunk of a stream."""

CHUNK = 65536
"""Most bytes one frame carries (one read of the stream's pipe)."""

# The run's body, a POSIX sh script (it runs under ``sh`` whatever the session shell is).
# The code's stdout and stderr pass through fifos into `frame`, outside the code's process
# group: once the code ends and its group is killed, the framers see EOF and finish. Each
# framer turns what one read() returns into one line "@@<base64>": the daemon relabels
# output line by line (appending a newline to an unterminated last line, dropping NUL
# bytes under bash and dash), which leaves such lines intact, so the bytes come back
# exact. Every frame is written as soon as it is read, so streaming stays live. Past the
# cap a framer stops reading: the code gets SIGPIPE and the caller sees the cut.
_BODY = """\
D=@D@
mkfifo "$D/o" "$D/e" || exit 1
frame() {
  n=0
  while [ "$n" -lt @CAP@ ]; do
    r=$((@CAP@ - n))
    if [ "$r" -gt @CHUNK@ ]; then r=@CHUNK@; fi
    c=$(dd bs="$r" count=1 2>/dev/null | base64 | tr -d '\\n')
    if [ -z "$c" ]; then break; fi
    printf '@FRAME@%s\\n' "$c"
    q=0
    case $c in *==) q=2 ;; *=) q=1 ;; esac
    n=$((n + ${#c} / 4 * 3 - q))
  done
}
frame < "$D/o" & ho=$!
frame < "$D/e" >&2 & he=$!
if command -v setsid >/dev/null 2>&1; then
  setsid sh "$D/run.sh" < @SOURCE@ > "$D/o" 2> "$D/e"
else
  sh "$D/run.sh" < @SOURCE@ > "$D/o" 2> "$D/e"
fi
rc=$?
p=$(cat "$D/pgid" 2>/dev/null)
if [ -n "$p" ]; then kill -KILL "-$p" 2>/dev/null; fi
wait "$ho" "$he"
rm -rf "$D"
exit "$rc"
"""


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


def _launch(language: str, env: Mapping[str, str], prefix: str) -> tuple[str, str]:
    """The code's file name and the lines that export ``env`` and ``exec`` the interpreter
    (behind ``prefix``, a command line that runs its arguments), after checking both."""
    if language not in _INTERPRETERS:
        raise ProviderConfigError(f"daytona cannot run language {language!r}")
    for name in env:
        if not _NAME.match(name):
            raise ProviderConfigError(
                f"env name {name!r} is not a valid shell variable name "
                "(letters, digits and _, not starting with a digit)"
            )
    filename, launch = _INTERPRETERS[language]
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    return filename, f"{exports}{launch.replace('@X@', prefix)}\n"


def _launcher(directory: str, language: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The code's file name and the launcher script that runs it (checks its inputs)."""
    filename, launch = _launch(language, env, "")
    # The launcher runs as the leader of its own process group and records its pid,
    # which is then also the group id that kill_command() signals.
    launcher = f'D={shlex.quote(directory)}\nprintf %s "$$" > "$D/pgid"\n{launch}'
    return filename, launcher


def _write(data: bytes, target: str, *, literal: bool) -> str:
    """A step that writes ``data`` to ``target``: a quoted ``printf`` (a shell builtin, no
    process) when ``literal`` and the bytes are NUL-free UTF-8, else ``base64 -d``."""
    if literal and b"\0" not in data:
        try:
            return f"printf %s {shlex.quote(data.decode())} > {target}"
        except UnicodeDecodeError:
            pass
    return f"printf %s '{_b64(data)}' | base64 -d > {target}"


def _stage(
    token: str,
    language: str,
    code: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    *,
    literal: bool = False,
    launcher: bool = True,
) -> tuple[list[str], dict[str, bytes], str]:
    """Steps that fill the (existing) run directory ``$D``, the files to upload, the stdin
    source; with ``launcher``, the steps write ``$D/run.sh`` too."""
    filename, script = _launcher(run_dir(token), language, env)
    code_bytes = code.encode()
    payload = len(code_bytes) + len(stdin or b"")
    uploads: dict[str, bytes] = {}
    steps = [_write(script.encode(), '"$D/run.sh"', literal=literal)] if launcher else []
    if payload * 4 // 3 > INLINE_LIMIT:
        # Uploaded next to the work dir (the file API's home ground), then moved in.
        staging = upload_dir(token)
        uploads[f"{staging}/{filename}"] = code_bytes
        if stdin is not None:
            uploads[f"{staging}/stdin"] = stdin
        steps.append(f'mv -f {staging}/* "$D"/ && rmdir {staging}')
    else:
        steps.append(_write(code_bytes, f'"$D/{filename}"', literal=literal))
        if stdin is not None:
            steps.append(_write(stdin, '"$D/stdin"', literal=literal))
    source = '"$D/stdin"' if stdin is not None else "/dev/null"
    return steps, uploads, source


def build_run(
    token: str,
    language: str,
    code: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    max_output: int = 16 * 1024 * 1024,
) -> RunScript:
    """The session command that runs ``code`` in ``language`` with ``env`` and ``stdin``.

    Each stream is cut inside the sandbox after ``max_output + 1`` bytes,
    so a flood never crosses the network and the caller sees that the cap was passed.
    """
    directory = run_dir(token)
    staged, uploads, source = _stage(token, language, code, env, stdin)
    steps = [f"D={shlex.quote(directory)}", 'mkdir -p "$D" || exit 1', *staged]
    body = (
        _BODY.replace("@D@", shlex.quote(directory))
        .replace("@CAP@", str(max_output + 1))
        .replace("@CHUNK@", str(CHUNK))
        .replace("@FRAME@", FRAME)
        .replace("@SOURCE@", source)
    )
    steps.append(f"printf %s '{_b64(body.encode())}' | base64 -d > \"$D/w.sh\"")
    # The body runs under sh whatever the session's shell is (zsh, bash, dash...).
    steps.append('exec sh "$D/w.sh"')
    return RunScript(command="(" + "; ".join(steps) + ")", uploads=uploads)


KEEP_MINUTES = 5
"""How long a one-request run keeps its result for a resent request to pick up."""

# The one-request run's body, POSIX sh, run in the run's directory $D (in /tmp) by sh:
# the daemon's shell itself when it is sh (no `sh` to start), else a new `sh` (dash forks
# lighter processes than zsh or bash), given C, K, D and M as arguments (not exported:
# the code's environment stays the caller's). It starts as few
# programs as it can: on the emulator the sandbox shares the client's CPU, and each
# program costs a fork, an exec and a dynamic link.
# - The code runs in its own process group, from a subshell that exports the env and
#   execs straight into the interpreter (no launcher shell), with stdout and stderr
#   through pipes into `head -c CAP`, which writes them to files and stops reading past
#   the cap (the code then gets SIGPIPE).
# - Where `setsid` and `timeout` exist (looked up on the wrapper's PATH by the shell
#   itself: the code's env may change PATH), `setsid timeout -s KILL` kills the group at
#   the deadline, and a kill at or past it (exit 137, or 124 from a timeout that does
#   not kill itself; elapsed time from /proc/uptime) is the timeout. Where only `setsid`
#   exists, a watchdog subshell with `sleep` kills the group and leaves a mark; where
#   neither does, the watchdog kills the code alone (what it started may outlive it).
# - The raw streams and the exit code are kept in $K, the run's key directory in the
#   user's cache directory (which lasts as long as the sandbox, unlike the emulator's
#   /tmp, private to each request; a .gitignore keeps the directory out of `git status`
#   in the work dir, often the home). Once the code is done, its group is killed, and
#   "$K/done" marks the result complete, so that a resent request, which finds the
#   key taken, answers the same result instead of running the code twice. The next run
#   in the sandbox removes $K and $D (@DONE@), or any later run once they are
#   KEEP_MINUTES old.
# - The reply (_EXEC_EMIT) carries both streams base64-encoded between lines "<marker>",
#   then "<marker> <exit code> <timed out>": the code's own output never reaches it
#   directly, and base64 survives the daemon's relabelling and NUL-dropping.
_EXEC_BODY = """\
if [ "$#" -eq 4 ]; then C=$1 K=$2 D=$3 M=$4; fi
set -- @DONE@
if [ "$#" -gt 0 ]; then rm -rf "$@"; fi
set -- "$C"/*/done
if [ "$#" -gt 1 ] || [ -e "$1" ]; then
  find "$C" -mindepth 2 -maxdepth 2 -name done -mmin +@KEEP@ 2>/dev/null | while IFS= read -r r; do
    r=${r%/done}
    if [ "$r" != "$K" ]; then rm -rf "$r" "/tmp/.sandstorm-${r##*/}"; fi
  done
fi
s=
y=
o=$IFS
IFS=:
set -f
for d in $PATH; do
  d=${d:-.}
  if [ -z "$s" ] && [ -f "$d/setsid" ] && [ -x "$d/setsid" ]; then s=$d/setsid; fi
  if [ -z "$y" ] && [ -f "$d/timeout" ] && [ -x "$d/timeout" ]; then y=$d/timeout; fi
done
set +f
IFS=$o
case $s$y in *[!A-Za-z0-9_./-]*) s=${s:+setsid} y=${y:+timeout} ;; esac
X=$s
u=
if [ -n "$s" ] && [ -n "$y" ] && read -r u _ < /proc/uptime; then
  X="$s $y -s KILL @T@"
fi 2>/dev/null
run() {
  (
@LAUNCH@) < @SOURCE@ 2>&3 3>&- &
  c=$!
  printf %s "$c" > "$D/pgid"
  w=
  if [ -z "$u" ]; then
    (
      sleep @T@ & s=$!
      trap 'kill "$s" 2>/dev/null; exit 0' TERM
      wait "$s"
      : > "$D/t"
      kill -KILL "-$c" 2>/dev/null || kill -KILL "$c" 2>/dev/null
    ) < /dev/null > /dev/null 2>&1 3>&- &
    w=$!
  fi
  wait "$c"
  rc=$?
  t=0
  if [ -n "$w" ]; then
    kill "$w" 2>/dev/null
    wait "$w" 2>/dev/null
    if [ -e "$D/t" ]; then t=1; fi
  elif [ "$rc" -eq 137 ] || [ "$rc" -eq 124 ]; then
    read -r v _ < /proc/uptime
    if [ $((${v%.*}${v#*.} - ${u%.*}${u#*.})) -ge @TCS@ ]; then t=1; fi
  fi
  kill -KILL "-$c" 2>/dev/null
  printf '%s %s\\n' "$rc" "$t" > "$K/rc"
}
{ run 3>&1 >&4 4>&- | head -c @CAP@ > "$K/se" 4>&-; } 4>&1 | head -c @CAP@ > "$K/so"
: > "$K/done"
@EMIT@
"""

# Answers the result kept in $K (both streams, the exit code, the timeout); also run by
# a resent request, in the daemon's shell: plain POSIX syntax.
_EXEC_EMIT = (
    'read -r r t < "$K/rc" && { printf \'\\n%s\\n\' "$M"; base64 < "$K/so"; '
    'printf \'%s\\n\' "$M"; base64 < "$K/se"; printf \'%s %s %s\\n\' "$M" "$r" "$t"; }'
)

# What a resent request runs when the key is taken: wait for the first one's result.
_EXEC_AGAIN = (
    'rmdir "$D" 2>/dev/null; i=0; while [ ! -f "$K/done" ] && [ "$i" -lt @TRIES@ ]; do '
    'sleep 0.1; i=$((i + 1)); done; if [ -f "$K/done" ]; then ' + _EXEC_EMIT + "; fi"
)

# The directory that holds the runs' keys: the user's cache directory, else /tmp.
_KEYS = (
    'C="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sandstorm-runs"; '
    '[ -d "$C" ] || mkdir -p "$C" 2>/dev/null || { C=/tmp/.sandstorm-runs; mkdir -p "$C"; }; '
    '[ -f "$C/.gitignore" ] || { printf \'*\\n\' > "$C/.gitignore"; } 2>/dev/null'
)


@dataclass(frozen=True)
class ExecOutcome:
    """What a one-request run's reply says: both streams, the exit code, the timeout."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool


def exec_marker(token: str) -> str:
    """The line that frames a one-request run's result (unique per run)."""
    return f"@@sandstorm-result-{token}"


_MAIN = 'if __name__ == "__main__":'


def _python_wrapper() -> str:
    """The source of ``_pyexec`` as sent: no docstring, comments or blank lines, one
    space per indentation level (it holds no ``#`` in a string, nor a multi-line one),
    and without its closing ``if __name__ == "__main__":`` (:data:`PYTHON_LOADER` runs
    what it would)."""
    text = (resources.files(__package__) / "_pyexec.py").read_text(encoding="utf-8")
    lines = []
    for line in text.split('"""', 2)[2].splitlines():
        code = line.split("  # ", 1)[0].rstrip()
        stripped = code.lstrip()
        if code == _MAIN:
            break
        if stripped and not stripped.startswith("#"):
            lines.append(" " * ((len(code) - len(stripped)) // 4) + stripped)
    return "\n".join(lines) + "\n"


PYTHON_WRAPPER = _python_wrapper()
"""The one-program wrapper of Python runs (``_pyexec``): one ``python3``, no shell tools."""

PYTHON_WRAPPER_KEY = hashlib.sha256(PYTHON_WRAPPER.encode()).hexdigest()[:16]
"""Names the wrapper's compiled form in the sandbox's cache (another wrapper, another name)."""

PYTHON_LOADER = """\
import sys
def _load(source, key):
 import os, marshal
 env = os.environ
 cache = env.get("XDG_CACHE_HOME") or (env.get("HOME") or "/tmp") + "/.cache"
 path = "%s/sandstorm-runs/pyexec-%s.%s" % (cache, key, sys.implementation.cache_tag)
 try:
  with open(path, "rb") as f:
   return marshal.loads(f.read())
 except Exception:
  pass
 code = compile(source, "<string>", "exec", dont_inherit=True)
 try:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  part = "%s.%d" % (path, os.getpid())
  with open(part, "wb") as f:
   f.write(marshal.dumps(code))
  os.rename(part, path)
 except Exception:
  pass
 return code
exec(_load(sys.argv.pop(1), sys.argv.pop(1)))
del _load
if len(sys.argv) > 1:
 _child(*_main())
"""
"""What ``python3 -u -c`` runs: :data:`PYTHON_WRAPPER` (its first argument) compiled once
per sandbox and interpreter (kept in the run keys' directory, where a missing or
unreadable copy means compiling again: ~2 ms a run saved), defined in the program's own
namespace, then its ``_child(*_main())`` from the program's top frame, as the wrapper
itself would (so the code still sees two frames below its own). Given no run's
arguments, it only compiles and keeps the wrapper (:data:`WARM_UP`)."""

WARM_UP = (
    f"if command -v python3 >/dev/null 2>&1; then exec python3 -c {shlex.quote(PYTHON_LOADER)} "
    f"{shlex.quote(PYTHON_WRAPPER)} {PYTHON_WRAPPER_KEY}; fi"
)
"""A command that readies a new sandbox for Python runs (a warm pool's, off any run's
path): the wrapper compiled and kept, the run keys' directory made."""


def _inline(data: bytes) -> tuple[str, str]:
    """A payload as a command-line word: ``t`` and the text when it is NUL-free UTF-8
    (the shell passes it as is), else ``b`` and its base64."""
    if b"\0" not in data:
        try:
            return "t", data.decode()
        except UnicodeDecodeError:
            pass
    return "b", _b64(data)


def _from_variable(mode: str, variable: str, target: str) -> str:
    """A shell step that writes the payload in ``$variable`` (see :func:`_inline`) to
    ``target`` (``printf`` is a builtin: no process for text)."""
    if mode == "t":
        return f'printf %s "${variable}" > {target}'
    return f'printf %s "${variable}" | base64 -d > {target}'


def build_exec(
    token: str,
    language: str,
    code: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    max_output: int,
    timeout: float,
    done: Sequence[str] = (),
) -> RunScript:
    """A ``/process/execute`` command that runs ``code`` and answers its framed result.

    One request: the wrapper captures stdout and stderr apart (each cut after
    ``max_output + 1`` bytes), kills the code's process group at ``timeout`` seconds
    (keeping the partial output), and prints both streams and the exit code framed by
    :func:`exec_marker`; :func:`parse_exec` reads them back. Sending the same command
    again is safe: it answers the first run's result (see ``_EXEC_BODY``); ``done``
    names earlier runs (tokens) whose kept results can go.

    Python runs in one program where the daemon's shell finds ``python3``:
    :data:`PYTHON_WRAPPER` (``_pyexec``), the same protocol without shell tools; else,
    and for the other languages, in the shell wrapper (``_EXEC_BODY``).
    """
    filename, launch = _launch(language, env, "$X ")
    code_bytes = code.encode()
    uploads: dict[str, bytes] = {}
    staging = upload_dir(token)
    # The payloads travel once, in shell variables ($P the code, $I the stdin) that both
    # wrappers read (or, when large, as uploaded files).
    if (len(code_bytes) + len(stdin or b"")) * 4 // 3 > INLINE_LIMIT:
        uploads[f"{staging}/{filename}"] = code_bytes
        if stdin is not None:
            uploads[f"{staging}/stdin"] = stdin
        steps = [f'mv -f {staging}/* "$D"/ && rmdir {staging}']
        code_word = ("u", "")
        stdin_word = ("u", "") if stdin is not None else ("n", "")
    else:
        code_word = _inline(code_bytes)
        steps = [_from_variable(code_word[0], "P", f'"$D/{filename}"')]
        stdin_word = ("n", "")
        if stdin is not None:
            stdin_word = _inline(stdin)
            steps.append(_from_variable(stdin_word[0], "I", '"$D/stdin"'))
    source = '"$D/stdin"' if stdin is not None else "/dev/null"
    tokens = [t for t in done if _TOKEN.match(t)]
    body = (
        _EXEC_BODY.replace("@DONE@", " ".join(f'"$C"/{t} {run_dir(t)}' for t in tokens))
        .replace("@KEEP@", str(KEEP_MINUTES))
        .replace("@CAP@", str(max_output + 1))
        .replace("@SOURCE@", source)
        # at least 1 ms: `timeout 0` would never kill the code
        .replace("@T@", f"{max(timeout, 0.001):.3f}")
        .replace("@TCS@", str(max(0, round(timeout * 100) - 1)))
        .replace("@LAUNCH@", launch)
        .replace("@EMIT@", _EXEC_EMIT)
    )
    steps.append(_write(body.encode(), '"$D/w.sh"', literal=True))
    # sh (dash) runs it: the daemon's shell itself when it is sh, else a new one (cheaper
    # than zsh or bash running it, which fork heavier processes).
    steps.append(
        'if [ -n "${ZSH_VERSION-}${BASH_VERSION-}" ]; then exec sh "$D/w.sh" "$C" "$K" "$D" "$M"; '
        'fi; . "$D/w.sh"'
    )
    tries = int(timeout * 10) + 600
    again = _EXEC_AGAIN.replace("@TRIES@", str(tries))
    # The command is written to the daemon's shell (zsh, bash or sh): plain POSIX syntax.
    # Creating the key claims the run (see _EXEC_BODY); a resend also creates $D when the
    # first run's is gone, and removes it again.
    variables = f"P={shlex.quote(code_word[1])}; I={shlex.quote(stdin_word[1])}; "
    command = (
        f'({_KEYS}; K="$C"/{token}; D={shlex.quote(run_dir(token))}; '
        f"M={shlex.quote(exec_marker(token))}; "
        'if mkdir "$K" "$D" 2>/dev/null; then ' + "; ".join(steps) + f"; else {again}; fi)"
    )
    if language == "python":
        words = [
            token,
            exec_marker(token),
            run_dir(token),
            staging,
            f"{max(timeout, 0.001):.3f}",
            str(max_output + 1),
            str(KEEP_MINUTES),
            str(tries),
            " ".join(tokens),
        ]
        # the env in the wrapper's environment: a command line is readable by anyone
        named = " ".join(f"{name}={_b64(value.encode())}" for name, value in env.items())
        python = (
            f"SANDSTORM_RUN_ENV={shlex.quote(named)} exec python3 -u -c "
            f"{shlex.quote(PYTHON_LOADER)} {shlex.quote(PYTHON_WRAPPER)} {PYTHON_WRAPPER_KEY} "
            f"{' '.join(shlex.quote(w) for w in words)} "
            f'{code_word[0]} "$P" {stdin_word[0]} "$I"'
        )
        command = f"if command -v python3 >/dev/null 2>&1; then {python}; fi; {command}"
    return RunScript(command=variables + command, uploads=uploads)


def parse_exec(token: str, result: str) -> ExecOutcome | None:
    """The outcome framed in a one-request run's reply, or None if there is none."""
    marker = re.escape(exec_marker(token))
    b64 = r"([A-Za-z0-9+/=\s]*?)"
    pattern = rf"{marker}\n{b64}{marker}\n{b64}{marker} (-?\d+) ([01])"
    matches = list(re.finditer(pattern, result))
    if not matches:
        return None
    found = matches[-1]  # the wrapper's own frame comes last
    streams = []
    for group in (1, 2):
        raw = base64.b64decode("".join(found.group(group).split()))
        streams.append(raw.decode("utf-8", errors="replace"))
    return ExecOutcome(streams[0], streams[1], int(found.group(3)), found.group(4) == "1")


def kill_command(token: str, *, keyed: bool = False) -> str:
    """A command line that kills the run's whole process group and removes its files
    (with ``keyed``, also a one-request run's key directory: it will never be asked for)."""
    directory = shlex.quote(run_dir(token))
    prefix = key = ""
    if keyed and _TOKEN.match(token):
        # A one-request run's wrapper writes to its directories once the code is killed:
        # moved aside first, they are gone for the wrapper (and whole for rm).
        prefix = (
            f'{_KEYS}; mv -f "$C"/{token} "$C"/{token}.gone 2>/dev/null; '
            f"mv -f {directory} {directory}.gone 2>/dev/null; "
        )
        directory = f"{directory}.gone"
        key = f' "$C"/{token}.gone'
    return (
        f'{prefix}p=$(cat {directory}/pgid 2>/dev/null); if [ -n "$p" ]; then '
        'kill -KILL "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; fi; '
        f"rm -rf {directory} {upload_dir(token)}{key}; true"
    )
