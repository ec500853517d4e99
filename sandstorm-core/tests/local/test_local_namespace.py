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


def test_a_name_is_given_once_across_providers_on_one_root(tmp_path: Path) -> None:
    """Two providers (as two processes would) creating one name at once: one gets it,
    the other is refused, whatever the timing; the name is free again once deleted."""
    import asyncio

    root = str(tmp_path / "state")

    async def main() -> tuple[list[object], str, str]:
        first = sandstorm.get_async_provider("local", root=root)
        second = sandstorm.get_async_provider("local", root=root)
        async with first, second:
            outcomes = await asyncio.gather(
                *(p.create_workspace(name="only-one") for p in (first, second, first, second)),
                return_exceptions=True,
            )
            made = [o for o in outcomes if isinstance(o, sandstorm.Workspace)]
            found = (await second.get_workspace("only-one")).id
            await first.delete_workspace(made[0].id)
            again = await second.create_workspace(name="only-one")
            await second.delete_workspace(again.id)
            return outcomes, found, made[0].id

    outcomes, found, made = asyncio.run(main())
    assert sum(isinstance(o, sandstorm.Workspace) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, sandstorm.WorkspaceExists) for o in outcomes) == 3, outcomes
    assert found == made


def test_names_are_found_on_a_root_made_before_the_index(tmp_path: Path) -> None:
    """A root whose workspaces were named before the name index existed (or whose index
    was lost): names are indexed from the workspaces' records on first use."""
    import shutil

    root = tmp_path / "state"
    with sandstorm.get_provider("local", root=str(root)) as provider:
        named = provider.create_workspace(name="from-before")
        shutil.rmtree(root / "workspaces" / ".names")
    with sandstorm.get_provider("local", root=str(root)) as provider:
        try:
            assert provider.get_workspace("from-before").id == named.id
            with pytest.raises(sandstorm.WorkspaceExists):
                provider.create_workspace(name="from-before")
        finally:
            provider.delete_workspace(named)


def test_a_name_left_by_a_vanished_workspace_is_free(tmp_path: Path) -> None:
    """A workspace removed without its name being released (its process died while
    deleting it): the name is free, and not found."""
    from sandstorm.local._names import NameIndex

    root = tmp_path / "state"
    with sandstorm.get_provider("local", root=str(root)) as provider:
        gone = provider.create_workspace(name="reused", persistent=False)
        provider.delete_workspace(gone)
        # what a process that died between the two steps of a delete leaves
        names = root / "workspaces" / ".names"
        namespace = provider.async_provider._namespace  # type: ignore[attr-defined]
        (names / NameIndex._key(namespace, "reused")).write_text(gone.id)
        with pytest.raises(sandstorm.WorkspaceNotFound):
            provider.get_workspace("reused")
        fresh = provider.create_workspace(name="reused")
        assert provider.get_workspace("reused").id == fresh.id != gone.id
        provider.delete_workspace(fresh)


def test_a_cancelled_named_create_leaves_neither_workspace_nor_name(tmp_path: Path) -> None:
    """Ctrl-C (a cancellation) at any point of a named create: either the caller got the
    workspace, or no workspace exists under that name and the name is free."""
    import asyncio

    async def main() -> list[str]:
        problems = []
        provider = sandstorm.get_async_provider("local", root=str(tmp_path / "state"))
        async with provider:
            await provider.create_workspace(persistent=False)  # engine and spares up
            for step in range(40):
                name = f"cancelled-{step}"
                task = asyncio.ensure_future(provider.create_workspace(name=name))
                for _ in range(step):
                    await asyncio.sleep(0)
                await asyncio.sleep(step * 0.0002)
                task.cancel()
                try:
                    made = await task
                except asyncio.CancelledError:
                    left = [ws.id for ws in await provider.list_workspaces() if ws.name == name]
                    if left:
                        problems.append(f"{name}: left {left}")
                    again = await provider.create_workspace(name=name)  # the name is free
                    await provider.delete_workspace(again)
                else:
                    await provider.delete_workspace(made)
            for ws in await provider.list_workspaces():
                await provider.delete_workspace(ws)
        return problems

    assert asyncio.run(main()) == []
