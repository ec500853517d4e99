"""``Emulator.request_counts``: requests per route, as clients make them over loopback."""

from __future__ import annotations

import httpx

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A


def test_request_counts_name_each_route_of_an_sdk_one_shot(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    counts = emu.emulator.request_counts
    sandbox = daytona.create()
    counts.clear()
    assert sandbox.process.code_run("print(1)").result.strip() == "1"
    daytona.delete(sandbox)
    http = {key: n for key, n in counts.items() if not key.startswith("WEBSOCKET")}
    assert http == {
        "POST /toolbox/{sandbox_id}/process/code-run": 1,
        "DELETE /api/sandbox/{sandbox}": 1,
    }
    # the SDK also tries its Socket.IO event stream, which the emulator does not serve
    assert set(counts) - set(http) <= {"WEBSOCKET /api/socket.io"}


def test_request_counts_tell_routes_sharing_a_handler_apart(emu: RunningEmulator) -> None:
    counts = emu.emulator.request_counts
    counts.clear()
    with httpx.Client(base_url=emu.api_url, headers={"Authorization": f"Bearer {KEY_A}"}) as c:
        c.get("/regions")
        c.get("/shared-regions")
        c.get("/shared-regions")
        c.get("/no-such-route")
    with httpx.Client(base_url=emu.api_url) as anonymous:
        anonymous.get("/regions")  # 401 before routing
    assert counts == {
        "GET /api/regions": 1,
        "GET /api/shared-regions": 2,
        "GET (unrouted)": 2,
    }
