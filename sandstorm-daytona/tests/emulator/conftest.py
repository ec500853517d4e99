"""Fixtures: a real emulator on a free loopback port (uvicorn in a thread), and clients.

One emulator serves the whole session (two organisations, a manual clock, exchange
recording for OpenAPI validation); tests that need special settings (rate limits,
faults, quotas, transition delays) start their own with ``running_emulator``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandstorm_daytona.emulator import (
    EmulatorConfig,
    ManualClock,
    RunningEmulator,
    running_emulator,
)

KEY_A = "test-key-org-a"
KEY_B = "test-key-org-b"


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    """The session emulator's clock; tests advance it to fire lifecycle rules."""
    return ManualClock()


@pytest.fixture(scope="session")
def emu(clock: ManualClock) -> Iterator[RunningEmulator]:
    """The shared emulator: org-a (KEY_A) and org-b (KEY_B)."""
    config = EmulatorConfig(
        api_keys={KEY_A: "org-a", KEY_B: "org-b"}, record_exchanges=True, reaper_interval=0.2
    )
    with running_emulator(config, clock=clock) as running:
        yield running
    root = running.emulator._root
    assert root is None or not root.exists(), "the emulator left its state directory behind"


def _client(emu: RunningEmulator, key: str):  # type: ignore[no-untyped-def]
    from daytona import Daytona, DaytonaConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return Daytona(DaytonaConfig(api_key=key, api_url=emu.api_url, target="us"))


@pytest.fixture(scope="session")
def daytona(emu: RunningEmulator):  # type: ignore[no-untyped-def]
    """The official sync SDK client for org-a."""
    return _client(emu, KEY_A)


@pytest.fixture(scope="session")
def daytona_b(emu: RunningEmulator):  # type: ignore[no-untyped-def]
    """The official sync SDK client for org-b."""
    return _client(emu, KEY_B)


@pytest.fixture
def sandbox(daytona):  # type: ignore[no-untyped-def]
    """A fresh started sandbox of org-a, deleted afterwards."""
    created = daytona.create()
    yield created
    with contextlib.suppress(Exception):  # already deleted by the test
        daytona.delete(created)


@pytest.fixture(scope="session")
def bare_repo() -> Iterator[Path]:
    """A local bare git repository with two commits on ``main`` and a ``feature`` branch.

    Kept outside pytest's numbered temp dirs: other pytest sessions on the machine rotate
    those away, possibly while this session still needs the repository.
    """
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = Path(tempfile.mkdtemp(prefix="emulator-git-"))
    base.chmod(0o755)
    try:
        yield _make_bare_repo(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _make_bare_repo(base: Path) -> Path:
    work = base / "work"
    bare = base / "origin.git"
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(base),
        "PATH": "/usr/bin:/bin",
    }

    def git(*args: str, cwd: Path = work) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    work.mkdir()
    git("init", "-q", "-b", "main")
    (work / "README.md").write_text("hello from the bare repo\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (work / "data.txt").write_text("second\n")
    git("add", ".")
    git("commit", "-q", "-m", "second")
    git("branch", "feature")
    git("clone", "-q", "--bare", str(work), str(bare), cwd=base)
    for path in [bare, *bare.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return bare


README = b"hello from the bare repo\n"


def engine_clones_host_paths(emu: RunningEmulator) -> bool:
    """True when the engine clones on the host (its GIT capability) and the emulator lets
    it read host paths (``git_clone_host_paths``), so a host bare repo is reachable;
    otherwise the sandbox clones by itself and sees only its own files."""
    from sandstorm import Capability

    return Capability.GIT in emu.emulator.provider.capabilities and bool(
        emu.config.git_clone_host_paths
    )


def repo_url(emu: RunningEmulator, sandbox, bare_repo: Path) -> str:  # type: ignore[no-untyped-def]
    """A clonable URL: the host bare repo, or an equivalent one made inside the sandbox."""
    if engine_clones_host_paths(emu):
        return str(bare_repo)
    script = (
        "set -e; rm -rf .src && mkdir .src && cd .src && git init -q -b main && "
        "printf 'hello from the bare repo\\n' > README.md && printf 'second\\n' > data.txt && "
        "git add . && git -c user.name=T -c user.email=t@example.com commit -qm first && "
        "git branch feature && pwd"
    )
    result = sandbox.process.exec(script)
    assert result.exit_code == 0, result.result
    return str(result.result.strip().splitlines()[-1])
