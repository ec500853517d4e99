"""``subproc``: the reference adapter of docs/write-a-provider.md, built on sandstorm.adapters.

Code runs as plain host processes in a directory per workspace. It isolates nothing (no
sandbox: never run untrusted code with it), so its conformance run lists the isolation
tests as expected failures. Register it with an entry point, or in tests with
``sandstorm.register_provider("subproc", "subproc_provider:SubprocProvider")``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import sandstorm
from sandstorm import Capability, ExecRequest, FileInfo, RunResult, Snapshot, Workspace
from sandstorm.adapters import DirectoryStore, clean_env, run_process

ARGV = {"python": [sys.executable, "-c"], "shell": ["/bin/sh", "-c"]}


class SubprocConfig(sandstorm.ProviderConfig):
    env_prefix = "SUBPROC_"  # root <- $SUBPROC_ROOT
    root: str = os.path.join(tempfile.gettempdir(), "sandstorm-subproc")
    output_cap: int = sandstorm.DEFAULT_OUTPUT_CAP


class SubprocProvider(sandstorm.AsyncProvider):
    name = "subproc"
    description = "host subprocesses in a directory per workspace (no isolation)"
    languages = frozenset(ARGV)
    capabilities = frozenset({Capability.PERSISTENCE, Capability.FILES, Capability.SNAPSHOTS})
    config_model = SubprocConfig
    config: SubprocConfig

    def __init__(self, config: SubprocConfig | None = None) -> None:
        super().__init__(config)
        self.store = DirectoryStore(self.config.root, self.name)

    async def _is_available(self) -> bool:
        return bool(sys.executable)

    async def _create_workspace(self, spec: sandstorm.WorkspaceSpec) -> Workspace:
        return self.store.create(
            name=spec.name, labels=spec.labels, env=spec.env, persistent=spec.persistent
        )

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        return self.store.get(workspace_id)

    async def _list_workspaces(self) -> list[Workspace]:
        return self.store.list_workspaces()

    async def _delete_workspace(self, workspace_id: str) -> None:
        await asyncio.to_thread(self.store.delete, workspace_id)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        cwd = self.store.files(workspace)  # WorkspaceNotFound once deleted
        done = await run_process(
            [*ARGV[request.language], request.code],
            cwd=cwd,
            env=clean_env(cwd, self.store.env(workspace), request.env),
            timeout=request.timeout,
            output_cap=self.config.output_cap,
            stdin=request.stdin,
            workspace_id=workspace.id,
        )
        return RunResult(
            **vars(done), workspace_id=workspace.id, provider=self.name, language=request.language
        )

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        self.store.write_file(workspace, path, data)

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        return self.store.read_file(workspace, path)

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        return self.store.list_files(workspace, path)

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        self.store.delete_file(workspace, path)

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        return await asyncio.to_thread(self.store.snapshot, workspace, name)

    async def _restore(self, snapshot_id: str, name: str | None) -> Workspace:
        return await asyncio.to_thread(self.store.restore, snapshot_id, name)

    async def _list_snapshots(self) -> list[Snapshot]:
        return self.store.list_snapshots()

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        self.store.delete_snapshot(snapshot_id)
