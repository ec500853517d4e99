"""Wire details the SDK relies on, checked with a plain HTTP client."""

from __future__ import annotations

import httpx
import pytest

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A

H = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture
def client(emu: RunningEmulator):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=emu.base_url, headers=H, timeout=30) as c:
        yield c


@pytest.fixture
def sandbox_id(client: httpx.Client):  # type: ignore[no-untyped-def]
    created = client.post(
        "/api/sandbox", json={"labels": {"wire": "yes"}, "env": {"GREETING": "hey"}}
    )
    assert created.status_code == 200
    yield created.json()["id"]
    client.delete(f"/api/sandbox/{created.json()['id']}")


def test_emulator_sandbox_json_shape(
    client: httpx.Client, sandbox_id: str, emu: RunningEmulator
) -> None:
    body = client.get(f"/api/sandbox/{sandbox_id}").json()
    for key in (
        "id",
        "organizationId",
        "name",
        "user",
        "env",
        "labels",
        "public",
        "networkBlockAll",
        "kvm",
        "target",
        "cpu",
        "gpu",
        "memory",
        "disk",
        "toolboxProxyUrl",
    ):
        assert key in body, key
    assert body["kvm"] is False
    assert body["env"] == {"GREETING": "hey"}
    assert body["toolboxProxyUrl"] == f"{emu.base_url}/toolbox"
    assert client.get(f"/api/sandbox/{sandbox_id}/toolbox-proxy-url").json() == {
        "url": body["toolboxProxyUrl"]
    }
    # the sandbox's env reaches its code
    run = client.post(f"/toolbox/{sandbox_id}/process/execute", json={"command": "echo $GREETING"})
    assert run.json() == {"exitCode": 0, "result": "hey\n"}
    item = next(i for i in client.get("/api/sandbox").json()["items"] if i["id"] == sandbox_id)
    assert "env" not in item
    assert "kvm" not in item
    assert item["toolboxProxyUrl"] == body["toolboxProxyUrl"]


def test_emulator_list_cursor_states_and_sort(client: httpx.Client) -> None:
    made = [
        client.post("/api/sandbox", json={"labels": {"page": "p"}}).json()["id"] for _ in range(3)
    ]
    try:
        client.post(f"/api/sandbox/{made[0]}/stop")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, str] = {"limit": "2", "labels": '{"page": "p"}'}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/sandbox", params=params).json()
            seen += [i["id"] for i in page["items"]]
            pages += 1
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert pages == 2
        assert sorted(seen) == sorted(made)
        stopped = client.get(
            "/api/sandbox", params={"labels": '{"page": "p"}', "states": "stopped"}
        ).json()
        assert [i["id"] for i in stopped["items"]] == [made[0]]
        ordered = client.get(
            "/api/sandbox", params={"labels": '{"page": "p"}', "sort": "createdAt", "order": "asc"}
        )
        assert [i["id"] for i in ordered.json()["items"]] == made
        bad = client.get("/api/sandbox", params={"labels": "not json"})
        assert bad.status_code == 400
    finally:
        for sandbox_id in made:
            client.delete(f"/api/sandbox/{sandbox_id}")


def test_emulator_bad_requests_name_the_field(client: httpx.Client, sandbox_id: str) -> None:
    bad = client.post("/api/sandbox", json={"cpu": "two"})
    assert bad.status_code == 400
    assert "cpu" in bad.json()["message"]
    assert bad.json()["error"] == "Bad Request"
    missing = client.get("/api/nowhere")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Cannot GET /api/nowhere"
    daemon = client.post(f"/toolbox/{sandbox_id}/process/execute", json={"cmd": "x"})
    assert daemon.status_code == 400
    assert daemon.json()["source"] == "DAYTONA_DAEMON"
    assert daemon.json()["path"] == "/process/execute"
    assert "command" in daemon.json()["message"]


