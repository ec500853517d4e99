"""The run command line, executed by a real POSIX shell on this machine.

The daemon writes the command into a session shell; running it with ``sh -c`` here
checks the quoting, the separation of stdout and stderr, env, stdin, exit codes, and
that the whole process group dies (after the run, and on an explicit kill).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from sandstorm import ProviderConfigError
from sandstorm_daytona._command import INLINE_LIMIT, build_run, kill_command, run_dir


def run(
    language: str, code: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    script = build_run(uuid.uuid4().hex, language, code, env or {}, stdin)
    assert script.uploads == {}
    return subprocess.run(
        ["sh", "-c", script.command], capture_output=True, text=True, timeout=30, check=False
    )


def test_python_stdout_stderr_exit() -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"
    done = run("python", code)
    assert (done.stdout, done.stderr, done.returncode) == ("out\n", "err\n", 3)


def test_quotes_unicode_and_env() -> None:
    code = "import os\nprint(os.environ['A'], \"it's\", 'é ✓')"
    done = run("python", code, env={"A": 'x\'y "z" $HOME `id`'})
    assert done.stdout == "x'y \"z\" $HOME `id` it's é ✓\n"


def test_stdin_is_delivered_and_otherwise_empty() -> None:
    assert run("python", "import sys; print(sys.stdin.read()[::-1])", stdin=b"abc").stdout == (
        "cba\n"
    )
    assert run("python", "import sys; print(repr(sys.stdin.read()))").stdout == "''\n"


def test_shell_exit_does_not_escape_the_subshell() -> None:
    done = run("shell", "echo a; exit 7; echo b")
    assert (done.stdout, done.returncode) == ("a\n", 7)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript() -> None:
    done = run("javascript", "console.log(1 + 1); console.error('e'); process.exit(2)")
    assert (done.stdout, done.stderr, done.returncode) == ("2\n", "e\n", 2)


def test_bad_env_name_is_refused() -> None:
    with pytest.raises(ProviderConfigError, match="shell variable"):
        build_run("t", "python", "", {"1BAD": "x"}, None)


def test_large_payload_is_uploaded_instead_of_inlined() -> None:
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


def test_background_children_die_with_the_run() -> None:
    done = run("shell", "sleep 60 & echo $!")
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_kill_command_kills_the_whole_tree() -> None:
    token = uuid.uuid4().hex
    script = build_run(token, "shell", "sleep 60 & echo $!; sleep 60", {}, None)
    proc = subprocess.Popen(["sh", "-c", script.command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline().strip())
    subprocess.run(["sh", "-c", kill_command(token)], check=True, timeout=10)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert not os.path.exists(run_dir(token))


def test_output_is_capped_inside_the_sandbox() -> None:
    script = build_run(
        uuid.uuid4().hex,
        "python",
        "import sys\nsys.stdout.write('x' * 100000)",
        {},
        None,
        max_output=1000,
    )
    done = subprocess.run(
        ["sh", "-c", script.command], capture_output=True, timeout=30, check=False
    )
    assert done.stdout == b"x" * 1001  # one byte past the cap says "truncated"


def test_streams_are_not_held_back() -> None:
    script = build_run(uuid.uuid4().hex, "shell", "echo first; sleep 2; echo second", {}, None)
    proc = subprocess.Popen(["sh", "-c", script.command], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = time.monotonic()
    assert proc.stdout.readline() == b"first\n"
    assert time.monotonic() - started < 1.5
    assert proc.wait(timeout=10) == 0
