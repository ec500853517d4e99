"""The run command line, executed by the real shells a daemon may pick on this machine.

The daemon writes the command into a session shell (zsh when installed, else bash, else
sh: daemon ``get_shell.go``); running it with ``zsh -c``, ``bash -c`` and ``dash -c`` here
checks the quoting, the framing of stdout and stderr, env, stdin, exit codes, and that the
whole process group dies (after the run, and on an explicit kill).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass

import pytest

from sandstorm import ProviderConfigError
from sandstorm_daytona._command import FRAME, INLINE_LIMIT, build_run, kill_command, run_dir
from sandstorm_daytona._stream import Unframe

from .shells import SHELLS, require_shell

pytestmark = pytest.mark.parametrize("shell", SHELLS)


@dataclass
class Done:
    stdout: str
    stderr: str
    returncode: int


def unframe(raw: bytes) -> str:
    stream = Unframe(FRAME)
    stream.feed(raw.decode())
    stream.close()
    return stream.text


def run(
    shell: str,
    language: str,
    code: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> Done:
    script = build_run(uuid.uuid4().hex, language, code, env or {}, stdin)
    assert script.uploads == {}
    done = subprocess.run(
        [require_shell(shell), "-c", script.command], capture_output=True, timeout=30, check=False
    )
    return Done(unframe(done.stdout), unframe(done.stderr), done.returncode)


def test_python_stdout_stderr_exit(shell: str) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"
    done = run(shell, "python", code)
    assert (done.stdout, done.stderr, done.returncode) == ("out\n", "err\n", 3)


def test_quotes_unicode_and_env(shell: str) -> None:
    code = "import os\nprint(os.environ['A'], \"it's\", 'é ✓')"
    done = run(shell, "python", code, env={"A": 'x\'y "z" $HOME `id`'})
    assert done.stdout == "x'y \"z\" $HOME `id` it's é ✓\n"


def test_stdin_is_delivered_and_otherwise_empty(shell: str) -> None:
    assert run(
        shell, "python", "import sys; print(sys.stdin.read()[::-1])", stdin=b"abc"
    ).stdout == ("cba\n")
    assert run(shell, "python", "import sys; print(repr(sys.stdin.read()))").stdout == "''\n"


def test_shell_exit_does_not_escape_the_subshell(shell: str) -> None:
    done = run(shell, "shell", "echo a; exit 7; echo b")
    assert (done.stdout, done.returncode) == ("a\n", 7)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript(shell: str) -> None:
    done = run(shell, "javascript", "console.log(1 + 1); console.error('e'); process.exit(2)")
    assert (done.stdout, done.stderr, done.returncode) == ("2\n", "e\n", 2)


def test_bad_env_name_is_refused(shell: str) -> None:
    with pytest.raises(ProviderConfigError, match="shell variable"):
        build_run("t", "python", "", {"1BAD": "x"}, None)


def test_large_payload_is_uploaded_instead_of_inlined(shell: str) -> None:
    token = uuid.uuid4().hex
    code = "x = 1\n" * (INLINE_LIMIT // 4)
    script = build_run(token, "python", code, {}, b"in")
    assert set(script.uploads) == {
        f".sandstorm-upload-{token}/main.py",
        f".sandstorm-upload-{token}/stdin",
    }
    assert len(script.command) < 4096


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def test_background_children_die_with_the_run(shell: str) -> None:
    done = run(shell, "shell", "sleep 60 & echo $!")
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_kill_command_kills_the_whole_tree(shell: str) -> None:
    token = uuid.uuid4().hex
    script = build_run(token, "shell", "sleep 60 & echo $!; sleep 60", {}, None)
    proc = subprocess.Popen([require_shell(shell), "-c", script.command], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(unframe(proc.stdout.readline()).strip())
    subprocess.run([require_shell(shell), "-c", kill_command(token)], check=True, timeout=10)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert not os.path.exists(run_dir(token))


def test_output_is_capped_inside_the_sandbox(shell: str) -> None:
    script = build_run(
        uuid.uuid4().hex,
        "python",
        "import sys\nsys.stdout.write('x' * 100000)",
        {},
        None,
        max_output=1000,
    )
    done = subprocess.run(
        [require_shell(shell), "-c", script.command], capture_output=True, timeout=30, check=False
    )
    assert unframe(done.stdout) == "x" * 1001  # one byte past the cap says "truncated"


def test_streams_are_not_held_back(shell: str) -> None:
    script = build_run(uuid.uuid4().hex, "shell", "echo first; sleep 2; echo second", {}, None)
    proc = subprocess.Popen([require_shell(shell), "-c", script.command], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = time.monotonic()
    assert unframe(proc.stdout.readline()) == "first\n"
    assert time.monotonic() - started < 1.5
    assert proc.wait(timeout=10) == 0


def test_exact_bytes_survive_the_daemons_line_relabelling(shell: str) -> None:
    """NUL bytes, a missing last newline, invalid UTF-8 and the daemon's own stream markers
    come back exact after the daemon's relabelling loop (``execute.go``) in this shell."""
    code = (
        "import sys\nsys.stdout.buffer.write(b'a\\x00b\\x01\\x01\\x01\\r\\nlast')\n"
        "sys.stderr.buffer.write(b'\\xff\\x02\\x02\\x02e')"
    )
    script = build_run(uuid.uuid4().hex, "python", code, {}, None)
    relabel = 'while IFS= read -r line || [ -n "$line" ]; do printf "%s\\n" "$line"; done'
    done = subprocess.run(
        [require_shell(shell), "-c", f"{{ {script.command}\n}} | {{ {relabel}; }}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert unframe(done.stdout) == "a\x00b\x01\x01\x01\r\nlast"
    assert unframe(done.stderr) == "\ufffd\x02\x02\x02e"
