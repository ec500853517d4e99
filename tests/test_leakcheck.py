"""tests/leakcheck.py fails a run that leaves its processes running, and kills them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LEAKCHECK = Path(__file__).resolve().with_name("leakcheck.py")

CONFTEST = f"""
import importlib.util

spec = importlib.util.spec_from_file_location("leakcheck_under_test", {str(LEAKCHECK)!r})
leakcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(leakcheck)


def pytest_configure(config):
    config.pluginmanager.register(leakcheck, "leakcheck-under-test")
"""

TESTS = """
import os, signal, subprocess, sys

SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def test_clean():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_leaks(tmp_path):
    daemon = subprocess.Popen(SLEEP, start_new_session=True)  # inherits the run's marker
    clean = subprocess.Popen(SLEEP, env={}, cwd=tmp_path)  # found by its directory
    stopped = subprocess.Popen(SLEEP)
    os.kill(stopped.pid, signal.SIGSTOP)
    with open(os.environ["PIDS"], "w") as f:
        f.write(" ".join(str(p.pid) for p in (daemon, clean, stopped)))
"""


def _run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SANDSTORM_TEST_RUN"}
    env |= {"SANDSTORM_LEAK_GRACE": "0.3", "PIDS": str(directory / "pids")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugin under test: fast
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         f"--basetemp={directory / 'tmp'}", "-q", *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def test_a_leaking_run_fails_and_its_processes_are_killed(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_it.py").write_text(TESTS)
    clean = _run(tmp_path, "-k", "clean")
    assert clean.returncode == 0, clean.stdout
    assert "leaked processes" not in clean.stdout

    leaky = _run(tmp_path)
    assert leaky.returncode == 1, leaky.stdout
    assert "2 passed" in leaky.stdout
    assert "3 process(es) started by this test run were still running" in leaky.stdout
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    for pid in pids:
        assert f"pid {pid} " in leaky.stdout
    assert f"pid {pids[2]} [T]" in leaky.stdout  # the stopped one, killed all the same
    assert not [pid for pid in pids if _alive(pid)]
