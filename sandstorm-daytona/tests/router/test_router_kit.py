"""The conformance kit against ``router`` over ``local`` + daytona-on-emulator.

The order function alternates the two members call by call, so the contract runs on both
through the router (workspace-scoped calls follow the workspace's pin, whatever the order).
The contracts chosen are those that exercise the routing and the delegation of every kind
of primitive; the interpreter, git, metrics, cost and argument contracts pass too (run them
by adding their classes) but are left out to keep the suite's time in bounds.
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


class _Routed:
    @pytest.fixture
    def provider_factory(self, kit_emulator: Any, local_root: Path) -> Callable[[], AsyncProvider]:
        config = RouterConfig.load(
            {
                "routes": [
                    daytona_route(kit_emulator),
                    {"provider": "local", "config": {"root": str(local_root)}},
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


class TestCleanup(_Routed, kit.CleanupContract):
    """Last: the tests above left nothing behind on either member."""
