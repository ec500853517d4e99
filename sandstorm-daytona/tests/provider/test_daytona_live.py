"""Against real Daytona: opt-in only (``-m live`` and ``DAYTONA_API_KEY``); never in CI."""

from __future__ import annotations

import os

import pytest

from sandstorm_daytona import DaytonaConfig, DaytonaProvider

pytestmark = [pytest.mark.live, pytest.mark.anyio]


@pytest.fixture
def live_config(request: pytest.FixtureRequest) -> DaytonaConfig:
    if "live" not in (request.config.getoption("-m") or ""):
        pytest.skip("live test: select it with -m live")
    if not os.environ.get("DAYTONA_API_KEY"):
        pytest.skip("live test: set DAYTONA_API_KEY")
    return DaytonaConfig.load({"owner": "sandstorm-live-tests"})


async def test_live_run_and_reap(live_config: DaytonaConfig) -> None:
    async with DaytonaProvider(live_config) as provider:
        assert await provider.is_available()
        result = await provider.run(
            "import sys\nprint('Hello from Daytona!')\nprint('e', file=sys.stderr)", timeout=60
        )
        assert (result.stdout, result.stderr) == ("Hello from Daytona!\n", "e\n")
        assert result.cost is not None
        assert result.cost > 0
        workspace = await provider.create_workspace(persistent=False)
        try:
            js = await provider.run_in_workspace(
                workspace, "console.log(6*7)", language="javascript"
            )
            assert js.stdout == "42\n"
        finally:
            await provider.delete_workspace(workspace)
        assert workspace.id not in [w.id for w in await provider.list_workspaces()]
