"""The provider against what the real Daytona service does (issue 17), on the emulator.

Each test is one mismatch the emulator now mirrors from the upstream sources (v0.190)
and the provider now handles.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandstorm import NetworkPolicy, ProviderConfigError, SnapshotNotFound
from sandstorm_daytona import DaytonaProvider
from sandstorm_daytona._mapping import file_time, read_time

from .conftest import live_sandboxes

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ 3. allow-lists


async def test_an_allow_list_the_api_refuses_fails_before_any_sandbox(
    provider: DaytonaProvider, emulator: object
) -> None:
    for allow in (("::1",), ("localhost",), tuple(f"10.{i}.0.0/16" for i in range(11))):
        with pytest.raises(ProviderConfigError, match="allow-list"):
            await provider.run("print(1)", network=NetworkPolicy(mode="allow_list", allow=allow))
    assert live_sandboxes(emulator) == []


# ------------------------------------------------------------------ 5. file times


def test_file_times_read_both_daemon_forms() -> None:
    """``modifiedAt`` is RFC 3339; ``modTime`` is Go's ``time.String()``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert file_time("1970-01-01T00:00:00Z", "", "f") == epoch
    assert file_time(None, "1970-01-01 00:00:00 +0000 UTC", "f") == epoch
    assert read_time("2024-05-01 14:00:00.123456789 +0200 CEST") == datetime(
        2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC
    )
    assert read_time("2024-05-01T12:00:00.123456789Z") == datetime(
        2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC
    )


async def test_listed_files_keep_their_modification_time(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        await provider.write_file(workspace, "old.txt", "x")
        touched = await provider.run_in_workspace(
            workspace, "touch -d @0 old.txt", language="shell"
        )
        assert touched.ok, touched.stderr
        entries = {e.name: e for e in await provider.list_files(workspace, ".")}
        assert entries["old.txt"].modified_at == datetime(1970, 1, 1, tzinfo=UTC)
    finally:
        await provider.delete_workspace(workspace)


# ------------------------------------------------------------------ 6. snapshots


async def test_a_snapshot_is_deleted_by_id_after_resolving_its_name(
    provider: DaytonaProvider,
) -> None:
    workspace = await provider.create_workspace()
    try:
        snapshot = await provider.snapshot(workspace, name="named-for-deletion")
    finally:
        await provider.delete_workspace(workspace)
    await provider.delete_snapshot("named-for-deletion")
    assert snapshot.id not in {s.id for s in await provider.list_snapshots()}
    with pytest.raises(SnapshotNotFound):
        await provider.delete_snapshot("named-for-deletion")
    with pytest.raises(SnapshotNotFound):
        await provider.delete_snapshot(snapshot.id)
