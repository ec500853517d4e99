"""Snapshots: capture a workspace's files and restore them exactly into a new workspace."""

from __future__ import annotations

import pytest

from sandstorm import (
    AsyncProvider,
    Capability,
    Snapshot,
    SnapshotNotFound,
    Workspace,
    WorkspaceExists,
)

from ._base import AsyncContract, WorkspaceFactory
from ._helpers import run_json, show

__all__ = ["SnapshotContract"]

MAKE_TREE = (
    "import os\n"
    "os.makedirs('snap/nested/deeper', exist_ok=True)\n"
    "open('snap/text.txt', 'w', encoding='utf-8').write('é 🎉 text\\n')\n"
    "open('snap/nested/binary.bin', 'wb').write(bytes(range(256)) * 40)\n"
    "open('snap/nested/deeper/empty', 'wb').write(b'')\n"
    "open('snap/to-change.txt', 'w').write('original')\n"
    "open('snap/to-delete.txt', 'w').write('deleted later')\n"
    "os.makedirs('snap/empty-dir', exist_ok=True)\n"
)

MANIFEST = (
    "import hashlib, json, os\n"
    "out = {}\n"
    "for root, dirs, files in os.walk('snap'):\n"
    "    for d in dirs:\n"
    "        out[os.path.join(root, d) + '/'] = 'dir'\n"
    "    for f in files:\n"
    "        p = os.path.join(root, f)\n"
    "        out[p] = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
    "print(json.dumps(out, sort_keys=True))"
)

MUTATE = (
    "import os\n"
    "open('snap/to-change.txt', 'w').write('changed after the snapshot')\n"
    "os.remove('snap/to-delete.txt')\n"
    "open('snap/added.txt', 'w').write('added after the snapshot')\n"
)


@pytest.mark.requires(Capability.SNAPSHOTS)
class SnapshotContract(AsyncContract):
    """Restore reproduces the files byte for byte; snapshots are listed until deleted."""

    async def _snapshot(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> Snapshot:
        name = new_workspace.name() + "-snap"
        snapshot = await provider.snapshot(workspace, name=name)
        new_workspace.track(snapshot)
        return snapshot

    async def test_restore_reproduces_files(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        made = await provider.run_in_workspace(workspace, MAKE_TREE)
        assert made.exit_code == 0, show(made)
        before = await run_json(provider, workspace, MANIFEST)
        assert len(before) == 8, before
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        changed = await provider.run_in_workspace(workspace, MUTATE)
        assert changed.exit_code == 0, show(changed)
        restored = await provider.restore(snapshot, name=new_workspace.name())
        new_workspace.track(restored)
        assert restored.id != workspace.id
        assert await run_json(provider, restored, MANIFEST) == before
        assert await run_json(provider, workspace, MANIFEST) != before

    async def test_restored_workspace_is_independent(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        await provider.run_in_workspace(workspace, MAKE_TREE)
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        restored = await provider.restore(snapshot.id, name=new_workspace.name())
        new_workspace.track(restored)
        await provider.run_in_workspace(restored, "open('snap/text.txt', 'w').write('restored')")
        result = await provider.run_in_workspace(workspace, "print(open('snap/text.txt').read())")
        assert result.stdout == "é 🎉 text\n\n", show(result)

    async def test_each_snapshot_restores_its_own_state(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        await provider.run_in_workspace(workspace, "open('v.txt', 'w').write('one')")
        first = await self._snapshot(provider, new_workspace, workspace)
        await provider.run_in_workspace(workspace, "open('v.txt', 'w').write('two')")
        second = await self._snapshot(provider, new_workspace, workspace)
        await provider.run_in_workspace(workspace, "open('v.txt', 'w').write('three')")
        assert first.id != second.id
        for snapshot, expected in ((second, "two"), (first, "one"), (second, "two")):
            restored = await provider.restore(snapshot, name=new_workspace.name())
            new_workspace.track(restored)
            got = await provider.run_in_workspace(restored, "print(open('v.txt').read())")
            assert got.stdout == expected + "\n", f"restore of {snapshot.id}: {show(got)}"
        source = await provider.run_in_workspace(workspace, "print(open('v.txt').read())")
        assert source.stdout == "three\n", show(source)

    async def test_restored_workspaces_share_nothing(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        await provider.run_in_workspace(workspace, MAKE_TREE)
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        one = await provider.restore(snapshot, name=new_workspace.name())
        new_workspace.track(one)
        two = await provider.restore(snapshot, name=new_workspace.name())
        new_workspace.track(two)
        assert len({workspace.id, one.id, two.id}) == 3
        before = await run_json(provider, one, MANIFEST)
        # in-place writes (same inode) in the source and in one restored copy
        in_place = "f = open('snap/text.txt', 'r+b'); f.write(b'XYZ'); f.close()"
        for target in (workspace, one):
            changed = await provider.run_in_workspace(target, in_place)
            assert changed.exit_code == 0, show(changed)
        assert await run_json(provider, two, MANIFEST) == before, "restored copies share files"
        await provider.delete_workspace(workspace)
        assert await run_json(provider, two, MANIFEST) == before, "deleting the source broke it"

    async def test_snapshot_of_a_restored_workspace(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        await provider.run_in_workspace(workspace, MAKE_TREE)
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        restored = await provider.restore(snapshot, name=new_workspace.name())
        new_workspace.track(restored)
        changed = await provider.run_in_workspace(restored, MUTATE)
        assert changed.exit_code == 0, show(changed)
        mutated = await run_json(provider, restored, MANIFEST)
        again = await self._snapshot(provider, new_workspace, restored)
        assert again.workspace_id == restored.id
        second = await provider.restore(again, name=new_workspace.name())
        new_workspace.track(second)
        assert await run_json(provider, second, MANIFEST) == mutated

    async def test_snapshot_fields(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        await provider.run_in_workspace(workspace, MAKE_TREE)
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        assert snapshot.id
        assert snapshot.provider == provider.name
        assert snapshot.workspace_id == workspace.id
        assert snapshot.size > 0
        assert snapshot.created_at.tzinfo is not None
        assert snapshot.name is not None
        assert snapshot.name.endswith("-snap")

    async def test_listed_until_deleted(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        assert snapshot.id in {s.id for s in await provider.list_snapshots()}
        await provider.delete_snapshot(snapshot)
        assert snapshot.id not in {s.id for s in await provider.list_snapshots()}
        with pytest.raises(SnapshotNotFound) as caught:
            await provider.restore(snapshot.id)
        assert caught.value.snapshot_id == snapshot.id
        with pytest.raises(SnapshotNotFound):
            await provider.delete_snapshot(snapshot.id)

    async def test_restore_refuses_a_taken_name(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, workspace: Workspace
    ) -> None:
        """Names are unique whichever call makes the workspace: a restore under a name
        that is taken is refused, as a create would be."""
        snapshot = await self._snapshot(provider, new_workspace, workspace)
        name = new_workspace.name()
        first = await provider.restore(snapshot, name=name)
        new_workspace.track(first)
        with pytest.raises(WorkspaceExists):
            await provider.restore(snapshot, name=name)
        assert (await provider.get_workspace(name)).id == first.id

    async def test_restore_unknown_snapshot_raises(self, provider: AsyncProvider) -> None:
        with pytest.raises(SnapshotNotFound):
            await provider.restore("sstk-no-such-snapshot")
