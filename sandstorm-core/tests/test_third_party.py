"""The third-party path: a provider package outside this workspace, found by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1]

PROVIDER_MODULE = '''
"""A tiny third-party provider: runs python with the host interpreter, no isolation."""

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

import sandstorm


class EchoConfig(sandstorm.ProviderConfig):
    env_prefix = "ECHO_"
    greeting: str = "hello"


class EchoProvider(sandstorm.AsyncProvider):
    name = "echo"
    description = "third-party test provider"
    config_model = EchoConfig

    def __init__(self, config=None):
        super().__init__(config)
        self._workspaces = {}

    async def _create_workspace(self, spec):
        ws = sandstorm.Workspace(id=uuid.uuid4().hex, provider=self.name,
                                 created_at=datetime.now(UTC), persistent=spec.persistent)
        self._workspaces[ws.id] = ws
        return ws

    async def _get_workspace(self, workspace_id):
        try:
            return self._workspaces[workspace_id]
        except KeyError:
            raise sandstorm.WorkspaceNotFound(workspace_id, self.name) from None

    async def _list_workspaces(self):
        return list(self._workspaces.values())

    async def _delete_workspace(self, workspace_id):
        await self._get_workspace(workspace_id)
        del self._workspaces[workspace_id]

    async def _execute(self, workspace, request):
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", request.code, stdout=-1, stderr=-1)
        out, err = await proc.communicate()
        return sandstorm.RunResult(
            stdout=self.config.greeting + ":" + out.decode(), stderr=err.decode(),
            exit_code=proc.returncode, duration=time.perf_counter() - started,
            workspace_id=workspace.id, provider=self.name)
'''

CHECK = """
import sys
import sandstorm

result = sandstorm.get_provider("echo", greeting="hi").run("print(40 + 2)")
assert result.stdout == "hi:42\\n", result
assert result.provider == "echo"
assert "echo" in [entry.name for entry in sandstorm.installed_providers()]
try:
    sandstorm.get_provider("daytona")
except sandstorm.ProviderNotFound as exc:
    print("NOT-FOUND:", exc)
else:
    sys.exit("daytona should not be installed here")
print("THIRD-PARTY-OK")
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def test_external_provider_package_resolves_by_name(tmp_path: Path) -> None:
    package = tmp_path / "sandstorm-echo"
    (package / "src" / "sandstorm_echo").mkdir(parents=True)
    (package / "src" / "sandstorm_echo" / "__init__.py").write_text(PROVIDER_MODULE)
    (package / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "sandstorm-echo"
        version = "1.0"
        dependencies = ["sandstorm-core"]

        [project.entry-points."sandstorm.providers"]
        echo = "sandstorm_echo:EchoProvider"

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [tool.hatch.build.targets.wheel]
        packages = ["src/sandstorm_echo"]
    """)
    )
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    uv = _uv()

    def run(*args: str, cwd: Path = tmp_path) -> None:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"

    # offline from uv's cache: core's third-party dependencies pinned by uv.lock (the
    # wheels `uv sync` fetched), then a fresh copy of core and the package, by path
    lock = tmp_path / "pylock.toml"
    export = ["export", "--frozen", "--format", "pylock.toml", "--no-dev"]
    run(
        *uv,
        *export,
        "--package",
        "sandstorm-core",
        "--no-emit-package=sandstorm-core",
        "-q",
        "-o",
        str(lock),
        cwd=CORE.parent,
    )
    core = tmp_path / "src" / "sandstorm-core"
    shutil.copytree(CORE, core, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    run(*uv, "venv", "-q", "-p", sys.executable, str(venv))
    python = venv / "bin" / "python"
    run(*uv, "pip", "install", "-q", "-p", str(python), "-r", str(lock))
    run(*uv, "pip", "install", "-q", "-p", str(python), str(core), str(package))
    done = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "THIRD-PARTY-OK" in done.stdout
    assert "pip install sandstorm-daytona" in done.stdout
    assert "local" in done.stdout


@pytest.mark.parametrize("name", ["daytona"])
def test_known_name_suggests_its_package(name: str) -> None:
    from sandstorm._registry import _not_found

    assert f"pip install sandstorm-{name}" in str(_not_found(name))
