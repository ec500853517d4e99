"""The whole contract as concrete test classes.

Collected by ``pytest --sandstorm-provider=NAME`` (with no test paths), or explicitly with
``pytest --pyargs sandstorm_testkit.suite --sandstorm-provider=NAME``.
"""

from __future__ import annotations

from sandstorm_testkit import (
    ArgumentContract,
    CapabilityContract,
    CleanupContract,
    CostContract,
    ErrorContract,
    FilesContract,
    GitContract,
    InterpreterContract,
    MetricsContract,
    NetworkContract,
    PortContract,
    ProcessContract,
    PropertyContract,
    ProviderContract,
    ResourceLimitsContract,
    SemanticsContract,
    SnapshotContract,
    StatefulFilesContract,
    StreamingContract,
    SyncFacadeContract,
    SyncSemanticsContract,
    TemplateContract,
    TimeoutContract,
    WorkspaceContract,
)


class TestProvider(ProviderContract):
    pass


class TestArguments(ArgumentContract):
    pass


class TestSemantics(SemanticsContract):
    pass


class TestSyncSemantics(SyncSemanticsContract):
    pass


class TestTimeouts(TimeoutContract):
    pass


class TestWorkspaces(WorkspaceContract):
    pass


class TestFiles(FilesContract):
    pass


class TestGit(GitContract):
    pass


class TestSnapshots(SnapshotContract):
    pass


class TestMetrics(MetricsContract):
    pass


class TestNetwork(NetworkContract):
    pass


class TestCost(CostContract):
    pass


class TestStreaming(StreamingContract):
    pass


class TestTemplates(TemplateContract):
    pass


class TestResourceLimits(ResourceLimitsContract):
    pass


class TestInterpreter(InterpreterContract):
    pass


class TestProcesses(ProcessContract):
    pass


class TestPorts(PortContract):
    pass


class TestErrors(ErrorContract):
    pass


class TestCapabilities(CapabilityContract):
    pass


class TestProperties(PropertyContract):
    pass


class TestStatefulFiles(StatefulFilesContract):
    pass


class TestSyncFacade(SyncFacadeContract):
    pass


class TestCleanup(CleanupContract):
    """Last: checks that the tests above left nothing behind."""
