"""An honest host-subprocess provider for the kit's own tests.

It runs code as plain host processes in a private directory per workspace: no isolation,
so it is no sandbox, but everything it declares (PERSISTENCE, FILES) really works. Its
workspaces live under ``$SSTK_HOST_ROOT`` (a directory per workspace, with a meta file),
so separate provider instances see the same workspaces.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sandstorm
from sandstorm import Capability, ExecRequest, FileInfo, RunResult, Workspace, WorkspaceSpec


class HostConfig(sandstorm.ProviderConfig):
    env_prefix = "SSTK_HOST_"
    root: str = os.path.join(tempfile.gettempdir(), "sstk-host-provider")
    max_output_bytes: int = sandstorm.DEFAULT_OUTPUT_CAP


class HostProvider(sandstorm.AsyncProvider):
    name = "host"
    description = "host subprocesses in a directory per workspace (kit self-tests only)"
    capabilities = frozenset({Capability.PERSISTENCE, Capability.FILES})
    languages = frozenset({"python", "shell"})
    config_model = HostConfig

    @property
    def root(self) -> Path:
        root = Path(self.config.root)
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _dir(self, workspace_id: str) -> Path:
        path = self.root / workspace_id
        if "/" in workspace_id or not (path / "meta.json").exists():
            raise sandstorm.WorkspaceNotFound(workspace_id, self.name)
        return path

    def _files(self, workspace: Workspace) -> Path:
        return self._dir(workspace.id) / "files"

    def _path(self, workspace: Workspace, path: str) -> Path:
        base = self._files(workspace).resolve()
        full = (base / path).resolve()
        if full != base and base not in full.parents:
            raise sandstorm.ProviderConfigError(f"path {path!r} leaves the workspace")
        return full

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        ws = Workspace(
            id="host-" + uuid.uuid4().hex[:12],
            provider=self.name,
            name=spec.name,
            persistent=spec.persistent,
            created_at=datetime.now(UTC),
            labels=spec.labels,
            network=sandstorm.NetworkPolicy.host(),  # plain host processes: honest
        )
        path = self.root / ws.id
        (path / "files").mkdir(parents=True)
        (path / "meta.json").write_text(
            json.dumps({"ws": ws.model_dump(mode="json"), "env": spec.env})
        )
        return ws

    def _meta(self, workspace_id: str) -> dict:
        return json.loads((self._dir(workspace_id) / "meta.json").read_text())

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        return Workspace.model_validate(self._meta(workspace_id)["ws"])

    async def _list_workspaces(self) -> list[Workspace]:
        out = []
        for child in sorted(self.root.iterdir()):
            try:
                out.append(await self._get_workspace(child.name))
            except (sandstorm.WorkspaceNotFound, ValueError):
                continue
        return out

    async def _delete_workspace(self, workspace_id: str) -> None:
        path = self._dir(workspace_id)
        # a daemon the provider could not kill (it declares no such isolation) may still
        # be writing here: retry until a pass finds the tree empty; the daemon then dies
        # of its deleted working directory
        for _ in range(100):
            try:
                shutil.rmtree(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                await asyncio.sleep(0.02)
        shutil.rmtree(path)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        cwd = self._files(workspace)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
        env.update(self._meta(workspace.id)["env"])
        env.update(request.env)
        if request.language == "python":
            argv = [sys.executable, "-c", request.code]
        else:
            argv = ["/bin/sh", "-c", request.code]
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdin=asyncio.subprocess.PIPE
            if request.stdin is not None
            else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        cap = self.config.max_output_bytes
        buffers = {"out": bytearray(), "err": bytearray()}
        truncated = {"out": False, "err": False}
        seen = {"out": 0, "err": 0}
        flooded = False

        async def pump(stream: asyncio.StreamReader, key: str) -> None:
            nonlocal flooded
            while chunk := await stream.read(65536):
                room = cap - len(buffers[key])
                if len(chunk) > room:
                    truncated[key] = True
                buffers[key] += chunk[: max(room, 0)]
                seen[key] += len(chunk)
                if seen[key] > 2 * cap and not flooded:  # the kit's one meaning of the cap
                    flooded = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)

        async def feed() -> None:
            if request.stdin is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(request.stdin)
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                proc.stdin.close()

        assert proc.stdout is not None
        assert proc.stderr is not None
        tasks = [
            asyncio.ensure_future(pump(proc.stdout, "out")),
            asyncio.ensure_future(pump(proc.stderr, "err")),
            asyncio.ensure_future(feed()),
        ]

        def text(key: str) -> str:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            return decoder.decode(bytes(buffers[key]), final=not truncated[key])

        try:
            await asyncio.wait_for(proc.wait(), request.timeout)
            await asyncio.wait_for(asyncio.gather(*tasks), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise sandstorm.ExecutionTimeout(
                request.timeout, stdout=text("out"), stderr=text("err"), workspace_id=workspace.id
            ) from None
        except BaseException:  # cancelled: reap the process before its event loop goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = proc.returncode
        assert code is not None
        signaled = code < 0
        reason = (
            sandstorm.TerminationReason.OUTPUT_LIMIT
            if flooded
            else sandstorm.TerminationReason.SIGNALED
            if signaled
            else sandstorm.TerminationReason.EXITED
        )
        return RunResult(
            stdout=text("out"),
            stderr=text("err"),
            exit_code=128 - code if signaled else code,
            duration=time.perf_counter() - started,
            workspace_id=workspace.id,
            provider=self.name,
            language=request.language,
            stdout_truncated=truncated["out"],
            stderr_truncated=truncated["err"],
            reason=reason,
            signal=-code if signaled else None,
        )

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        full = self._path(workspace, path)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        full = self._path(workspace, path)
        if not full.is_file():
            raise FileNotFoundError(path)
        return full.read_bytes()

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        base = self._path(workspace, path)
        if not base.is_dir():
            raise FileNotFoundError(path)
        out = []
        for child in sorted(base.iterdir()):
            st = child.stat()
            out.append(
                FileInfo(
                    path=str(child.relative_to(self._files(workspace).resolve())),
                    name=child.name,
                    is_dir=child.is_dir(),
                    size=st.st_size,
                    mode=st.st_mode,
                    modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                )
            )
        return out

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        full = self._path(workspace, path)
        if full.is_dir():
            shutil.rmtree(full)
        elif full.exists():
            full.unlink()
        else:
            raise FileNotFoundError(path)
