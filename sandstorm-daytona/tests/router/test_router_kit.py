"""The conformance kit against ``router`` over ``local`` + daytona-on-emulator.

The order function alternates the two members call by call, so the contract runs on both
through the router (workspace-scoped calls follow the workspace's pin, whatever the order).
Every contract of the kit runs, as it does against each member alone.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

import sandstorm_testkit as kit
from sandstorm import AsyncProvider, Capability
from sandstorm.router import Call, RouterConfig, RouterProvider

from .conftest import daytona_route

pytestmark = pytest.mark.slow

_turns = itertools.count()


def alternate(members: Sequence[Any], call: Call) -> list[Any]:
    """Round robin between the members (templates go to the first member that has them)."""
    if Capability.TEMPLATES in call.capabilities or len(members) < 2:
        return list(members)
    shift = next(_turns) % len(members)
    return [*members[shift:], *members[:shift]]


@pytest.fixture(scope="module")
def kit_emulator() -> Iterator[Any]:
    """One emulator for the module, whose sandboxes may use the host network."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    config = EmulatorConfig(
        network="host",
        provider_options={"output_cap": 64 << 20},
        git_clone_host_paths=(tempfile.gettempdir(),),
    )
    with running_emulator(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def local_root() -> Iterator[Path]:
    """The local member's state directory."""
    with tempfile.TemporaryDirectory(prefix="sstk-router-") as root:
        yield Path(root)


def local_config(root: Path) -> dict[str, Any]:
    """The local member's settings: its own state dir, and matplotlib importable in its
    sandboxes when the test environment has it (the interpreter contract's chart test)."""
    settings: dict[str, Any] = {"root": str(root)}
    try:
        import matplotlib
    except ImportError:
        return settings
    settings["python_path"] = [str(Path(matplotlib.__file__).parent.parent)]
    return settings


class _Routed:
    @pytest.fixture
    def provider_factory(self, kit_emulator: Any, local_root: Path) -> Callable[[], AsyncProvider]:
        config = RouterConfig.load(
            {
                "routes": [
                    daytona_route(kit_emulator),
                    {"provider": "local", "config": local_config(local_root)},
                ],
                "order": alternate,
            },
            environ={},
        )
        return lambda: RouterProvider(config)


class TestProvider(_Routed, kit.ProviderContract):
    expected_failures: ClassVar[dict[str, str]] = (
        {"test_hello_world[typescript]": "ts-node is not installed on this machine"}
        if shutil.which("ts-node") is None
        else {}
    )


class TestWorkspaces(_Routed, kit.WorkspaceContract):
    pass


class TestFiles(_Routed, kit.FilesContract):
    pass


class TestSnapshots(_Routed, kit.SnapshotContract):
    pass


class TestStreaming(_Routed, kit.StreamingContract):
    pass


class TestTemplates(_Routed, kit.TemplateContract):
    pass


class TestErrors(_Routed, kit.ErrorContract):
    pass


class TestCapabilities(_Routed, kit.CapabilityContract):
    pass


class TestProcesses(_Routed, kit.ProcessContract):
    pass


class TestPorts(_Routed, kit.PortContract):
    pass


class TestSyncFacade(_Routed, kit.SyncFacadeContract):
    pass


class TestTimeout(_Routed, kit.TimeoutContract):
    pass


class TestSemantics(_Routed, kit.SemanticsContract):
    pass


class TestSync(_Routed, kit.SyncContract):
    pass


class TestSyncSemantics(_Routed, kit.SyncSemanticsContract):
    pass


class TestArgument(_Routed, kit.ArgumentContract):
    pass


class TestProperty(_Routed, kit.PropertyContract):
    pass


class TestStatefulFiles(_Routed, kit.StatefulFilesContract):
    pass


class _LocalFirst:
    """Routes by priority with ``local`` first: the memory limit and the network allow-list
    checks need a member that enforces them (the Daytona kit records the emulator's own
    expected failures there; the router passes each call to one member, unchanged)."""

    @pytest.fixture
    def provider_factory(self, kit_emulator: Any, local_root: Path) -> Callable[[], AsyncProvider]:
        config = RouterConfig.load(
            {
                "routes": [
                    {"provider": "local", "config": local_config(local_root)},
                    daytona_route(kit_emulator),
                ],
                "order": "priority",
            },
            environ={},
        )
        return lambda: RouterProvider(config)


class TestResourceLimits(_LocalFirst, kit.ResourceLimitsContract):
    pass


class TestNetwork(_LocalFirst, kit.NetworkContract):
    pass


class TestGit(_Routed, kit.GitContract):
    pass


class TestInterpreter(_Routed, kit.InterpreterContract):
    pass


class TestMetrics(_Routed, kit.MetricsContract):
    pass


class TestCost(_Routed, kit.CostContract):
    pass


class TestCleanup(_Routed, kit.CleanupContract):
    """Last: the tests above left nothing behind on either member."""