def test_emulator_logs_are_text_without_sdk_version(client: httpx.Client, sandbox_id: str) -> None:
    base = f"/toolbox/{sandbox_id}/process/session"
    assert client.post(base, json={"sessionId": "t"}).status_code == 201
    assert client.post(base, json={"sessionId": "t"}).status_code == 409
    cmd = client.post(f"{base}/t/exec", json={"command": "echo text", "runAsync": True})
    assert cmd.status_code == 202
    cmd_id = cmd.json()["cmdId"]
    import time

    for _ in range(100):
        if client.get(f"{base}/t/command/{cmd_id}").json().get("exitCode") is not None:
            break
        time.sleep(0.05)
    raw = client.get(f"{base}/t/command/{cmd_id}/logs")
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.text == "text\n"
    as_json = client.get(
        f"{base}/t/command/{cmd_id}/logs", headers={"X-Daytona-SDK-Version": "0.226.1"}
    )
    assert as_json.json() == {"output": "text\n", "stdout": "text\n", "stderr": ""}


def test_emulator_info_endpoints(client: httpx.Client, sandbox_id: str) -> None:
    assert client.get(f"/toolbox/{sandbox_id}/version").json()["version"]
    regions = client.get("/api/regions").json()
    assert [r["id"] for r in regions] == ["us", "eu"]
    config = client.get("/api/config").json()
    assert config["defaultSnapshot"] == "daytonaio/sandbox:emulator"
    eu = client.post("/api/sandbox", json={"target": "eu"}).json()
    assert eu["target"] == "eu"
    client.delete(f"/api/sandbox/{eu['id']}")
    assert client.post("/api/sandbox", json={"target": "mars"}).status_code == 404


def test_emulator_resources_only_with_build_info(client: httpx.Client) -> None:
    refused = client.post("/api/sandbox", json={"cpu": 2})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Cannot specify Sandbox resources when using a snapshot"
    both = client.post(
        "/api/sandbox", json={"snapshot": "x", "buildInfo": {"dockerfileContent": "FROM x"}}
    )
    assert both.json()["message"] == "Cannot specify a snapshot when using a build info entry"
    built = client.post(
        "/api/sandbox",
        json={"buildInfo": {"dockerfileContent": "FROM python:3.12"}, "cpu": 2, "memory": 2},
    ).json()
    try:
        assert (built["cpu"], built["memory"], built["disk"]) == (2, 2, 3)
        assert built["buildInfo"]["dockerfileContent"] == "FROM python:3.12"
        metrics = client.get(f"/toolbox/{built['id']}/system/metrics").json()
        assert metrics["cpuCount"] == 2
        assert metrics["memTotal"] == 2 << 30  # the engine enforces what was asked
    finally:
        client.delete(f"/api/sandbox/{built['id']}")


def test_emulator_network_settings_are_kept(client: httpx.Client) -> None:
    made = client.post("/api/sandbox", json={"networkAllowList": "10.1.0.0/16"}).json()
    try:
        assert made["networkAllowList"] == "10.1.0.0/16"
        assert made["networkBlockAll"] is False
        url = f"/api/sandbox/{made['id']}"
        updated = client.post(f"{url}/network-settings", json={"networkBlockAll": True}).json()
        assert updated["networkBlockAll"] is True
        # no network reaches the sandbox: an allow-list the engine cannot enforce is
        # replaced by the strictest policy, never by an open one
        probe = client.post(
            f"/toolbox/{made['id']}/process/code-run",
            json={
                "code": "import socket\ntry:\n    socket.create_connection(('10.1.2.3', 80), 1)\n"
                "    print('open')\nexcept OSError as e:\n    print('closed')",
                "language": "python",
            },
        ).json()
        assert probe["result"].strip() == "closed"
    finally:
        client.delete(f"/api/sandbox/{made['id']}")


def test_emulator_keep_alive_requests_are_not_delayed(client: httpx.Client) -> None:
    """Nagle against delayed ACK costs ~40 ms per keep-alive request without TCP_NODELAY."""
    import statistics
    import time

    client.get("/api/regions")
    took = []
    for _ in range(20):
        started = time.perf_counter()
        client.get("/api/regions")
        took.append(time.perf_counter() - started)
    assert statistics.median(took) < 0.035


def test_emulator_refuses_volumes_it_cannot_mount(client: httpx.Client) -> None:
    refused = client.post(
        "/api/sandbox", json={"volumes": [{"volumeId": "v1", "mountPath": "/data"}]}
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "Volume v1 not found"
