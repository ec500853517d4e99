"""Fixtures for the local provider's tests: one provider per session, with a temp state root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local import LocalProvider


def _sweep(provider: sandstorm.SyncProvider) -> None:
    for workspace in provider.list_workspaces():
        provider.delete_workspace(workspace)


@pytest.fixture(scope="session")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's private state root for local providers."""
    return tmp_path_factory.mktemp("local-state")


@pytest.fixture(scope="session")
def session_local(local_root: Path) -> Iterator[sandstorm.SyncProvider]:
    """One blocking local provider (fork server started once) for the whole session."""
    with sandstorm.get_provider("local", root=str(local_root / "shared")) as provider:
        yield provider
        _sweep(provider)


@pytest.fixture
def lp(session_local: sandstorm.SyncProvider) -> Iterator[sandstorm.SyncProvider]:
    """The session provider; workspaces a test leaves behind are deleted after it."""
    before = {ws.id for ws in session_local.list_workspaces()}
    yield session_local
    for workspace in session_local.list_workspaces():
        if workspace.id not in before:
            session_local.delete_workspace(workspace)


@pytest.fixture
def local_impl(session_local: sandstorm.SyncProvider) -> LocalProvider:
    """The async LocalProvider behind the session's sync facade."""
    provider = session_local.async_provider
    assert isinstance(provider, LocalProvider)
    return provider


def sandbox_processes(token: str) -> list[int]:
    """Pids of live (non-zombie) host processes whose command line contains ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def gone(token: str, grace: float = 0.5) -> list[int]:
    """Pids still carrying ``token`` after ``grace`` seconds (killed processes need a moment)."""
    deadline = time.monotonic() + grace
    while (found := sandbox_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


@pytest.fixture
def no_leftovers() -> Iterator[str]:
    """A unique token; the test fails if any process carrying it survives the test."""
    token = f"sandstorm-leftover-{os.urandom(6).hex()}"
    yield token
    survivors = gone(token)
    for pid in survivors:
        os.kill(pid, 9)
    assert not survivors, f"processes outlived the run: {survivors}"


@pytest.fixture
def find_processes() -> object:
    """Survivors carrying a token, after a short grace period (see :func:`gone`)."""
    return gone


RootlessRun = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_rootless() -> Iterator[RootlessRun]:
    """Run a script (``{paths}``, ``{root}`` filled in) as uid 65534 with the system python.

    The script sees this checkout on ``sys.path`` and a private, writable state root.
    Skips where the host cannot (not root, no ``setpriv`` or system python, or that python
    cannot import this environment).
    """
    python = "/usr/bin/python3"
    if os.geteuid() != 0:
        pytest.skip("needs root to become an unprivileged user")
    if not os.access(python, os.X_OK) or shutil.which("setpriv") is None:
        pytest.skip("needs the system python3 and setpriv")
    src = str(Path(sandstorm.__file__).resolve().parents[1])
    site = [p for p in sys.path if p.endswith("site-packages")]
    base = Path(tempfile.mkdtemp(prefix="sandstorm-rootless-"))
    os.chmod(base, 0o777)

    def run(template: str, *env: str) -> subprocess.CompletedProcess[str]:
        script = base / "script.py"
        script.write_text(template.format(paths=[src, *site], root=str(base / "state")))
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "env", "-i", "PATH=/usr/bin:/bin", f"HOME={base}", *env, python, str(script)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
            pytest.skip(f"the system python cannot import the environment: {proc.stderr[-300:]}")
        return proc

    yield run
    shutil.rmtree(base, ignore_errors=True)
