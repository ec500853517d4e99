"""Two applications sharing a state directory never see each other's workspaces."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandstorm


def test_namespaces_keep_applications_apart(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    with (
        sandstorm.get_provider("local", root=root, namespace="app-a") as a,
        sandstorm.get_provider("local", root=root, namespace="app-b") as b,
    ):
        mine = a.create_workspace(name="shared-name", labels={"k": "v"})
        theirs = b.create_workspace(name="shared-name")  # names are unique per namespace
        try:
            assert [ws.id for ws in a.list_workspaces()] == [mine.id]
            assert [ws.id for ws in b.list_workspaces()] == [theirs.id]
            assert mine.labels == {"k": "v"}, "the namespace label is internal"
            for call in (b.get_workspace, b.delete_workspace):
                with pytest.raises(sandstorm.WorkspaceNotFound):
                    call(mine.id)
            assert a.get_workspace("shared-name").id == mine.id
        finally:
            a.delete_workspace(mine)
            b.delete_workspace(theirs)


def test_default_namespace_is_one_per_state_dir(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    with sandstorm.get_provider("local", root=root) as first:
        workspace = first.create_workspace()
        try:
            with sandstorm.get_provider("local", root=root) as second:
                assert [ws.id for ws in second.list_workspaces()] == [workspace.id]
            with sandstorm.get_provider("local", root=root, namespace="other") as other:
                assert other.list_workspaces() == []
        finally:
            first.delete_workspace(workspace)
