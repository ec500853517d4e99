"""Fixtures for the Daytona provider tests."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

import httpx
import pytest

from sandstorm_daytona import DaytonaConfig, RetryPolicy

SECRET = "dtn_test_secret_key_0123456789"


@pytest.fixture
def secret() -> str:
    """An API key that must never show up anywhere."""
    return SECRET


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries that do not make the suite slow."""
    return RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.01, deadline=5)


@pytest.fixture
def config_for(fast_retry: RetryPolicy) -> Callable[..., DaytonaConfig]:
    """Build a config pointing at a loopback URL."""

    def make(api_url: str = "http://127.0.0.1:9/api", **values: object) -> DaytonaConfig:
        values.setdefault("retry", fast_retry)
        return DaytonaConfig.load({"api_key": SECRET, "api_url": api_url, **values}, environ={})

    return make


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the provider uses asyncio primitives)."""
    return "asyncio"


# ---------------------------------------------------------------------- the emulator

from collections.abc import AsyncIterator, Iterator  # noqa: E402

from sandstorm_daytona import DaytonaProvider  # noqa: E402

from .shells import DEFAULT_SHELL, require_shell  # noqa: E402


def live_sandboxes(emu: object) -> list[str]:
    """Ids of the sandboxes the emulator still holds (not destroyed)."""
    state = emu.emulator  # type: ignore[attr-defined]
    return [
        record.id
        for record in list(state.sandboxes.values())
        if record.state not in ("destroyed", "destroying")
    ]


@pytest.fixture(scope="module")
def emulator_shell(request: pytest.FixtureRequest) -> str:
    """The session shell of the module's emulator: the daemon's default (zsh) unless the
    module or class runs the shell matrix (``SHELL_MATRIX = SHELLS``)."""
    return getattr(request, "param", DEFAULT_SHELL)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``emulator_shell`` by the ``SHELL_MATRIX`` of the class or module."""
    if "emulator_shell" not in metafunc.fixturenames:
        return
    shells = getattr(metafunc.cls, "SHELL_MATRIX", None) or getattr(
        metafunc.module, "SHELL_MATRIX", None
    )
    if shells:
        metafunc.parametrize("emulator_shell", shells, indirect=True, scope="module")


@pytest.fixture(scope="module")
def emulator(emulator_shell: str) -> Iterator[object]:
    """A Daytona emulator on a real loopback socket, shared by a test module."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    require_shell(emulator_shell)
    # the e2e git tests clone a bare repository the test made on the host
    config = EmulatorConfig(shell=emulator_shell, git_clone_host_paths=(tempfile.gettempdir(),))
    with running_emulator(config) as emu:
        yield emu


@pytest.fixture
async def provider(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> AsyncIterator[DaytonaProvider]:
    """The provider against the emulator; afterwards the emulator must hold no sandbox."""
    config = config_for(emulator.api_url, api_key=emulator.api_key)  # type: ignore[attr-defined]
    async with DaytonaProvider(config) as daytona:
        yield daytona
    # closing waits for the deletes one-shot runs left running in the background
    leftovers = live_sandboxes(emulator)
    if leftovers:  # clean up, then fail the test that leaked
        async with DaytonaProvider(config) as cleaner:
            for workspace_id in leftovers:
                await cleaner._delete_workspace(workspace_id)
    assert leftovers == [], f"sandboxes leaked: {leftovers}"
