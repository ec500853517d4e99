"""Bearer keys map to organisations; one organisation never sees another's sandboxes."""

from __future__ import annotations

import httpx
import pytest
from daytona import DaytonaNotFoundError

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A, KEY_B


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ],
)
def test_emulator_missing_or_wrong_key_is_401(
    emu: RunningEmulator, headers: dict[str, str]
) -> None:
    for method, url in (
        ("GET", f"{emu.api_url}/sandbox"),
        ("POST", f"{emu.api_url}/sandbox"),
        ("POST", f"{emu.base_url}/toolbox/anything/process/execute"),
    ):
        r = httpx.request(method, url, headers=headers, json={})
        assert r.status_code == 401
        body = r.json()
        assert body["statusCode"] == 401
        assert body["error"] == "Unauthorized"
        assert body["path"].startswith("/")
        assert "timestamp" in body


def test_emulator_health_and_config_need_no_key(emu: RunningEmulator) -> None:
    assert httpx.get(f"{emu.api_url}/health").status_code == 200
    config = httpx.get(f"{emu.api_url}/config").json()
    assert config["proxyToolboxUrl"] == f"{emu.base_url}/toolbox"
    # like daytona.io: an Analytics API (the emulator's own), which the SDK then uses
    assert config["analyticsApiUrl"] == f"{emu.base_url}/analytics"


def test_emulator_other_org_cannot_get_list_exec_or_delete(
    daytona, daytona_b, emu: RunningEmulator
) -> None:  # type: ignore[no-untyped-def]
    mine = daytona.create()
    try:
        with pytest.raises(DaytonaNotFoundError):
            daytona_b.get(mine.id)
        with pytest.raises(DaytonaNotFoundError):
            daytona_b.get(mine.name)
        assert mine.id not in [s.id for s in daytona_b.list()]
        base = emu.api_url
        for method, url in (
            ("GET", f"{base}/sandbox/{mine.id}"),
            ("DELETE", f"{base}/sandbox/{mine.id}"),
            ("POST", f"{base}/sandbox/{mine.id}/stop"),
            ("PUT", f"{base}/sandbox/{mine.id}/labels"),
            ("POST", f"{emu.base_url}/toolbox/{mine.id}/process/execute"),
            ("GET", f"{emu.base_url}/toolbox/{mine.id}/files?path=."),
        ):
            r = httpx.request(method, url, headers=_h(KEY_B), json={"command": "id", "labels": {}})
            assert r.status_code == 404, (method, url, r.text)
            assert r.json()["message"] == f"Sandbox with ID or name {mine.id} not found"
        # still alive and untouched for its owner
        assert daytona.get(mine.id).state == "started"
        assert mine.process.exec("echo still-mine").result == "still-mine\n"
        r = httpx.get(f"{base}/sandbox/{mine.id}", headers=_h(KEY_A))
        assert r.status_code == 200
        assert r.json()["organizationId"] == "org-a"
    finally:
        daytona.delete(mine)


def test_emulator_snapshots_are_private_to_their_org(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create()
    try:
        s.create_snapshot("private-snap")
        r = httpx.get(f"{emu.api_url}/snapshots/private-snap", headers=_h(KEY_B))
        assert r.status_code == 404
        r = httpx.post(
            f"{emu.api_url}/sandbox", headers=_h(KEY_B), json={"snapshot": "private-snap"}
        )
        assert r.status_code == 400
        names = [
            i["name"]
            for i in httpx.get(f"{emu.api_url}/snapshots", headers=_h(KEY_B)).json()["items"]
        ]
        assert "private-snap" not in names
        assert emu.config.default_snapshot in names  # the general one is shared
    finally:
        daytona.delete(s)
        daytona.snapshot.delete(daytona.snapshot.get("private-snap"))
