"""The emulator refuses what would break it, over a real loopback socket: out-of-range
numbers, JSON nested too deep, bodies too large, paths that climb out, local clones of
host paths, bodies of the wrong type and image build steps it cannot apply. Each case
once answered 500, hung the lifecycle scheduler, or did something silently wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandstorm_daytona.emulator import ManualClock, RunningEmulator

from .conftest import KEY_A, repo_url

H = {"Authorization": f"Bearer {KEY_A}"}
HUGE = 2**64


@pytest.fixture
def client(emu: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers=H, timeout=60) as c:
        yield c


@pytest.fixture
def sandbox_id(client: httpx.Client) -> Iterator[str]:
    created = client.post("/api/sandbox", json={})
    assert created.status_code == 200, created.text
    sid = str(created.json()["id"])
    yield sid
    client.delete(f"/api/sandbox/{sid}")


def _toolbox(sid: str) -> str:
    return f"/toolbox/{sid}"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    "field",
    ["autoStopInterval", "autoArchiveInterval", "autoDeleteInterval", "ttlMinutes", "cpu"],
)
@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, HUGE])
def test_out_of_range_create_fields_are_400(client: httpx.Client, field: str, value: int) -> None:
    reply = client.post("/api/sandbox", json={field: value})
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["message"]


@pytest.mark.parametrize("setter", ["autostop", "autoarchive", "autodelete", "autopause", "ttl"])
def test_out_of_range_path_minutes_are_400(
    client: httpx.Client, sandbox_id: str, setter: str
) -> None:
    for value in (2**31, HUGE):
        reply = client.post(f"/api/sandbox/{sandbox_id}/{setter}/{value}")
        assert reply.status_code == 400, reply.text
        assert "out of range" in reply.json()["message"]
    assert client.post(f"/api/sandbox/{sandbox_id}/{setter}/60").status_code == 200


def test_one_broken_sandbox_never_stops_the_others_lifecycle(
    client: httpx.Client, emu: RunningEmulator, clock: ManualClock
) -> None:
    """A sandbox whose rule raises (here: an interval no date can hold, as the API once
    let through) is skipped; the scheduler still stops everybody else's sandboxes."""
    ids = [client.post("/api/sandbox", json={"autoStopInterval": 5}).json()["id"] for _ in "ab"]
    broken, healthy = ids
    try:
        emu.emulator.sandboxes[broken].auto_stop_interval = 10**20
        clock.advance(minutes=6)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if client.get(f"/api/sandbox/{healthy}").json()["state"] == "stopped":
                break
            time.sleep(0.05)
        assert client.get(f"/api/sandbox/{healthy}").json()["state"] == "stopped"
    finally:
        emu.emulator.sandboxes[broken].auto_stop_interval = 0
        for sid in ids:
            client.delete(f"/api/sandbox/{sid}")


@pytest.mark.parametrize("route", ["process/execute", "process/code-run"])
def test_timeouts_beyond_uint32_are_400(client: httpx.Client, sandbox_id: str, route: str) -> None:
    body = {"command": "true", "code": "pass"}
    for value in (2**63, 2**32):
        reply = client.post(f"{_toolbox(sandbox_id)}/{route}", json={**body, "timeout": value})
        assert reply.status_code == 400, reply.text
        assert reply.json()["code"] == "BAD_REQUEST"
    ok = client.post(f"{_toolbox(sandbox_id)}/{route}", json={**body, "timeout": 2**32 - 1})
    assert ok.status_code == 200, ok.text


def test_cpu_zero_is_accepted_like_the_dto(client: httpx.Client, emu: RunningEmulator) -> None:
    """CreateSandboxDto and CreateSnapshotDto only say IsNumber(): 0 means the default."""
    reply = client.post("/api/sandbox", json={"cpu": 0, "memory": 0, "disk": 0, "gpu": 0})
    assert reply.status_code == 200, reply.text
    try:
        assert reply.json()["cpu"] == emu.config.default_cpu
    finally:
        client.delete(f"/api/sandbox/{reply.json()['id']}")
    snap = client.post("/api/snapshots", json={"name": "cpu-zero", "cpu": 0})
    assert snap.status_code == 200, snap.text
    assert client.delete(f"/api/snapshots/{snap.json()['id']}").status_code == 200
    # resize keeps its Min(1) (ResizeSandboxDto)
    assert client.post("/api/sandbox/x/resize", json={"cpu": 0}).status_code in (400, 404)


