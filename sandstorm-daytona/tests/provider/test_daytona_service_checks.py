"""The provider against what the real Daytona service does (issue 17), on the emulator.

Each test is one mismatch the emulator now mirrors from the upstream sources (v0.190)
and the provider now handles.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from sandstorm import NetworkPolicy, ProviderConfigError, SnapshotNotFound
from sandstorm_daytona import DaytonaConfig, DaytonaMetrics, DaytonaProvider
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


# ------------------------------------------------------------------ auto-stop


async def test_persistent_workspaces_send_an_explicit_auto_stop(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    assert DaytonaConfig.model_fields["persistent_auto_stop_minutes"].default == 15
    api_url, key = emulator.api_url, emulator.api_key  # type: ignore[attr-defined]
    config = config_for(api_url, api_key=key, persistent_auto_stop_minutes=40)
    async with DaytonaProvider(config) as provider:
        workspace = await provider.create_workspace()
        try:
            record = emulator.emulator.sandboxes[workspace.id]  # type: ignore[attr-defined]
            assert record.auto_stop_interval == 40
        finally:
            await provider.delete_workspace(workspace)


async def test_an_auto_stopped_workspace_is_started_even_from_a_stale_object(
    provider: DaytonaProvider, emulator: object
) -> None:
    """The server stops idle persistent workspaces; the caller's ``Workspace`` still says
    "started", and the toolbox answers 400 "Is the Sandbox started?": start, then go on."""
    import httpx

    workspace = await provider.create_workspace()
    try:
        await provider.write_file(workspace, "kept.txt", "kept")
        api, key = emulator.api_url, emulator.api_key  # type: ignore[attr-defined]
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
            stopped = await http.post(f"{api}/sandbox/{workspace.id}/stop")
            assert stopped.status_code == 200, stopped.text
        assert workspace.state == "started"  # stale
        result = await provider.run_in_workspace(workspace, "print(open('kept.txt').read())")
        assert result.stdout == "kept\n"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
            await http.post(f"{api}/sandbox/{workspace.id}/stop")
        assert await provider.read_file(workspace, "kept.txt") == b"kept"
    finally:
        await provider.delete_workspace(workspace)


# ------------------------------------------------------------------ metrics on older daemons


async def test_metrics_degrade_per_figure_without_system_metrics(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    """A daemon without ``GET /system/metrics`` (404): Daytona's own figures are unknown
    (None), the cgroup's and the disk usage are still there."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(system_metrics=False, shell="zsh")) as emu:
        config = config_for(emu.api_url, api_key=emu.api_key)
        async with DaytonaProvider(config) as provider:
            workspace = await provider.create_workspace()
            try:
                await provider.run_in_workspace(
                    workspace, "open('d.bin', 'wb').write(b'x' * (1 << 20))\nsum(range(10**6))"
                )
                metrics = await provider.get_workspace_metrics(workspace)
            finally:
                await provider.delete_workspace(workspace)
    assert isinstance(metrics, DaytonaMetrics)
    unknown = (metrics.cpu_used_percent, metrics.memory_total_bytes, metrics.disk_total_bytes)
    assert unknown == (None, None, None)
    assert metrics.cpu_limit is None
    assert metrics.cpu_seconds > 0
    assert metrics.memory_peak_bytes > 0
    assert metrics.disk_used_bytes >= 1 << 20


async def test_snapshots_are_listed_from_servers_without_source_sandbox_id(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    """v0.190 servers send no ``sourceSandboxId``; an older server's reply is the one thing
    the emulator does not produce, so a MockTransport plays it."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/snapshots"
        item = {"state": "active", "createdAt": "2026-01-01T00:00:00Z", "size": 1.0}
        items = [
            {**item, "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "name": "sandstorm-ab-12"},
            {**item, "id": "6fa459ea-ee8a-3ca4-894e-db77e160355e", "name": "ubuntu:22.04"},
        ]
        return httpx.Response(200, json={"items": items, "total": 2, "page": 1, "totalPages": 1})

    config = config_for("http://127.0.0.1:9/api")
    async with DaytonaProvider(config, transport=httpx.MockTransport(handler)) as provider:
        listed = await provider.list_snapshots()
    assert [s.name for s in listed] == ["sandstorm-ab-12"]
