"""Workspaces: persistence, isolation, lifecycle, and what a workspace reports about itself."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from sandstorm import AsyncProvider, Capability, Workspace, WorkspaceNotFound

from ._base import LABEL, AsyncContract, WorkspaceFactory
from ._helpers import run_json, show

__all__ = ["WorkspaceContract"]


class WorkspaceContract(AsyncContract):
    """Workspaces keep state, stay apart from each other, and are gone once deleted."""

    async def test_ephemeral_workspace_lifecycle(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(persistent=False)
        assert workspace.persistent is False
        result = await provider.run_in_workspace(workspace, "print('hi')")
        assert result.stdout == "hi\n", show(result)
        await provider.delete_workspace(workspace)
        with pytest.raises(WorkspaceNotFound):
            await provider.get_workspace(workspace.id)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_workspace_fields(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        name = new_workspace.name()
        before = datetime.now(UTC)
        workspace = await new_workspace(name=name, labels={"purpose": "fields"})
        assert workspace.id
        assert workspace.provider == provider.name
        assert workspace.name == name
        assert workspace.persistent is True
        assert workspace.labels.get("purpose") == "fields"
        assert workspace.labels.get(LABEL) == new_workspace.run_id
        created = workspace.created_at
        assert created.tzinfo is not None, "created_at must be timezone-aware"
        assert before - timedelta(minutes=5) <= created <= datetime.now(UTC) + timedelta(minutes=5)
        fetched = await provider.get_workspace(workspace.id)
        assert (fetched.id, fetched.name, fetched.labels) == (workspace.id, name, workspace.labels)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_listed_until_deleted(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace()
        assert workspace.id in {ws.id for ws in await provider.list_workspaces()}
        await provider.delete_workspace(workspace)
        assert workspace.id not in {ws.id for ws in await provider.list_workspaces()}

    async def test_deleted_workspace_object_is_refused(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace()
        await provider.delete_workspace(workspace.id)
        calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("run_in_workspace", lambda: provider.run_in_workspace(workspace, "print(1)")),
        ]
        if provider.supports(Capability.FILES):
            calls += [
                ("write_file", lambda: provider.write_file(workspace, "x.txt", b"x")),
                ("read_file", lambda: provider.read_file(workspace, "x.txt")),
                ("list_files", lambda: provider.list_files(workspace)),
            ]
        for what, call in calls:
            with pytest.raises(WorkspaceNotFound) as caught:
                await call()
            assert caught.value.workspace_id == workspace.id, (what, caught.value.workspace_id)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_listed_workspaces_are_this_providers(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        mine = [await new_workspace(), await new_workspace()]
        listed = await provider.list_workspaces()
        assert {ws.id for ws in mine} <= {ws.id for ws in listed}
        for ws in listed[:50]:
            assert ws.provider == provider.name, f"listed a workspace of {ws.provider!r}: {ws}"
            fetched = await provider.get_workspace(ws.id)
            assert fetched.id == ws.id, f"listed {ws.id!r} but get_workspace gives {fetched.id!r}"
        labelled = await provider.list_workspaces(labels=new_workspace.labels)
        assert {ws.id for ws in mine} <= {ws.id for ws in labelled}
        assert all(ws.labels.get(LABEL) == new_workspace.run_id for ws in labelled)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_delete_then_not_found(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace()
        await provider.delete_workspace(workspace.id)
        with pytest.raises(WorkspaceNotFound) as caught:
            await provider.get_workspace(workspace.id)
        assert caught.value.workspace_id == workspace.id
        with pytest.raises(WorkspaceNotFound):
            await provider.run_in_workspace(workspace.id, "print(1)")
        with pytest.raises(WorkspaceNotFound):
            await provider.run("print(1)", workspace_id=workspace.id)
        with pytest.raises(WorkspaceNotFound):
            await provider.delete_workspace(workspace.id)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_state_persists_between_runs(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        first = await provider.run_in_workspace(
            workspace,
            "import os; open('state.txt', 'w').write('kept'); os.makedirs('d/e', exist_ok=True); "
            "open('d/e/f.bin', 'wb').write(bytes(range(256))); print(os.getcwd())",
        )
        assert first.exit_code == 0, show(first)
        second = await run_json(
            provider,
            workspace,
            "import os, json; print(json.dumps([open('state.txt').read(), "
            "open('d/e/f.bin', 'rb').read() == bytes(range(256)), os.getcwd()]))",
        )
        assert second == ["kept", True, first.stdout.strip()]
        third = await provider.run("print(open('state.txt').read())", workspace_id=workspace.id)
        assert third.stdout == "kept\n", show(third)

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_workspaces_are_isolated(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        a = await new_workspace()
        b = await new_workspace()
        assert a.id != b.id
        where = await run_json(
            provider,
            a,
            "import os, json; open('secret.txt', 'w').write('only-in-a'); "
            "print(json.dumps(os.path.abspath('secret.txt')))",
        )
        seen = await run_json(
            provider,
            b,
            "import os, json\n"
            f"path = {where!r}\n"
            "def read(p):\n"
            "    try:\n        return open(p).read()\n"
            "    except OSError:\n        return None\n"
            "print(json.dumps([read('secret.txt'), read(path)]))",
        )
        assert seen == [None, None], "workspace b can read a file of workspace a"

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_workspace_env(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(env={"SSTK_WS": "from-workspace", "SSTK_BOTH": "ws"})
        got = await provider.run_in_workspace(
            workspace,
            "import os; print(os.environ.get('SSTK_WS'), os.environ.get('SSTK_BOTH'))",
            env={"SSTK_BOTH": "run"},
        )
        assert got.stdout == "from-workspace run\n", show(got)

    async def test_reported_network_is_honest(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        """Without NETWORK_POLICY nothing is enforced: a workspace must not claim ``blocked``."""
        from ._network import PROBE, serve_endpoint

        if provider.supports(Capability.NETWORK_POLICY):
            pytest.skip(f"{provider.name} declares network_policy; NetworkContract checks it")
        workspace = await new_workspace()
        endpoint_gen = serve_endpoint()
        endpoint = next(endpoint_gen)
        try:
            result = await provider.run_in_workspace(
                workspace,
                PROBE.format(host=endpoint.host, port=endpoint.port, token=b"honest"),
                timeout=60,
            )
        finally:
            with contextlib.suppress(StopIteration):
                next(endpoint_gen)  # runs the server's cleanup
        assert result.exit_code == 0, show(result)
        if result.stdout.startswith("reached"):
            assert workspace.network.mode != "blocked", (
                "the code reached the host's loopback, yet the workspace reports network "
                f"{workspace.network.mode!r}: report what the code really has "
                "(NetworkPolicy(mode='host'))"
            )

    async def test_one_shot_runs_do_not_share_files(self, provider: AsyncProvider) -> None:
        first = await provider.run("open('leftover.txt', 'w').write('x'); print('ok')")
        assert first.stdout == "ok\n", show(first)
        second = await provider.run("import os; print(os.path.exists('leftover.txt'))")
        assert second.stdout == "False\n", show(second)
