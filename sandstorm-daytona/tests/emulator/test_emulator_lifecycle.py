"""Auto-stop, auto-archive, auto-delete and ttl fire on the emulator's clock."""

from __future__ import annotations

import time

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, DaytonaNotFoundError

from sandstorm_daytona.emulator import (
    EmulatorConfig,
    ManualClock,
    RunningEmulator,
    running_emulator,
)

from .conftest import KEY_A


def _wait_state(daytona, sandbox_id: str, state: str, timeout: float = 5.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        try:
            current = str(daytona.get(sandbox_id).state.value)
        except DaytonaNotFoundError:
            current = "destroyed"
        if current == state:
            return current
        time.sleep(0.05)
    return current


def test_emulator_auto_stop_then_auto_archive(
    daytona, clock: ManualClock, emu: RunningEmulator
) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create(
        CreateSandboxFromSnapshotParams(auto_stop_interval=5, auto_archive_interval=60)
    )
    try:
        s.fs.upload_file(b"survives archive", "x.txt")
        clock.advance(minutes=4)
        assert daytona.get(s.id).state == "started"
        clock.advance(minutes=2)
        assert _wait_state(daytona, s.id, "stopped") == "stopped"
        clock.advance(minutes=61)
        assert _wait_state(daytona, s.id, "archived") == "archived"
        assert emu.emulator.sandboxes[s.id].workspace_id is None
        s.start()
        assert s.fs.download_file("x.txt") == b"survives archive"
    finally:
        daytona.delete(s)


def test_emulator_activity_postpones_auto_stop(daytona, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=10))
    try:
        clock.advance(minutes=8)
        s.process.exec("true")  # activity resets the countdown
        clock.advance(minutes=8)
        time.sleep(0.5)
        assert daytona.get(s.id).state == "started"
        clock.advance(minutes=3)
        assert _wait_state(daytona, s.id, "stopped") == "stopped"
    finally:
        daytona.delete(s)


def test_emulator_auto_delete_and_ephemeral(daytona, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create(CreateSandboxFromSnapshotParams(auto_delete_interval=30))
    s.stop()
    clock.advance(minutes=31)
    assert _wait_state(daytona, s.id, "destroyed") == "destroyed"
    eph = daytona.create(CreateSandboxFromSnapshotParams(ephemeral=True))
    eph.stop()  # auto-delete 0: stopping destroys it
    assert _wait_state(daytona, eph.id, "destroyed") == "destroyed"


def test_emulator_ttl_destroys_whatever_the_state(daytona, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    s.set_ttl(20)
    got = daytona.get(s.id)
    assert got.auto_destroy_at is not None
    clock.advance(minutes=19)
    time.sleep(0.3)
    assert daytona.get(s.id).state == "started"
    clock.advance(minutes=2)
    assert _wait_state(daytona, s.id, "destroyed") == "destroyed"


def test_emulator_transition_delay_shows_intermediate_states() -> None:
    clock = ManualClock()
    config = EmulatorConfig(api_keys={KEY_A: "org-a"}, transition_delay=30.0, reaper_interval=0.1)
    with running_emulator(config, clock=clock) as emu:
        h = {"Authorization": f"Bearer {KEY_A}"}
        created = httpx.post(f"{emu.api_url}/sandbox", headers=h, json={}).json()
        assert created["state"] == "creating"
        url = f"{emu.api_url}/sandbox/{created['id']}"
        clock.advance(seconds=31)
        assert httpx.get(url, headers=h).json()["state"] == "started"
        stopping = httpx.post(f"{url}/stop", headers=h).json()
        assert (stopping["state"], stopping["desiredState"]) == ("stopping", "stopped")
        again = httpx.post(f"{url}/stop", headers=h)
        assert again.status_code == 400
        assert again.json()["message"] == "State change in progress"
        clock.advance(seconds=31)
        assert httpx.get(url, headers=h).json()["state"] == "stopped"
        deleting = httpx.delete(url, headers=h).json()
        assert deleting["state"] == "destroying"
        clock.advance(seconds=31)
        assert httpx.get(url, headers=h).status_code == 404


def test_emulator_pause_resume_and_resize(daytona) -> None:  # type: ignore[no-untyped-def]
    from daytona import Resources
    from daytona.common.errors import DaytonaBadRequestError

    s = daytona.create()
    try:
        s.fs.upload_file(b"kept", "k.txt")
        s.pause()
        assert daytona.get(s.id).state == "paused"
        s.start()
        assert s.state == "started"
        assert s.fs.download_file("k.txt") == b"kept"
        s.resize(Resources(cpu=2, memory=2))
        got = daytona.get(s.id)
        assert (got.cpu, got.memory) == (2, 2)
        with pytest.raises(DaytonaBadRequestError, match="stopped"):
            s.resize(Resources(disk=10))
        s.stop()
        s.resize(Resources(disk=10))
        assert daytona.get(s.id).disk == 10
        with pytest.raises(DaytonaBadRequestError, match="increased"):
            s.resize(Resources(disk=5))
    finally:
        daytona.delete(s)
