"""Regressions reported by the Daytona provider's author, each driven over loopback by the
official SDK or raw httpx: slashes in snapshot names, large transfers and output, session
bookkeeping out of the user's view, clients that drop mid-exec."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A


def _h(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------ snapshot names


def test_emulator_snapshot_names_may_hold_a_slash(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    from daytona import DaytonaNotFoundError

    default = emu.config.default_snapshot
    assert "/" in default  # daytonaio/sandbox:emulator
    assert daytona.snapshot.get(default).name == default
    encoded = urllib.parse.quote(default, safe="")
    reply = httpx.get(f"{emu.api_url}/snapshots/{encoded}", headers=_h())
    assert reply.status_code == 200
    assert reply.json()["name"] == default

    sandbox = daytona.create()
    try:
        sandbox.create_snapshot("team/app:v1")
        snap = daytona.snapshot.get("team/app:v1")
        assert snap.name == "team/app:v1"
        quoted = urllib.parse.quote("team/app:v1", safe="")
        off = httpx.post(f"{emu.api_url}/snapshots/{quoted}/deactivate", headers=_h())
        assert (off.status_code, off.json()["state"]) == (200, "inactive")
        daytona.snapshot.delete(snap)
        with pytest.raises(DaytonaNotFoundError):
            daytona.snapshot.get("team/app:v1")
    finally:
        daytona.delete(sandbox)
