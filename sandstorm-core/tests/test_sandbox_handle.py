"""Workspace handles on the real local provider."""

from __future__ import annotations

import pytest

import sandstorm


def test_sync_handle_creates_runs_and_deletes(local: sandstorm.SyncProvider) -> None:
    with local.sandbox(name="handle") as box:
        box.run("open('state.txt', 'w').write('kept')")
        assert box.exec("cat state.txt").stdout == "kept"
        workspace_id = box.id
        assert local.get_workspace(workspace_id).name == "handle"
    with pytest.raises(sandstorm.WorkspaceNotFound):
        local.get_workspace(workspace_id)


def test_attach_does_not_delete(local: sandstorm.SyncProvider) -> None:
    workspace = local.create_workspace()
    with local.attach(workspace.id) as box:
        assert box.run("print('attached')").stdout == "attached\n"
    assert local.get_workspace(workspace.id).id == workspace.id
    local.delete_workspace(workspace)


@pytest.mark.anyio
async def test_async_handle_deletes_even_when_the_body_fails(
    alocal: sandstorm.AsyncProvider,
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with alocal.sandbox() as box:
            workspace_id = box.id
            result = await box.run("print('inside')")
            assert result.stdout == "inside\n"
            1 / 0  # noqa: B018
    assert await alocal.list_workspaces() == []
    with pytest.raises(sandstorm.WorkspaceNotFound):
        await alocal.get_workspace(workspace_id)
