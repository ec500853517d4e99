"""pluggy hooks and the JSON-lines audit logger, on the real local provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandstorm


class Recorder:
    """A plugin that records every hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @sandstorm.hookimpl
    def sandstorm_before_run(self, provider: Any, workspace: Any, request: Any) -> None:
        self.calls.append(("before_run", {"workspace": workspace.id, "code": request.code}))

    @sandstorm.hookimpl
    def sandstorm_after_run(
        self, provider: Any, workspace: Any, request: Any, result: Any, error: Any
    ) -> None:
        self.calls.append(("after_run", {"result": result, "error": error}))

    @sandstorm.hookimpl
    def sandstorm_workspace_created(self, provider: Any, workspace: Any) -> None:
        self.calls.append(("created", {"workspace": workspace.id}))

    @sandstorm.hookimpl
    def sandstorm_workspace_deleted(self, provider: Any, workspace_id: str) -> None:
        self.calls.append(("deleted", {"workspace": workspace_id}))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    plugin = Recorder()
    manager = sandstorm.plugin_manager()
    manager.register(plugin)
    yield plugin
    manager.unregister(plugin)


def test_lifecycle_hooks_fire_in_order(local: sandstorm.SyncProvider, recorder: Recorder) -> None:
    result = local.run("print('hi')")
    names = [name for name, _ in recorder.calls]
    assert names == ["created", "before_run", "after_run", "deleted"]
    created = recorder.calls[0][1]["workspace"]
    assert recorder.calls[1][1] == {"workspace": created, "code": "print('hi')"}
    assert recorder.calls[2][1]["result"] == result
    assert recorder.calls[3][1]["workspace"] == created == result.workspace_id


def test_a_hook_can_veto_a_run(local: sandstorm.SyncProvider) -> None:
    class Veto:
        @sandstorm.hookimpl
        def sandstorm_before_run(self, provider: Any, workspace: Any, request: Any) -> None:
            if "forbidden" in request.code:
                raise PermissionError("policy says no")

    manager = sandstorm.plugin_manager()
    veto = Veto()
    manager.register(veto)
    try:
        with pytest.raises(PermissionError, match="policy says no"):
            local.run("print('forbidden')")
        assert local.run("print('fine')").stdout == "fine\n"
    finally:
        manager.unregister(veto)
    assert local.list_workspaces() == []


def test_audit_log_records_events_without_secrets(
    tmp_path: Path, state_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SANDSTORM_AUDIT_LOG", str(log))
    sandstorm.reset_plugin_manager()
    try:
        with sandstorm.get_provider("local", root=str(state_root)) as provider:
            provider.run("print(1)", env={"API_TOKEN": "tok-secret-123"})
            workspace = provider.create_workspace(name="audited")
            provider.delete_workspace(workspace)
    finally:
        sandstorm.reset_plugin_manager()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    actions = [event["action"] for event in events]
    assert actions == [
        "workspace.create",
        "run",
        "workspace.delete",
        "workspace.create",
        "workspace.delete",
    ]
    run = events[1]
    assert run["provider"] == "local"
    assert run["details"]["exit_code"] == 0
    assert run["workspace_id"] == events[0]["workspace_id"]
    assert "tok-secret-123" not in log.read_text()


def test_redaction_of_secret_looking_details() -> None:
    event = sandstorm.AuditEvent(
        action="x", provider="p", details={"api_key": "k1", "nested": {"Token": "t"}, "n": 1}
    )
    assert event.redacted()["details"] == {"api_key": "***", "nested": {"Token": "***"}, "n": 1}
