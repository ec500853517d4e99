"""The ``sandstorm`` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SANDSTORM = [sys.executable, "-m", "sandstorm._cli"]


def cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, root: Path
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "SANDSTORM_LOCAL_ROOT": str(root), **(env or {})}
    return subprocess.run(
        [*SANDSTORM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_run_code_from_flag(state_root: Path) -> None:
    done = cli("run", "-c", "print(6*7)", root=state_root)
    assert (done.returncode, done.stdout) == (0, "42\n")


def test_run_file_picks_language_from_extension(tmp_path: Path, state_root: Path) -> None:
    script = tmp_path / "hello.js"
    script.write_text("console.log('from node'); process.exit(3)")
    done = cli("run", str(script), root=state_root)
    assert done.stdout == "from node\n"
    assert done.returncode == 3


def test_run_from_stdin_keeps_streams_apart(state_root: Path) -> None:
    done = cli("run", "-l", "shell", stdin="echo out; echo err >&2; exit 7", root=state_root)
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")


def test_run_json_output(state_root: Path) -> None:
    done = cli("run", "--json", "-c", "print('x')", root=state_root)
    result = json.loads(done.stdout)
    assert result["stdout"] == "x\n"
    assert result["provider"] == "local"


def test_timeout_exit_status(state_root: Path) -> None:
    done = cli(
        "run", "-t", "1", "-c", "print('started', flush=True)\nwhile True: pass", root=state_root
    )
    assert done.returncode == 124
    assert done.stdout == "started\n"
    assert "timed out" in done.stderr


def test_unknown_provider_is_a_clear_error(state_root: Path) -> None:
    done = cli("run", "-p", "nope", "-c", "1", root=state_root)
    assert done.returncode == 2
    assert "ProviderNotFound" in done.stderr
    assert "local" in done.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_providers_lists_local(as_json: bool, state_root: Path) -> None:
    done = cli("providers", *(["--json"] if as_json else []), root=state_root)
    assert done.returncode == 0, done.stderr
    if as_json:
        rows = {row["name"]: row for row in json.loads(done.stdout)}
        assert rows["local"]["available"] is True
        assert rows["local"]["package"] == "sandstorm-core"
        assert "persistence" in rows["local"]["capabilities"]
    else:
        header, *lines = done.stdout.splitlines()
        assert header.split()[:4] == ["NAME", "PACKAGE", "VERSION", "AVAILABLE"]
        local = next(line for line in lines if line.startswith("local "))
        assert "sandstorm-core" in local
        assert " yes " in local


def test_doctor_reports_isolation(state_root: Path) -> None:
    done = cli("doctor", root=state_root)
    assert done.returncode == 0, done.stderr
    assert "provider:     local" in done.stdout
    assert "available:    yes" in done.stdout
    assert "+ netns" in done.stdout
    assert "+ pidns" in done.stdout


def test_run_streams_output_while_the_code_runs(state_root: Path) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(4)\nprint('second')"
    environ = {**os.environ, "SANDSTORM_LOCAL_ROOT": str(state_root)}
    with subprocess.Popen(
        [*SANDSTORM, "run", "-c", code], stdout=subprocess.PIPE, text=True, env=environ
    ) as proc:
        assert proc.stdout is not None
        started = time.monotonic()
        assert proc.stdout.readline() == "first\n"
        assert time.monotonic() - started < 3.9, "the first line waited for the run to end"
        assert proc.stdout.read() == "second\n"
    assert proc.returncode == 0


def test_providers_explains_an_unconfigured_provider_briefly(state_root: Path) -> None:
    env = {"DAYTONA_API_KEY": "", "DAYTONA_API_URL": ""}
    done = cli("providers", env=env, root=state_root)
    line = next(line for line in done.stdout.splitlines() if line.startswith("daytona "))
    assert (
        "no (not configured: api_key is required (pass api_key=... or set DAYTONA_API_KEY))" in line
    )
    assert "known fields" not in line


def test_version(state_root: Path) -> None:
    import sandstorm

    done = cli("--version", root=state_root)
    assert (done.returncode, done.stdout.strip()) == (0, f"sandstorm {sandstorm.__version__}")


def test_provider_typo_suggests_the_name(state_root: Path) -> None:
    done = cli("run", "-p", "locl", "-c", "print(1)", root=state_root)
    assert done.returncode == 2
    assert "did you mean 'local'?" in done.stderr


def test_empty_provider_variable_is_an_error(state_root: Path) -> None:
    done = cli("run", "-c", "print(1)", env={"SANDSTORM_PROVIDER": ""}, root=state_root)
    assert done.returncode == 2
    assert "SANDSTORM_PROVIDER is set but empty" in done.stderr
    assert done.stdout == ""


def test_config_error_names_the_variable_and_only_missing_fields(state_root: Path) -> None:
    env = {"DAYTONA_API_KEY": "", "DAYTONA_API_URL": ""}
    done = cli("run", "-p", "daytona", "-c", "print(1)", env=env, root=state_root)
    assert done.returncode == 2
    assert "api_key is required (pass api_key=... or set DAYTONA_API_KEY)" in done.stderr
    assert "known fields" not in done.stderr
    assert "create_timeout" not in done.stderr


def test_unknown_extension_is_an_error(tmp_path: Path, state_root: Path) -> None:
    script = tmp_path / "notes.txt"
    script.write_text("print('would run as python')")
    done = cli("run", str(script), root=state_root)
    assert done.returncode == 2
    assert "--language" in done.stderr
    assert done.stdout == ""


def test_json_prints_json_only(state_root: Path) -> None:
    done = cli(
        "run",
        "--json",
        "-t",
        "1",
        "-c",
        "print('x', flush=True)\nwhile True: pass",
        root=state_root,
    )
    assert done.returncode == 124
    data = json.loads(done.stdout)
    assert (data["error"], data["stdout"]) == ("ExecutionTimeout", "x\n")
    bad = cli("run", "--json", "-p", "nope", "-c", "1", root=state_root)
    assert json.loads(bad.stdout)["error"] == "ProviderNotFound"


def test_doctor_positional_says_why_unavailable(state_root: Path) -> None:
    env = {"DAYTONA_API_KEY": "k", "DAYTONA_API_URL": "http://127.0.0.1:9/api"}
    done = cli("doctor", "daytona", env=env, root=state_root)
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if line.startswith("available:"))
    assert "no (" in line
    assert "NetworkError" in line


def test_ctrl_c_exits_130_after_cleaning_up(
    state_root: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    import signal

    environ = {**os.environ, "SANDSTORM_LOCAL_ROOT": str(state_root)}
    code = "import time\nprint('up')\ntime.sleep(60)"
    with subprocess.Popen(
        [*SANDSTORM, "run", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert leftovers(state_root) == []
