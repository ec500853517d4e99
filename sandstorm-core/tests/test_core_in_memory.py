"""The core's own logic on an in-memory provider (no engine): hooks, audit, reaping,
structured configuration errors, optional protocols."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Callable
from typing import Any

import pytest

import sandstorm
from sandstorm._provider import LABEL_PROCESS
from sandstorm.protocols import ReportsIsolation

pytestmark = pytest.mark.anyio


class Recorder:
    """Records lifecycle hooks and audit events."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    @sandstorm.hookimpl
    def sandstorm_before_run(self, provider: Any, workspace: Any, request: Any) -> None:
        self.calls.append(("before_run", workspace.id))

    @sandstorm.hookimpl
    def sandstorm_after_run(
        self, provider: Any, workspace: Any, request: Any, result: Any, error: Any
    ) -> None:
        self.calls.append(("after_run", workspace.id))

    @sandstorm.hookimpl
    def sandstorm_workspace_created(self, provider: Any, workspace: Any) -> None:
        self.calls.append(("created", workspace.id))

    @sandstorm.hookimpl
    def sandstorm_workspace_deleted(self, provider: Any, workspace_id: str) -> None:
        self.calls.append(("deleted", workspace_id))

    @sandstorm.hookimpl
    def sandstorm_audit(self, event: sandstorm.AuditEvent) -> None:
        self.calls.append(("audit " + event.action, event.workspace_id))


@pytest.fixture
def recorder(plugins: Callable[[object], None]) -> Recorder:
    plugin = Recorder()
    plugins(plugin)
    return plugin


async def test_one_shot_run_fires_every_hook_and_audit_record(
    memory: Any, recorder: Recorder
) -> None:
    result = await memory.run("print(1)")
    assert result.stdout == "print(1)\n"
    ws = result.workspace_id
    await memory.aclose()  # the one-shot deletion may finish behind the result
    assert recorder.calls == [
        ("audit workspace.create", ws),
        ("created", ws),
        ("before_run", ws),
        ("after_run", ws),
        ("audit run", ws),
        ("audit workspace.delete", ws),
        ("deleted", ws),
    ]
    assert memory.workspaces == {}


async def test_reaping_fires_the_deleted_hook_and_an_audit_record(
    memory: Any, recorder: Recorder
) -> None:
    kept = await memory.create_workspace(persistent=True)
    leaked = await memory.create_workspace(persistent=False)
    # as if the process that made it had died: a pid that cannot exist, on this host
    stored = memory.workspaces[leaked.id]
    dead = f"{socket.gethostname()}/99999999/1"
    memory.workspaces[leaked.id] = stored.model_copy(
        update={"labels": {**stored.labels, LABEL_PROCESS: dead}}
    )
    recorder.calls.clear()
    assert await memory.reap(dry_run=True) == [leaked.id]
    assert recorder.calls == []
    assert await memory.reap() == [leaked.id]
    assert recorder.calls == [("audit workspace.delete", leaked.id), ("deleted", leaked.id)]
    assert set(memory.workspaces) == {kept.id}


def test_config_errors_list_their_problems() -> None:
    with pytest.raises(sandstorm.ProviderConfigError) as caught:
        sandstorm.get_async_provider("local", colour="red", prewarm="many")
    error = caught.value
    assert sorted(p.field for p in error.problems) == ["colour", "prewarm"]
    assert all(isinstance(p, sandstorm.ConfigProblem) for p in error.problems)
    for problem in error.problems:
        assert problem.message in str(error)
    assert "many" not in str(error.problems)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.problems) == (type(error), str(error), error.problems)
    assert sandstorm.ProviderConfigError("no one field").problems == ()


async def test_only_providers_with_an_isolation_report_match_the_protocol(memory: Any) -> None:
    assert not isinstance(memory, ReportsIsolation)
    assert isinstance(sandstorm.load_provider_class("local"), type)
    assert issubclass(sandstorm.load_provider_class("local"), ReportsIsolation)
