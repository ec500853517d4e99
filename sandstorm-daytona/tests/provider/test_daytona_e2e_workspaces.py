"""Workspaces, files, git, snapshots, metrics, network, templates and reaping on the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sandstorm
from sandstorm import (
    NetworkPolicy,
    ResourceAllocationError,
    SnapshotNotFound,
    TemplateNotFound,
    WorkspaceNotFound,
)
from sandstorm_daytona import DaytonaConfig, DaytonaMetrics, DaytonaProvider
from sandstorm_testkit.exits import leave_behind

from .conftest import live_sandboxes

pytestmark = pytest.mark.anyio

DEFAULT_SNAPSHOT = "daytonaio/sandbox:emulator"
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


async def test_persistent_workspace_seed_example(
    provider: DaytonaProvider, emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    workspace = await provider.create_workspace(
        name="my-ai-workspace", persistent=True, labels={"project": "seed"}
    )
    try:
        first = await provider.run_in_workspace(
            workspace.id, "echo 42 > answer.txt", language="shell"
        )
        assert first.ok
        second = await provider.run_in_workspace(
            workspace.id, "print(open('answer.txt').read().strip())", language="python"
        )
        assert second.stdout == "42\n"
        # reconnect from another provider instance, by id
        config = config_for(emulator.api_url, api_key=emulator.api_key)  # type: ignore[attr-defined]
        async with DaytonaProvider(config) as other:
            again = await other.get_workspace(workspace.id)
            assert again.name == "my-ai-workspace"
            assert again.persistent
            third = await other.run_in_workspace(
                workspace.id,
                "console.log(require('fs').readFileSync('answer.txt', 'utf8'))",
                language="javascript",
            )
            assert third.stdout == "42\n\n"
            listed = await other.list_workspaces(labels={"project": "seed"})
            assert [w.id for w in listed] == [workspace.id]
            assert await other.list_workspaces(labels={"project": "other"}) == []
    finally:
        await provider.delete_workspace(workspace)
    with pytest.raises(WorkspaceNotFound):
        await provider.get_workspace(workspace.id)


async def test_multi_language_reusing_workspace_id(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        python = await provider.run(
            "open('shared.txt', 'w').write('from python')", workspace_id=workspace.id
        )
        js = await provider.run(
            "console.log(require('fs').readFileSync('shared.txt', 'utf8'))",
            language="javascript",
            workspace_id=python.workspace_id,
        )
        assert js.stdout == "from python\n"
        assert js.workspace_id == workspace.id
    finally:
        await provider.delete_workspace(workspace)


async def test_stop_and_start(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        await provider.write_file(workspace, "keep.txt", "kept")
        stopped = await provider.stop_workspace(workspace)
        assert stopped.state == "stopped"
        # running in a stopped workspace starts it first
        result = await provider.run_in_workspace(workspace.id, "print(open('keep.txt').read())")
        assert result.stdout == "kept\n"
        assert (await provider.get_workspace(workspace.id)).state == "started"
        await provider.stop_workspace(workspace.id)
        started = await provider.start_workspace(workspace.id)
        assert started.state == "started"
    finally:
        await provider.delete_workspace(workspace)


async def test_resources_round_up(provider: DaytonaProvider, emulator: object) -> None:
    workspace = await provider.create_workspace(cpu=1.5, memory=1536, disk=4000)
    try:
        # the workspace records what was asked for ...
        assert workspace.resources.cpu == 1.5
        assert workspace.resources.memory == 1536
        assert workspace.resources.disk == 4000
        assert (await provider.get_workspace(workspace.id)).resources == workspace.resources
        # ... and Daytona allocated whole vCPU and GiB, rounded up, never down
        record = emulator.emulator.sandboxes[workspace.id]  # type: ignore[attr-defined]
        assert (record.cpu, record.memory, record.disk) == (2, 2, 4)
    finally:
        await provider.delete_workspace(workspace)


async def test_templates(provider: DaytonaProvider) -> None:
    result = await provider.run("print('templated')", workspace_template=DEFAULT_SNAPSHOT)
    assert result.stdout == "templated\n"
    with pytest.raises(TemplateNotFound) as info:
        await provider.run("print(1)", workspace_template="ml-workspace")
    assert DEFAULT_SNAPSHOT in info.value.known
    # Daytona sizes snapshot sandboxes from the snapshot: asking for more is refused
    with pytest.raises(ResourceAllocationError, match="smaller than requested"):
        await provider.run("print(1)", workspace_template=DEFAULT_SNAPSHOT, cpu=4)
    fits = await provider.run("print(2)", workspace_template=DEFAULT_SNAPSHOT, memory=512)
    assert fits.stdout == "2\n"


async def test_network_policy_round_trip(provider: DaytonaProvider, emulator: object) -> None:
    policies = [
        NetworkPolicy.blocked(),
        NetworkPolicy.host(),
        NetworkPolicy(mode="allow_list", allow=("10.1.0.0/16", "example.com")),
    ]
    for policy in policies:
        workspace = await provider.create_workspace(network=policy)
        try:
            assert workspace.network == policy
            assert (await provider.get_workspace(workspace.id)).network == policy
        finally:
            await provider.delete_workspace(workspace)


async def test_region_is_the_target(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    config = config_for(
        emulator.api_url,  # type: ignore[attr-defined]
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        region="eu",
    )
    async with DaytonaProvider(config) as provider:
        workspace = await provider.create_workspace()
        try:
            state = emulator.emulator  # type: ignore[attr-defined]
            assert state.sandboxes[workspace.id].target == "eu"
        finally:
            await provider.delete_workspace(workspace)


class AuditTap:
    """A plugin that keeps every audit event."""

    def __init__(self) -> None:
        self.events: list[sandstorm.AuditEvent] = []

    @sandstorm.hookimpl
    def sandstorm_audit(self, event: sandstorm.AuditEvent) -> None:
        self.events.append(event)


async def test_a_handle_closed_just_before_its_provider_is_deleted_quietly(
    emulator: object, config_for: Callable[..., DaytonaConfig], caplog: pytest.LogCaptureFixture
) -> None:
    # the handle's delete runs behind its exit; aclose awaits it: it must not be refused
    config = config_for(emulator.api_url, api_key=emulator.api_key)  # type: ignore[attr-defined]
    with caplog.at_level("DEBUG", logger="sandstorm.daytona"):
        async with DaytonaProvider(config) as daytona, daytona.sandbox() as box:
            await box.write_file("a.txt", b"a")
    assert "provider is closed" not in caplog.text
    assert live_sandboxes(emulator) == []


async def test_files(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        blob = os.urandom(3 << 20) + bytes(range(256))
        await provider.write_file(workspace, "data/blob.bin", blob)
        await provider.write_file(workspace, "data/note.txt", "héllo")
        assert await provider.read_file(workspace, "data/blob.bin") == blob
        assert await provider.read_file(workspace, "data/note.txt", max_size=6) == "héllo".encode()
        with pytest.raises(sandstorm.WorkspaceError, match="over the 5-byte read limit"):
            await provider.read_file(workspace, "data/note.txt", max_size=5)
        listing = {f.name: f for f in await provider.list_files(workspace, "data")}
        assert set(listing) == {"blob.bin", "note.txt"}
        assert listing["blob.bin"].size == len(blob)
        assert listing["note.txt"].path == "data/note.txt"
        assert not listing["note.txt"].is_dir
        result = await provider.run_in_workspace(workspace, "print(open('data/note.txt').read())")
        assert result.stdout == "héllo\n"
        audit = AuditTap()
        sandstorm.plugin_manager().register(audit)
        try:
            await provider.upload_files(workspace, {"a.txt": b"A", "sub/b.txt": b"B"})
        finally:
            sandstorm.plugin_manager().unregister(audit)
        # (the in-process emulator's own local engine audits its writes too)
        mine = [e for e in audit.events if e.provider == provider.name]
        assert [(e.action, e.workspace_id, e.details) for e in mine] == [
            ("file.write", workspace.id, {"path": "a.txt", "size": 1}),
            ("file.write", workspace.id, {"path": "sub/b.txt", "size": 1}),
        ]
        got = await provider.download_files(workspace, ["a.txt", "sub/b.txt"])
        assert got == {"a.txt": b"A", "sub/b.txt": b"B"}
        await provider.delete_file(workspace, "data")
        with pytest.raises(FileNotFoundError):
            await provider.read_file(workspace, "data/note.txt")
        with pytest.raises(FileNotFoundError) as gone:
            await provider.list_files(workspace, "data")
        assert "list files: list files" not in str(gone.value)  # said once
    finally:
        await provider.delete_workspace(workspace)


@pytest.fixture
def bare_repo() -> Iterator[str]:
    """A local bare repository with a ``main`` branch, readable by the sandbox user."""
    root = Path(tempfile.mkdtemp(prefix="sandstorm-dtn-git-"))
    os.chmod(root, 0o755)
    try:
        seed = root / "seed"
        subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True, env=GIT_ENV)
        (seed / "README.md").write_text("hello\n")
        subprocess.run(["git", "-C", str(seed), "add", "."], check=True, env=GIT_ENV)
        subprocess.run(["git", "-C", str(seed), "commit", "-qm", "init"], check=True, env=GIT_ENV)
        bare = root / "repo.git"
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True, env=GIT_ENV
        )
        for path in root.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        yield f"file://{bare}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_git_seed_example(provider: DaytonaProvider, bare_repo: str) -> None:
    result = await provider.run(
        "git status", language="shell", git_repo=bare_repo, git_branch="main"
    )
    assert result.exit_code == 0, result
    assert "On branch main" in result.stdout


async def test_git_clone_and_status(provider: DaytonaProvider, bare_repo: str) -> None:
    workspace = await provider.create_workspace()
    try:
        await provider.git_clone(workspace, bare_repo, branch="main", path="repo")
        status = await provider.git_status(workspace, "repo")
        assert status.branch == "main"
        assert status.clean
        await provider.write_file(workspace, "repo/new.txt", "x")
        await provider.write_file(workspace, "repo/README.md", "changed\n")
        status = await provider.git_status(workspace, "repo")
        assert {(f.path, f.status) for f in status.files} == {
            ("new.txt", "untracked"),
            ("README.md", "modified"),
        }
    finally:
        await provider.delete_workspace(workspace)


async def test_snapshot_and_restore(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    restored = None
    snapshot = None
    try:
        await provider.write_file(workspace, "state.txt", "before snapshot")
        snapshot = await provider.snapshot(workspace)
        assert snapshot.workspace_id == workspace.id
        await provider.write_file(workspace, "state.txt", "after snapshot")
        assert snapshot.id in {s.id for s in await provider.list_snapshots()}
        restored = await provider.restore(snapshot)
        assert restored.id != workspace.id
        assert await provider.read_file(restored, "state.txt") == b"before snapshot"
        result = await provider.run_in_workspace(restored, "print(open('state.txt').read())")
        assert result.stdout == "before snapshot\n"
    finally:
        if restored is not None:
            await provider.delete_workspace(restored)
        await provider.delete_workspace(workspace)
        if snapshot is not None:
            await provider.delete_snapshot(snapshot)
    with pytest.raises(SnapshotNotFound):
        await provider.restore(snapshot.id)


async def test_telemetry_series(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        await provider.run_in_workspace(workspace, "sum(range(1_000_000))")
        series = await provider.get_telemetry(workspace)
        names = {s.metric_name for s in series}
        assert "daytona.sandbox.cpu.utilization" in names
        assert all(p.value >= 0 for s in series for p in s.data_points)
    finally:
        await provider.delete_workspace(workspace)


async def test_metrics(provider: DaytonaProvider) -> None:
    workspace = await provider.create_workspace()
    try:
        code = "open('data.bin', 'wb').write(b'x' * (1 << 20))\nsum(range(3_000_000))"
        await provider.run_in_workspace(workspace, code)
        metrics = await provider.get_workspace_metrics(workspace)
        assert isinstance(metrics, DaytonaMetrics)
        assert metrics.cpu_seconds > 0
        assert metrics.memory_peak_bytes > 0
        assert metrics.disk_used_bytes >= 1 << 20
    finally:
        await provider.delete_workspace(workspace)


async def test_reap_deletes_leaked_and_expired_never_live(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    api = {"api_url": emulator.api_url, "api_key": emulator.api_key}  # type: ignore[attr-defined]
    left = leave_behind("daytona", api)  # a process killed with SIGKILL: it cleaned nothing
    config = config_for(api["api_url"], api_key=api["api_key"], ephemeral_ttl=0.5)
    async with DaytonaProvider(config) as provider:
        mine = await provider.create_workspace(persistent=False)  # expires, but we live
        try:
            await asyncio.sleep(0.6)
            assert await provider.reap(dry_run=True) == [left["bound"]]
            assert set(live_sandboxes(emulator)) == {left["bound"], left["persistent"], mine.id}
            assert await provider.reap() == [left["bound"]]
            assert await provider.reap(older_than=0) == [left["persistent"]]
            assert live_sandboxes(emulator) == [mine.id]
        finally:
            for workspace_id in (*left.values(), mine.id):
                with contextlib.suppress(WorkspaceNotFound):
                    await provider.delete_workspace(workspace_id)
    assert live_sandboxes(emulator) == []


async def test_official_sdk_sees_our_sandbox(provider: DaytonaProvider, emulator: object) -> None:
    from daytona import AsyncDaytona
    from daytona import DaytonaConfig as SdkConfig

    workspace = await provider.create_workspace()
    try:
        await provider.write_file(workspace, "from-sandstorm.txt", "hi sdk")
        sdk_config = SdkConfig(
            api_key=emulator.api_key,  # type: ignore[attr-defined]
            api_url=emulator.api_url,  # type: ignore[attr-defined]
        )
        async with AsyncDaytona(sdk_config) as daytona:
            sandbox = await daytona.get(workspace.id)
            assert sandbox.labels["sandstorm"] == "1"
            answer = await sandbox.process.exec("cat from-sandstorm.txt")
            assert answer.result == "hi sdk"
    finally:
        await provider.delete_workspace(workspace)
