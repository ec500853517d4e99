"""A pytest plugin that fails the test run which leaves a process of its own running.

The project's rule: clean up every process a test starts; a leak is a bug. The run that
loads this plugin first (not an xdist worker, not a nested run) puts a random marker in
its environment, ``SANDSTORM_TEST_RUN``, before any test (or xdist worker) starts, so the
processes of the run inherit it. Processes started with a clean environment (the
adapters' runs, providers under test) are found by their working directory instead: inside
the run's ``--basetemp``, in this mount namespace (sandboxes have their own; the local
provider's tests check those). Other runs on the machine carry other markers and other
base directories, so they are never suspects.

When the session ends (after xdist has stopped its workers), suspects get a short grace
(``SANDSTORM_LEAK_GRACE`` seconds, 5 by default) to exit; those left are listed, killed
with SIGKILL (which also ends stopped processes) and the run fails.
``SANDSTORM_LEAK_CHECK=warn`` only reports, ``off`` disables the check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Generator
from pathlib import Path

import pytest

__all__ = ["MARKER", "leftovers"]

MARKER = "SANDSTORM_TEST_RUN"
"""The environment variable that marks the processes of one test run."""

_OWNED: pytest.StashKey[str] = pytest.StashKey()


def _ancestors() -> set[int]:
    found, pid = set(), os.getpid()
    while pid > 0 and pid not in found:
        found.add(pid)
        info = _stat(pid)
        pid = info[1] if info is not None else 0
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)``, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def _inside(pid: int, base: str, mnt: str) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        same_ns = os.readlink(f"/proc/{pid}/ns/mnt") == mnt
    except OSError:
        return False
    return same_ns and (cwd == base or cwd.startswith(base + "/"))


def leftovers(marker: str, base: str | None) -> dict[int, str]:
    """Live processes (not this one, nor its ancestors) of the run: ``pid -> description``."""
    needle = f"\0{MARKER}={marker}\0".encode()
    mnt = os.readlink("/proc/self/ns/mnt")
    skip = _ancestors()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        pid = int(entry.name)
        info = _stat(pid)
        if info is None or info[0] in "ZX":
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ or (base is not None and _inside(pid, base, mnt)):
            args = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found[pid] = f"pid {pid} [{info[0]}] {args[:200]}"
    return found


def pytest_configure(config: pytest.Config) -> None:
    mode = os.environ.get("SANDSTORM_LEAK_CHECK", "fail")
    if mode == "off" or MARKER in os.environ or hasattr(config, "workerinput"):
        return  # nested runs and xdist workers belong to the run that set the marker
    os.environ[MARKER] = config.stash[_OWNED] = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get(MARKER) == config.stash.get(_OWNED, None):
        del os.environ[MARKER]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    yield  # every other plugin first: xdist stops its workers there
    marker = session.config.stash.get(_OWNED, None)
    if marker is None:
        return
    factory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    base = factory._basetemp or factory._given_basetemp
    base = os.path.realpath(base) if base is not None else None
    deadline = time.monotonic() + float(os.environ.get("SANDSTORM_LEAK_GRACE", "5"))
    while (left := leftovers(marker, base)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not left:
        return
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # only succeeds for our own children
    lines = [
        f"{len(left)} process(es) started by this test run were still running at its end "
        "(killed now). A leak is a bug: find the test that started them and make it clean up.",
        *left.values(),
    ]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.line("")  # end the progress line
        reporter.write_sep("!", "leaked processes", red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    if os.environ.get("SANDSTORM_LEAK_CHECK", "fail") != "warn" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
