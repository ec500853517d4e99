"""Every code sample of the seed README (adapters-daytona), in Python, on the emulator.

Each test is one README section, written the way a user would write it with this API
(the blocking facade, as in the README's top-level ``await`` style examples).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandstorm
from sandstorm import SyncProvider
from sandstorm._sync import run_sync
from sandstorm_daytona import DaytonaProvider

from .conftest import live_sandboxes
from .shells import SHELLS

SHELL_MATRIX = SHELLS


@pytest.fixture
def daytona(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncProvider]:
    """``sandstorm.get_provider("daytona")`` configured the README way: from the environment."""
    monkeypatch.setenv("DAYTONA_API_KEY", emulator.api_key)
    monkeypatch.setenv("DAYTONA_API_URL", emulator.api_url)
    with sandstorm.get_provider("daytona", default_timeout=60) as provider:
        yield provider
    assert live_sandboxes(emulator) == []


def test_usage(daytona: SyncProvider) -> None:
    available = daytona.is_available()
    result = daytona.run(
        'print("Hello from Daytona!")', language="python", cpu=2, memory=1024, timeout=30
    )
    assert available is True
    assert result.stdout == "Hello from Daytona!\n"


def test_workspace_templates(daytona: SyncProvider) -> None:
    # the emulator's stock snapshot stands in for "ml-workspace"
    result = daytona.run(
        'print("Using custom workspace")',
        language="python",
        workspace_template="daytonaio/sandbox:emulator",
    )
    assert result.stdout == "Using custom workspace\n"


@pytest.fixture
def repo() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="sandstorm-readme-git-"))
    os.chmod(root, 0o755)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    try:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root / "w")], check=True, env=env)
        (root / "w" / "README.md").write_text("example\n")
        subprocess.run(["git", "-C", str(root / "w"), "add", "."], check=True, env=env)
        subprocess.run(
            ["git", "-C", str(root / "w"), *ident, "commit", "-qm", "init"], check=True, env=env
        )
        bare = root / "repo.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(root / "w"), str(bare)], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        yield f"file://{bare}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_git_integration(daytona: SyncProvider, repo: str) -> None:
    result = daytona.run("git status", language="shell", git_repo=repo, git_branch="main")
    assert "On branch main" in result.stdout
    assert "nothing to commit, working tree clean" in result.stdout


def test_persistent_workspaces(daytona: SyncProvider) -> None:
    workspace = daytona.create_workspace(
        name="my-ai-workspace", template="daytonaio/sandbox:emulator", persistent=True
    )
    try:
        result1 = daytona.run_in_workspace(
            workspace.id, "echo numpy-stand-in > installed.txt", language="shell"
        )
        result2 = daytona.run_in_workspace(
            workspace.id, "print(open('installed.txt').read().strip())", language="python"
        )
        assert result1.ok
        assert result2.stdout == "numpy-stand-in\n"
    finally:
        daytona.delete_workspace(workspace)


def test_workspace_snapshots(daytona: SyncProvider) -> None:
    workspace = daytona.create_workspace()
    daytona.run_in_workspace(workspace, "open('model.txt', 'w').write('trained')")
    snapshot = daytona.snapshot(workspace)
    restored = daytona.restore(snapshot)
    try:
        assert daytona.read_file(restored, "model.txt") == b"trained"
    finally:
        daytona.delete_workspace(restored)
        daytona.delete_workspace(workspace)
        daytona.delete_snapshot(snapshot)


def test_resource_monitoring(daytona: SyncProvider) -> None:
    workspace = daytona.create_workspace()
    try:
        code = "x = bytearray(32 << 20)\nopen('data.bin', 'wb').write(bytes(1 << 20))"
        daytona.run_in_workspace(workspace, code)
        metrics = daytona.get_workspace_metrics(workspace)
        assert metrics.cpu_seconds > 0
        assert metrics.memory_peak_bytes >= 32 << 20
        assert metrics.disk_used_bytes >= 1 << 20
    finally:
        daytona.delete_workspace(workspace)


def test_resource_monitoring_telemetry(daytona: SyncProvider, emulator: Any) -> None:
    # the telemetry series carry cpu/memory/disk figures too
    workspace = daytona.create_workspace()
    try:
        provider = daytona.async_provider  # the async provider behind the facade
        assert isinstance(provider, DaytonaProvider)
        series = run_sync(provider.get_telemetry(workspace))
        names = {s.metric_name for s in series}
        assert {"daytona.sandbox.cpu.utilization", "daytona.sandbox.memory.usage"} <= names
    finally:
        daytona.delete_workspace(workspace)


def test_multi_language_support(daytona: SyncProvider) -> None:
    workspace = daytona.create_workspace()
    try:
        python_result = daytona.run('print("Python")', language="python", workspace_id=workspace.id)
        js_result = daytona.run(
            'console.log("JavaScript")',
            language="javascript",
            workspace_id=python_result.workspace_id,
        )
        assert (python_result.stdout, js_result.stdout) == ("Python\n", "JavaScript\n")
        assert js_result.workspace_id == workspace.id
    finally:
        daytona.delete_workspace(workspace)


def test_cost_estimation(daytona: SyncProvider) -> None:
    estimate = daytona.estimate_cost(duration=3600, cpu=2, memory=4096, disk=10240)
    assert estimate.breakdown["cpu"] == pytest.approx(2 * 0.000014 * 3600)
    assert estimate.breakdown["memory"] == pytest.approx(4 * 0.0000045 * 3600)
    assert estimate.breakdown["disk"] == pytest.approx(10 * 0.00000003 * 3600)
    result = daytona.run("print(1)")
    assert result.cost is not None
    assert result.cost > 0


def test_error_handling(daytona: SyncProvider) -> None:
    with pytest.raises(sandstorm.TemplateNotFound):
        daytona.run("print(1)", workspace_template="no-such-template")
    with pytest.raises(sandstorm.WorkspaceNotFound):
        daytona.run_in_workspace("no-such-workspace", "print(1)")
