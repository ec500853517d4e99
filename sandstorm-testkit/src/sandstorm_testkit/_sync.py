"""The blocking facade: the same provider through :class:`sandstorm.SyncProvider`."""

from __future__ import annotations

import pytest

from sandstorm import (
    Capability,
    ExecutionTimeout,
    SyncProvider,
    WorkspaceNotFound,
)

from ._base import LABEL, SyncContract
from ._helpers import show

__all__ = ["SyncFacadeContract"]


class SyncFacadeContract(SyncContract):
    """A few end-to-end checks through the blocking API (it drives the async one)."""

    def test_sync_run(self, sync_provider: SyncProvider) -> None:
        result = sync_provider.run("import sys; print('out'); print('err', file=sys.stderr)")
        assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0), show(
            result
        )
        assert result.provider == sync_provider.name

    def test_sync_timeout(self, sync_provider: SyncProvider) -> None:
        with pytest.raises(ExecutionTimeout):
            sync_provider.run("import time; print('x', flush=True); time.sleep(30)", timeout=1)

    def test_sync_workspace_lifecycle(
        self, sync_provider: SyncProvider, sandstorm_run_id: str
    ) -> None:
        persistent = Capability.PERSISTENCE in sync_provider.capabilities
        workspace = sync_provider.create_workspace(
            persistent=persistent, labels={LABEL: sandstorm_run_id}
        )
        try:
            assert sync_provider.get_workspace(workspace.id).id == workspace.id
            result = sync_provider.run_in_workspace(workspace, "print(6 * 7)")
            assert result.stdout == "42\n", show(result)
        finally:
            sync_provider.delete_workspace(workspace)
        with pytest.raises(WorkspaceNotFound):
            sync_provider.get_workspace(workspace.id)

    @pytest.mark.requires(Capability.FILES)
    def test_sync_files(self, sync_provider: SyncProvider, sandstorm_run_id: str) -> None:
        workspace = sync_provider.create_workspace(
            persistent=Capability.PERSISTENCE in sync_provider.capabilities,
            labels={LABEL: sandstorm_run_id},
        )
        try:
            sync_provider.write_file(workspace, "s.bin", bytes(range(256)))
            assert sync_provider.read_file(workspace, "s.bin") == bytes(range(256))
        finally:
            sync_provider.delete_workspace(workspace)