# ------------------------------------------------------------------ JSON and bodies


@pytest.mark.parametrize("where", ["create", "labels", "list-labels"])
def test_deep_json_on_the_api_is_400(client: httpx.Client, sandbox_id: str, where: str) -> None:
    deep = _nested(40_000)  # within the 100 kB body limit
    if where == "create":
        reply = client.post(
            "/api/sandbox", content=deep, headers={"content-type": "application/json"}
        )
    elif where == "labels":
        reply = client.put(
            f"/api/sandbox/{sandbox_id}/labels",
            content=b'{"labels": ' + deep + b"}",
            headers={"content-type": "application/json"},
        )
    else:
        reply = client.get("/api/sandbox", params={"labels": _nested(5_000).decode()})
    assert reply.status_code == 400, reply.text[:200]


def test_deep_json_100k_on_the_api_is_refused_by_size(client: httpx.Client) -> None:
    reply = client.post(
        "/api/sandbox", content=_nested(100_000), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert reply.json()["message"] == "request entity too large"


@pytest.mark.parametrize("route", ["process/execute", "files/bulk-download", "process/code-run"])
def test_deep_json_on_the_toolbox_is_400(client: httpx.Client, sandbox_id: str, route: str) -> None:
    reply = client.post(
        f"{_toolbox(sandbox_id)}/{route}",
        content=_nested(100_000),
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 400, reply.text[:200]
    assert reply.json()["code"] == "BAD_REQUEST"


def test_api_json_bodies_are_limited_to_100kb(client: httpx.Client) -> None:
    big = b'{"labels": {"a": "' + b"x" * 200_000 + b'"}}'
    reply = client.post("/api/sandbox", content=big, headers={"content-type": "application/json"})
    assert reply.status_code == 413
    # without a Content-Length the body is counted as it arrives

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 10_000

    streamed = client.post(
        "/api/sandbox", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["statusCode"] == 413


def test_toolbox_json_bodies_are_limited(
    client: httpx.Client, sandbox_id: str, emu: RunningEmulator
) -> None:
    size = emu.config.toolbox_body_limit + 1
    reply = client.post(
        f"{_toolbox(sandbox_id)}/process/execute",
        content=b" " * size,
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 413
    body = reply.json()
    assert (body["code"], body["source"]) == ("REQUEST_ENTITY_TOO_LARGE", "DAYTONA_DAEMON")
    # uploads have their own (larger) limit
    assert emu.config.upload_body_limit > emu.config.toolbox_body_limit
    up = client.post(
        f"{_toolbox(sandbox_id)}/files/upload",
        params={"path": "big.bin"},
        files={"file": ("big.bin", b"y" * size)},
    )
    assert up.status_code == 200, up.text


@pytest.mark.parametrize("route", ["files/bulk-upload", "files/upload"])
def test_uploads_need_a_multipart_body(client: httpx.Client, sandbox_id: str, route: str) -> None:
    for headers, content in (
        ({"content-type": "application/json"}, b'{"files": []}'),
        ({"content-type": "multipart/form-data"}, b"no boundary"),
        ({}, b""),
    ):
        reply = client.post(
            f"{_toolbox(sandbox_id)}/{route}",
            params={"path": "x"},
            content=content,
            headers=headers,
        )
        assert reply.status_code == 400, (headers, reply.text)
        assert "multipart/form-data" in reply.json()["message"]


# ------------------------------------------------------------------ paths


def test_paths_climbing_out_are_400_like_download(client: httpx.Client, sandbox_id: str) -> None:
    base = _toolbox(sandbox_id)
    replies = {
        "download": client.get(f"{base}/files/download", params={"path": "../x"}),
        "list": client.get(f"{base}/files", params={"path": "../"}),
        "info": client.get(f"{base}/files/info", params={"path": "a/../../etc"}),
        "cwd": client.post(f"{base}/process/execute", json={"command": "pwd", "cwd": "../"}),
    }
    for name, reply in replies.items():
        assert reply.status_code == 400, (name, reply.text)
        assert reply.json()["code"] == "INVALID_FILE_PATH", name
    inside = client.post(f"{base}/process/execute", json={"command": "pwd", "cwd": "a/.."})
    assert inside.status_code == 200, inside.text


def test_git_clone_of_a_host_path_reads_only_what_the_sandbox_can(
    client: httpx.Client,
    emu: RunningEmulator,
    bare_repo: Path,
    daytona,  # type: ignore[no-untyped-def]
) -> None:
    sandbox = daytona.create()
    try:
        base = _toolbox(sandbox.id)
        for url in (str(bare_repo), f"file://{bare_repo}"):
            reply = client.post(f"{base}/git/clone", json={"url": url, "path": "stolen"})
            assert reply.status_code in (400, 404), reply.text
        listing = client.get(f"{base}/files", params={"path": "."}).json()
        assert "stolen" not in {entry["name"] for entry in listing}
        # a repository the sandbox itself can read clones as before
        inside = repo_url(emu, sandbox, bare_repo)
        ok = client.post(f"{base}/git/clone", json={"url": inside, "path": "mine"})
        assert ok.status_code == 200, ok.text
        assert sandbox.fs.download_file("mine/README.md") == b"hello from the bare repo\n"
    finally:
        daytona.delete(sandbox)


# ------------------------------------------------------------------ snapshots and builds


def test_snapshot_deactivate_answers_204(client: httpx.Client) -> None:
    snap = client.post("/api/snapshots", json={"name": "deactivate-me"}).json()
    try:
        off = client.post(f"/api/snapshots/{snap['id']}/deactivate")
        assert (off.status_code, off.content) == (204, b"")
        assert client.get(f"/api/snapshots/{snap['id']}").json()["state"] == "inactive"
        on = client.post(f"/api/snapshots/{snap['id']}/activate")
        assert (on.status_code, on.json()["state"]) == (200, "active")
    finally:
        client.delete(f"/api/snapshots/{snap['id']}")


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM python:3.12\nCOPY app.py /app/app.py\n",
        "FROM python:3.12\nWORKDIR /app\n",
        "FROM a AS build\nFROM b\n",
        "RUN true\n",
    ],
)
def test_build_steps_it_cannot_apply_are_refused(client: httpx.Client, dockerfile: str) -> None:
    build = {"buildInfo": {"dockerfileContent": dockerfile}}
    reply = client.post("/api/sandbox", json=build)
    assert reply.status_code == 400, reply.text
    assert "Dockerfile" in reply.json()["message"]
    snap = client.post("/api/snapshots", json={"name": "refused-build", **build})
    assert snap.status_code == 400, snap.text


def test_build_steps_are_applied(client: httpx.Client) -> None:
    dockerfile = (
        "FROM python:3.12-slim\n"
        "# a comment\n"
        "ENV GREETING='hello there' OTHER=1\n"
        "LABEL purpose=test\n"
        'RUN echo "$GREETING" > built.txt && \\\n    echo more >> built.txt\n'
        'RUN ["sh", "-c", "echo exec-form >> built.txt"]\n'
        'CMD ["sleep", "infinity"]\n'
    )
    reply = client.post(
        "/api/sandbox",
        json={"buildInfo": {"dockerfileContent": dockerfile}, "env": {"OTHER": "2"}},
    )
    assert reply.status_code == 200, reply.text
    sid = reply.json()["id"]
    try:
        got = client.get(f"{_toolbox(sid)}/files/download", params={"path": "built.txt"})
        assert got.content == b"hello there\nmore\nexec-form\n"
        env = client.post(
            f"{_toolbox(sid)}/process/execute", json={"command": 'echo "$GREETING/$OTHER"'}
        )
        assert env.json()["result"].strip() == "hello there/2"
    finally:
        client.delete(f"/api/sandbox/{sid}")
    failing = client.post(
        "/api/sandbox", json={"buildInfo": {"dockerfileContent": "FROM x\nRUN exit 3\n"}}
    )
    assert failing.status_code == 400
    assert "RUN step 1" in failing.json()["message"]
