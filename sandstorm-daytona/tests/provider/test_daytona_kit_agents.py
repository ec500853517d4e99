"""The kit's interpreter, process and port contracts: ``daytona`` on the emulator."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sandstorm_testkit as kit
from sandstorm import AsyncProvider
from sandstorm_daytona import DaytonaConfig, DaytonaProvider, RetryPolicy

from .shells import require_shell

pytestmark = pytest.mark.slow


def _packages() -> list[str]:
    try:
        import matplotlib
    except ImportError:
        return []
    return [str(Path(matplotlib.__file__).parent.parent)]


@pytest.fixture(scope="module")
def agents_emulator(emulator_shell: str) -> Iterator[Any]:
    """An emulator whose engine shows matplotlib to the sandboxes (the chart test)."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    require_shell(emulator_shell)
    config = EmulatorConfig(
        provider_options={"python_path": _packages()},
        shell=emulator_shell,
        git_clone_host_paths=(tempfile.gettempdir(),),
    )
    with running_emulator(config) as emu:
        yield emu


class _OnEmulator:
    @pytest.fixture
    def provider_factory(self, agents_emulator: Any) -> Callable[[], AsyncProvider]:
        config = DaytonaConfig.load(
            {
                "api_key": agents_emulator.api_key,
                "api_url": agents_emulator.api_url,
                "retry": RetryPolicy(initial_backoff=0.05, max_backoff=0.5, deadline=10),
            },
            environ={},
        )
        return lambda: DaytonaProvider(config)


class TestInterpreter(_OnEmulator, kit.InterpreterContract):
    pass


class TestProcesses(_OnEmulator, kit.ProcessContract):
    pass


class TestPorts(_OnEmulator, kit.PortContract):
    PORT = 8767
