"""The Sandstorm conformance kit: contract test classes any provider runs in its own CI.

Subclass each contract class in your adapter's tests and supply the provider::

    import pytest
    import sandstorm_testkit as kit

    class AcmeFixtures:
        @pytest.fixture
        def provider_factory(self):
            return lambda: AcmeProvider.from_config(api_key="...")

    class TestRun(AcmeFixtures, kit.ProviderContract):
        expected_failures = {"test_killed_by_signal": "Acme reports signals as exit 137"}

    class TestFiles(AcmeFixtures, kit.FilesContract):
        pass

Keep one test class per contract class (their capability marks apply class-wide), or run
the whole contract by name: ``pytest --sandstorm-provider=acme``.
"""

from __future__ import annotations

from ._agents import InterpreterContract, PortContract, ProcessContract
from ._arguments import ArgumentContract
from ._base import LABEL, AsyncContract, SyncContract, WorkspaceFactory
from ._capabilities import CapabilityContract
from ._cleanup import CleanupContract
from ._errors import ErrorContract
from ._extras import CostContract, ResourceLimitsContract, StreamingContract, TemplateContract
from ._files import FilesContract
from ._git import GitContract, GitRepo, make_git_repo
from ._hypothesis import EXPLORE_PROFILE, LIVE_PROFILE, OFFLINE_PROFILE
from ._marks import ContractRoot
from ._metrics import MetricsContract
from ._network import Endpoint, NetworkContract, serve_endpoint
from ._properties import FilesystemMachine, PropertyContract, StatefulFilesContract
from ._run import HELLO_WORLD, ProviderContract, TimeoutContract
from ._semantics import SemanticsContract, SyncSemanticsContract
from ._settings import KitSettings
from ._snapshots import SnapshotContract
from ._sync import SyncFacadeContract
from ._workspaces import WorkspaceContract

__all__ = [
    "ALL_CONTRACTS",
    "HELLO_WORLD",
    "LABEL",
    "LIVE_PROFILE",
    "EXPLORE_PROFILE",
    "OFFLINE_PROFILE",
    "ArgumentContract",
    "AsyncContract",
    "CapabilityContract",
    "CleanupContract",
    "ContractRoot",
    "CostContract",
    "Endpoint",
    "ErrorContract",
    "FilesContract",
    "FilesystemMachine",
    "GitContract",
    "GitRepo",
    "InterpreterContract",
    "KitSettings",
    "MetricsContract",
    "NetworkContract",
    "PortContract",
    "ProcessContract",
    "PropertyContract",
    "ProviderContract",
    "ResourceLimitsContract",
    "SemanticsContract",
    "SnapshotContract",
    "StatefulFilesContract",
    "StreamingContract",
    "SyncContract",
    "SyncFacadeContract",
    "SyncSemanticsContract",
    "TemplateContract",
    "TimeoutContract",
    "WorkspaceContract",
    "WorkspaceFactory",
    "make_git_repo",
    "serve_endpoint",
]

ALL_CONTRACTS: tuple[type[ContractRoot], ...] = (
    ProviderContract,
    TimeoutContract,
    WorkspaceContract,
    FilesContract,
    GitContract,
    SnapshotContract,
    MetricsContract,
    NetworkContract,
    CostContract,
    StreamingContract,
    TemplateContract,
    ResourceLimitsContract,
    InterpreterContract,
    ProcessContract,
    PortContract,
    ErrorContract,
    ArgumentContract,
    CapabilityContract,
    PropertyContract,
    StatefulFilesContract,
    SyncFacadeContract,
    SemanticsContract,
    SyncSemanticsContract,
    CleanupContract,
)
"""Every contract class, in the order to run them (cleanup last); subclass each separately."""
