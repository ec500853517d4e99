"""Cleanup: nothing the contract created outlives it."""

from __future__ import annotations

import pytest

from sandstorm import AsyncProvider, Capability, ExecutionTimeout

from ._base import LABEL, AsyncContract
from ._leaks import LeakWatch

__all__ = ["CleanupContract"]


class CleanupContract(AsyncContract):
    """One-shot runs delete their workspace; the session leaves no labelled workspace behind.

    Put this class last: ``test_session_left_nothing_behind`` checks every workspace and
    snapshot the earlier contract tests of this session created.
    """

    async def test_one_shot_runs_leave_no_workspace(
        self, provider: AsyncProvider, sandstorm_run_id: str
    ) -> None:
        watch = await LeakWatch.start(provider, sandstorm_run_id)
        await provider.run("print('ok')")
        await provider.run("import sys; sys.exit(3)")
        await provider.run("raise SystemExit('failed')")
        with pytest.raises(ExecutionTimeout):
            await provider.run("import time; time.sleep(30)", timeout=1)
        leaked = await watch.leaked()
        assert not leaked, f"one-shot runs left workspaces behind: {leaked}"

    async def test_session_left_nothing_behind(
        self, provider: AsyncProvider, sandstorm_run_id: str
    ) -> None:
        prefix = f"sstk-{sandstorm_run_id}-"
        leaked = [
            ws.id
            for ws in await provider.list_workspaces()
            if ws.labels.get(LABEL) == sandstorm_run_id or (ws.name or "").startswith(prefix)
        ]
        assert not leaked, f"workspaces created by this session still exist: {leaked}"
        if provider.supports(Capability.SNAPSHOTS):
            snaps = [
                s.id for s in await provider.list_snapshots() if (s.name or "").startswith(prefix)
            ]
            assert not snaps, f"snapshots created by this session still exist: {snaps}"
