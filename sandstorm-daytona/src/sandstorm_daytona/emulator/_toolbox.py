"""The toolbox (daemon) API at ``{toolboxProxyUrl}/{sandboxId}/...``.

Process execution, code-run, sessions, files, git, info and system metrics, all
executed for real in the sandbox's engine workspace. What the engine's public API has
(files, clone, metrics) goes through it; the rest runs as shell commands inside the
workspace, so paths mean what they mean to the sandboxed code.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import posixpath
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import sandstorm
from sandstorm import Capability

from ._engine import probe_dirs, shell
from ._errors import ApiError, DaemonError, iso
from ._records import SandboxRecord
from ._sessions import STATE_DIR, Command
from ._shell import q, script_in
from ._state import Emulator
from ._wire import (
    CodeRunRequest,
    CreateSession,
    ExecuteRequest,
    GitAdd,
    GitAddRemote,
    GitBranch,
    GitCheckout,
    GitClone,
    GitCommit,
    GitConfigureUser,
    GitCredentials,
    GitInit,
    GitRemote,
    GitReset,
    GitRestore,
    GitSetConfig,
    ReplaceRequest,
    SessionExecute,
    UpdateEnv,
    parse,
)

__all__ = ["toolbox_routes"]

BOUNDARY = "DAYTONA-FILE-BOUNDARY"
STDOUT_MARK = b"\x01\x01\x01"
STDERR_MARK = b"\x02\x02\x02"
_NOT_FOUND_RC = 44

Handler = Callable[[Request, SandboxRecord], Awaitable[Response]]


def emulator_of(request: Request | WebSocket) -> Emulator:
    """The emulator behind the app serving ``request``."""
    emulator: Emulator = request.app.state.emulator
    return emulator


async def sandbox_for(request: Request | WebSocket) -> SandboxRecord:
    """The started sandbox the toolbox path names, for the caller's organisation."""
    emulator = emulator_of(request)
    org: str = request.state.org
    record = emulator.find(org, request.path_params["sandbox_id"])
    if record.state != "started" or record.workspace_id is None:
        raise ApiError(400, f"Sandbox {record.id} is not started (state: {record.state})")
    record.touch(emulator.clock.now())
    return record


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler(request, record)`` as a Starlette endpoint."""

    async def run(request: Request) -> Response:
        record = await sandbox_for(request)
        return await handler(request, record)

    run.__name__ = handler.__name__
    return run


async def json_body(request: Request) -> Any:
    """The JSON body, or a 400 daemon error."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise DaemonError(400, "invalid request body: not JSON", "BAD_REQUEST") from None


def body_of(model: Any, data: Any) -> Any:
    """``data`` validated as ``model``; 400 naming the bad fields otherwise."""
    try:
        return parse(model, data)
    except ValueError as exc:
        raise DaemonError(400, f"invalid request body: {exc}", "BAD_REQUEST") from None


def query(request: Request, name: str, default: str | None = None) -> str:
    """A required query parameter (400 when missing and no default)."""
    value = request.query_params.get(name, default)
    if value is None:
        raise DaemonError(400, f"{name} is required", "BAD_REQUEST")
    return value


async def run_checked(
    emulator: Emulator,
    record: SandboxRecord,
    script: str,
    *,
    not_found: str | None = None,
    code: str = "BAD_REQUEST",
    stdin: bytes | None = None,
) -> sandstorm.RunResult:
    """Run a helper script; exit 44 means "not found", other failures are 400."""
    result = await shell(emulator, record, script, stdin=stdin, plain=True)
    if result.exit_code == _NOT_FOUND_RC and not_found is not None:
        raise DaemonError(404, not_found, "FILE_NOT_FOUND")
    if result.exit_code != 0:
        message = (result.stderr or result.stdout).strip() or f"exit status {result.exit_code}"
        raise DaemonError(400, message, code)
    return result


def _must_exist(path: str) -> str:
    return f"[ -e {q(path)} ] || [ -L {q(path)} ] || exit {_NOT_FOUND_RC}\n"


# ---------------------------------------------------------------------------- process


async def execute(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/execute``: ``{exitCode, result}`` with stdout+stderr combined."""
    emulator = emulator_of(request)
    body = body_of(ExecuteRequest, await json_body(request))
    _check_env(body.envs)
    script = script_in(body.command, cwd=body.cwd, env=body.envs, merge_stderr=True)
    timeout = float(body.timeout) if body.timeout else None
    try:
        result = await shell(emulator, record, script, timeout=timeout)
    except sandstorm.ExecutionTimeout:
        raise DaemonError(408, "command execution timeout", "REQUEST_TIMEOUT") from None
    return JSONResponse({"exitCode": result.exit_code, "result": result.stdout + result.stderr})


def _check_env(envs: dict[str, str] | None) -> None:
    for key in envs or {}:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise DaemonError(400, f"invalid environment variable name {key!r}", "BAD_REQUEST")


async def code_run(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/code-run``: python, javascript or typescript, as the daemon runs them."""
    emulator = emulator_of(request)
    body = body_of(CodeRunRequest, await json_body(request))
    _check_env(body.envs)
    language = body.language
    argv = " ".join(q(a) for a in body.argv or [])
    if language == "python":
        encoded = base64.b64encode(body.code.encode()).decode()
        command = f"printf '%s' {q(encoded)} | base64 -d | python3 -u - {argv}"
    elif language == "javascript":
        source = "process.argv.splice(1, 1);\n" + body.code
        encoded = base64.b64encode(source.encode()).decode()
        command = f"printf '%s' {q(encoded)} | base64 -d | node - {argv}"
    elif language == "typescript":
        source = "process.argv.splice(1, 1);\n" + body.code
        encoded = base64.b64encode(source.encode()).decode()
        tmp = '"${TMPDIR:-/tmp}/dtn_$$.ts"'
        command = (
            f"printf '%s' {q(encoded)} | base64 -d > {tmp}; "
            "npm_config_loglevel=error npx ts-node -T --ignore-diagnostics 5107 "
            f'-O \'{{"module":"CommonJS"}}\' {tmp} {argv}; __rc=$?; rm -f {tmp}; exit $__rc'
        )
    else:
        raise DaemonError(400, f"unsupported language: {language}", "BAD_REQUEST")
    script = script_in(command, env=body.envs, merge_stderr=True)
    timeout = float(body.timeout) if body.timeout else None
    try:
        result = await shell(emulator, record, script, timeout=timeout)
    except sandstorm.ExecutionTimeout:
        raise DaemonError(408, "command execution timeout", "REQUEST_TIMEOUT") from None
    return JSONResponse(
        {
            "exitCode": result.exit_code,
            "result": result.stdout + result.stderr,
            "artifacts": {"charts": []},
        }
    )


async def session_create(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/session`` -> 201."""
    body = body_of(CreateSession, await json_body(request))
    emulator_of(request).sessions.create(record, body.sessionId)
    return Response(status_code=201)


async def session_list(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session``."""
    return JSONResponse([s.to_json() for s in emulator_of(request).sessions.all(record)])


async def session_get(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/{session_id}``."""
    session = emulator_of(request).sessions.get(record, request.path_params["session_id"])
    return JSONResponse(session.to_json())


async def session_delete(request: Request, record: SandboxRecord) -> Response:
    """``DELETE /process/session/{session_id}`` -> 204."""
    await emulator_of(request).sessions.delete(record, request.path_params["session_id"])
    return Response(status_code=204)


async def session_exec(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/session/{id}/exec``: 200 with output, or 202 ``{cmdId}`` when async."""
    body = body_of(SessionExecute, await json_body(request))
    run_async = bool(body.runAsync or body.async_)
    sessions = emulator_of(request).sessions
    command = await sessions.execute(
        record, request.path_params["session_id"], body.command, run_async=run_async
    )
    if run_async:
        return JSONResponse({"cmdId": command.id}, status_code=202)
    return JSONResponse(
        {
            "cmdId": command.id,
            "output": command.text(),
            "stdout": command.text("stdout"),
            "stderr": command.text("stderr"),
            "exitCode": command.exit_code,
        }
    )


async def command_get(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/{id}/command/{cmd}``."""
    command = _command(request, record)
    return JSONResponse(command.to_json())


def _command(request: Request | WebSocket, record: SandboxRecord) -> Command:
    return emulator_of(request).sessions.command(
        record, request.path_params["session_id"], request.path_params["command_id"]
    )


async def command_logs(request: Request, record: SandboxRecord) -> Response:
    """``GET .../command/{cmd}/logs``: JSON for SDKs >= 0.167, raw text otherwise."""
    command = _command(request, record)
    if request.query_params.get("follow") == "true":
        raise DaemonError(400, "follow=true needs a WebSocket upgrade", "BAD_REQUEST")
    if _wants_json(request):
        return JSONResponse(
            {
                "output": command.text(),
                "stdout": command.text("stdout"),
                "stderr": command.text("stderr"),
            }
        )
    return Response(command.text().encode(), media_type="text/plain")


def _wants_json(request: Request) -> bool:
    version = request.headers.get("x-daytona-sdk-version")
    if not version:
        return False
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return True
    return parts >= (0, 167, 0)


async def command_logs_ws(websocket: WebSocket) -> None:
    """``.../command/{cmd}/logs?follow=true`` over WebSocket, with stdout/stderr markers."""
    try:
        record = await sandbox_for(websocket)
        command = _command(websocket, record)
    except (ApiError, DaemonError) as exc:
        await websocket.close(code=1008, reason=str(exc)[:100])
        return
    await websocket.accept()
    try:
        async for stream, text in command.follow():
            mark = STDOUT_MARK if stream == "stdout" else STDERR_MARK
            await websocket.send_bytes(mark + text.encode())
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return


async def command_input(request: Request, record: SandboxRecord) -> Response:
    """``POST .../command/{cmd}/input``: the engine runs commands without a terminal."""
    _command(request, record)
    raise DaemonError(
        400, "sending input to a running command is not supported by the emulator", "BAD_REQUEST"
    )


# ---------------------------------------------------------------------------- files


def _relative(path: str, work_dir: str) -> str | None:
    """``path`` relative to the workspace root, or None when it lies outside."""
    if not path or path == ".":
        return "."
    if not path.startswith("/"):
        return path
    root = work_dir.rstrip("/")
    if path.rstrip("/") == root:
        return "."
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


def _file_error(exc: BaseException, path: str) -> DaemonError:
    if isinstance(exc, FileNotFoundError):
        return DaemonError(404, f"file not found: {path}", "FILE_NOT_FOUND")
    if isinstance(exc, PermissionError):
        return DaemonError(403, f"permission denied: {path}", "FILE_ACCESS_DENIED")
    if isinstance(exc, IsADirectoryError):
        return DaemonError(400, f"{path} is a directory", "FILE_READ_FAILED")
    if isinstance(exc, sandstorm.WorkspaceError):
        return DaemonError(400, f"invalid path {path}: {exc}", "INVALID_FILE_PATH")
    return DaemonError(400, f"{path}: {exc}", "FILE_READ_FAILED")


async def write_bytes(emulator: Emulator, record: SandboxRecord, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` (work-dir relative or absolute), creating parents."""
    work, _ = await probe_dirs(emulator, record)
    relative = _relative(path, work)
    if relative is not None and Capability.FILES in emulator.provider.capabilities:
        try:
            await emulator.provider.write_file(record.workspace_id or "", relative, data)
        except (OSError, sandstorm.SandstormError) as exc:
            raise _file_error(exc, path) from None
        return
    script = f'mkdir -p -- "$(dirname -- {q(path)})" && cat > {q(path)}'
    await run_checked(emulator, record, script, stdin=data, code="FILE_ACCESS_DENIED")


async def read_bytes(emulator: Emulator, record: SandboxRecord, path: str) -> bytes:
    """The bytes at ``path``."""
    work, _ = await probe_dirs(emulator, record)
    relative = _relative(path, work)
    if relative is not None and Capability.FILES in emulator.provider.capabilities:
        try:
            return await emulator.provider.read_file(record.workspace_id or "", relative)
        except (OSError, sandstorm.SandstormError) as exc:
            raise _file_error(exc, path) from None
    script = _must_exist(path) + f"[ -d {q(path)} ] && exit 21\nbase64 -w0 < {q(path)}"
    result = await shell(emulator, record, script, plain=True)
    if result.exit_code == _NOT_FOUND_RC:
        raise DaemonError(404, f"file not found: {path}", "FILE_NOT_FOUND")
    if result.exit_code == 21:
        raise DaemonError(400, f"{path} is a directory", "FILE_READ_FAILED")
    if result.exit_code != 0:
        raise DaemonError(403, result.stderr.strip() or f"cannot read {path}", "FILE_ACCESS_DENIED")
    return base64.b64decode(result.stdout)


async def bulk_upload(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/bulk-upload``: ``files[i].path`` + ``files[i].file`` parts."""
    emulator = emulator_of(request)
    async with request.form(max_files=10_000, max_fields=10_000) as form:
        paths: dict[str, str] = {}
        files: dict[str, UploadFile] = {}
        for key, value in form.multi_items():
            if not key.startswith("files[") or "]." not in key:
                continue
            index, _, kind = key[len("files[") :].partition("].")
            if kind == "path" and isinstance(value, str):
                paths[index] = value
            elif kind == "file" and not isinstance(value, str):
                files[index] = value
        done: list[dict[str, Any]] = []
        errors: list[str] = []
        for index, upload in files.items():
            path = paths.get(index) or upload.filename or ""
            if not path:
                errors.append(f"files[{index}]: missing path")
                continue
            data = await upload.read()
            try:
                await write_bytes(emulator, record, path, data)
            except DaemonError as exc:
                errors.append(f"{path}: {exc.message}")
                continue
            done.append({"path": path, "bytes": len(data)})
    if errors:
        return JSONResponse({"errors": errors, "files": done}, status_code=400)
    return JSONResponse({"files": done})


async def bulk_download(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/bulk-download``: a multipart/form-data body, one part per path."""
    emulator = emulator_of(request)
    data = await json_body(request)
    paths = data.get("paths") if isinstance(data, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise DaemonError(
            400, "invalid request body: paths must be a list of strings", "BAD_REQUEST"
        )
    chunks: list[bytes] = []
    for path in paths:
        try:
            content = await read_bytes(emulator, record, path)
        except DaemonError as exc:
            payload = json.dumps(
                {"message": exc.message, "statusCode": exc.status, "code": exc.code}
            ).encode()
            chunks.append(_part("error", path, "application/json", payload))
            continue
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        chunks.append(_part("file", path, mime, content))
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return Response(b"".join(chunks), media_type=f"multipart/form-data; boundary={BOUNDARY}")


def _part(name: str, path: str, mime: str, payload: bytes) -> bytes:
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    encoded = urllib.parse.quote(path, safe="")
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{quoted}"; '
        f"filename*=utf-8''{encoded}\r\n"
        f"Content-Type: {mime}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload + b"\r\n"


async def download(request: Request, record: SandboxRecord) -> Response:
    """``GET /files/download?path=``: the raw bytes."""
    path = query(request, "path")
    content = await read_bytes(emulator_of(request), record, path)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def upload_v2(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/upload-v2?path=`` (and the older ``/files/upload``)."""
    path = query(request, "path")
    async with request.form() as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise DaemonError(400, "multipart field 'file' is required", "BAD_REQUEST")
        data = await upload.read()
    await write_bytes(emulator_of(request), record, path, data)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return JSONResponse({"name": name, "path": path, "type": "file"})


_FIND_FORMAT = r"%y\0%s\0%m\0%M\0%T@\0%u\0%g\0%f\0%P\0"
_FIELDS = 9


def _infos(output: str, base: str) -> list[dict[str, Any]]:
    fields = output.split("\0")
    infos = []
    for start in range(0, len(fields) - _FIELDS + 1, _FIELDS):
        kind, size, perm, mode, mtime, owner, group, name, path = fields[start : start + _FIELDS]
        moment = datetime.fromtimestamp(float(mtime), UTC)
        if path.split("/", 1)[0] == STATE_DIR and base in (".", ""):
            continue
        path = posixpath.normpath(posixpath.join(base, path)) if path else base
        infos.append(
            {
                "name": name,
                "path": path,
                "isDir": kind == "d",
                "size": int(size),
                "mode": mode,
                "permissions": f"{int(perm, 8):04o}",
                "owner": owner,
                "group": group,
                "modTime": moment.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
                "modifiedAt": iso(moment),
            }
        )
    return infos


async def list_files(request: Request, record: SandboxRecord) -> Response:
    """``GET /files?path=&depth=``."""
    path = request.query_params.get("path") or "."
    try:
        depth = max(1, int(request.query_params.get("depth", "1")))
    except ValueError:
        raise DaemonError(400, "depth must be an integer", "BAD_REQUEST") from None
    script = (
        _must_exist(path)
        + f"[ -d {q(path)} ] || exit 20\n"
        + f"find {q(path)} -mindepth 1 -maxdepth {depth} -printf '{_FIND_FORMAT}'"
    )
    result = await shell(emulator_of(request), record, script, plain=True)
    if result.exit_code == _NOT_FOUND_RC:
        raise DaemonError(404, f"directory not found: {path}", "FILE_NOT_FOUND")
    if result.exit_code == 20:
        raise DaemonError(400, f"{path} is not a directory", "INVALID_FILE_PATH")
    if result.exit_code != 0:
        raise DaemonError(403, result.stderr.strip(), "FILE_ACCESS_DENIED")
    infos = sorted(_infos(result.stdout, path), key=lambda i: i["path"])
    return JSONResponse(infos)


async def file_info(request: Request, record: SandboxRecord) -> Response:
    """``GET /files/info?path=``."""
    path = query(request, "path")
    script = _must_exist(path) + f"find {q(path)} -maxdepth 0 -printf '{_FIND_FORMAT}'"
    result = await run_checked(
        emulator_of(request), record, script, not_found=f"file not found: {path}"
    )
    infos = _infos(result.stdout, path)
    if not infos:
        raise DaemonError(404, f"file not found: {path}", "FILE_NOT_FOUND")
    return JSONResponse(infos[0])


async def create_folder(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/folder?path=&mode=`` -> 201."""
    path = query(request, "path")
    mode = request.query_params.get("mode") or "755"
    if not mode.isdigit() or any(ch > "7" for ch in mode):
        raise DaemonError(400, f"invalid mode {mode!r}: use octal such as 755", "BAD_REQUEST")
    await run_checked(emulator_of(request), record, f"mkdir -p -m {mode} -- {q(path)}")
    return Response(status_code=201)


async def delete_file(request: Request, record: SandboxRecord) -> Response:
    """``DELETE /files?path=&recursive=`` -> 204."""
    emulator = emulator_of(request)
    path = query(request, "path")
    recursive = request.query_params.get("recursive") == "true"
    work, _ = await probe_dirs(emulator, record)
    relative = _relative(path, work)
    if relative in (".", ""):
        raise DaemonError(400, "refusing to delete the working directory", "INVALID_FILE_PATH")
    flag = "-rf" if recursive else "-f"
    quoted = q(path)
    keep_dirs = f"if [ -d {quoted} ] && [ ! -L {quoted} ]; then rmdir -- {quoted}; exit $?; fi\n"
    script = _must_exist(path) + ("" if recursive else keep_dirs) + f"rm {flag} -- {quoted}"
    await run_checked(emulator, record, script, not_found=f"file not found: {path}")
    return Response(status_code=204)


async def move_file(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/move?source=&destination=``."""
    source = query(request, "source")
    destination = query(request, "destination")
    script = _must_exist(source) + f"mv -- {q(source)} {q(destination)}"
    await run_checked(emulator_of(request), record, script, not_found=f"file not found: {source}")
    return Response(status_code=200)


async def set_permissions(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/permissions?path=&owner=&group=&mode=``."""
    path = query(request, "path")
    lines = [_must_exist(path)]
    mode = request.query_params.get("mode")
    owner = request.query_params.get("owner")
    group = request.query_params.get("group")
    if mode:
        lines.append(f"chmod {q(mode)} -- {q(path)} || exit 1\n")
    if owner:
        lines.append(f"chown {q(owner)} -- {q(path)} || exit 1\n")
    if group:
        lines.append(f"chgrp {q(group)} -- {q(path)} || exit 1\n")
    await run_checked(
        emulator_of(request),
        record,
        "".join(lines),
        not_found=f"file not found: {path}",
        code="FILE_ACCESS_DENIED",
    )
    return Response(status_code=200)


async def find_in_files(request: Request, record: SandboxRecord) -> Response:
    """``GET /files/find?path=&pattern=``: ``[{file, line, content}]`` (grep -rn)."""
    path = query(request, "path")
    pattern = query(request, "pattern")
    script = _must_exist(path) + f"grep -rnI --null -e {q(pattern)} -- {q(path)}; [ $? -le 1 ]"
    result = await run_checked(emulator_of(request), record, script, not_found=f"not found: {path}")
    matches = []
    for line in result.stdout.splitlines():
        name, sep, rest = line.partition("\0")
        number, _, content = rest.partition(":")
        if sep and number.isdigit():
            matches.append({"file": name, "line": int(number), "content": content})
    return JSONResponse(matches)


async def search_files(request: Request, record: SandboxRecord) -> Response:
    """``GET /files/search?path=&pattern=``: names matching a glob, ``{files: [...]}``."""
    path = query(request, "path")
    pattern = query(request, "pattern")
    script = _must_exist(path) + f"find {q(path)} -name {q(pattern)} -print0"
    result = await run_checked(emulator_of(request), record, script, not_found=f"not found: {path}")
    return JSONResponse({"files": [p for p in result.stdout.split("\0") if p]})


async def replace_in_files(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/replace``: literal replacement in each file."""
    emulator = emulator_of(request)
    body = body_of(ReplaceRequest, await json_body(request))
    results = []
    for path in body.files:
        try:
            content = await read_bytes(emulator, record, path)
            text = content.decode()
            await write_bytes(
                emulator, record, path, text.replace(body.pattern, body.newValue).encode()
            )
        except (DaemonError, UnicodeDecodeError) as exc:
            message = exc.message if isinstance(exc, DaemonError) else "not a UTF-8 text file"
            results.append({"file": path, "success": False, "error": message})
            continue
        results.append({"file": path, "success": True})
    return JSONResponse(results)


# ---------------------------------------------------------------------------- git


async def git(
    emulator: Emulator, record: SandboxRecord, path: str, args: str, *, code: str = "BAD_REQUEST"
) -> sandstorm.RunResult:
    """Run ``git -C path args`` in the sandbox; failures become daemon errors."""
    script = (
        f"[ -d {q(path)} ] || exit {_NOT_FOUND_RC}\n"
        f"git -c safe.directory='*' -c core.quotepath=off -C {q(path)} {args}"
    )
    result = await shell(emulator, record, script, plain=True)
    if result.exit_code == _NOT_FOUND_RC:
        raise DaemonError(404, f"repository not found: {path}", "GIT_REPO_NOT_FOUND")
    if result.exit_code != 0:
        message = (result.stderr or result.stdout).strip() or f"git exited {result.exit_code}"
        if "not a git repository" in message:
            raise DaemonError(404, message, "GIT_REPO_NOT_FOUND")
        raise DaemonError(400, message, code)
    return result


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username and not password:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    auth = urllib.parse.quote(username or "git", safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


async def git_clone(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/clone``: through the engine's clone, then ``commit_id`` checkout."""
    emulator = emulator_of(request)
    body = body_of(GitClone, await json_body(request))
    work, _ = await probe_dirs(emulator, record)
    relative = _relative(body.path, work)
    username, password = body.username, body.password
    if not username and not password:
        host = (urllib.parse.urlsplit(body.url).hostname or "").lower()
        username, password = emulator.rt(record).credentials.get(host, (None, None))
    url = _with_credentials(body.url, username, password)
    if relative is None:
        raise DaemonError(
            400,
            f"clone target {body.path} must be inside the working directory {work}",
            "INVALID_FILE_PATH",
        )
    try:
        if Capability.GIT in emulator.provider.capabilities and not body.depth:
            await emulator.provider.git_clone(
                record.workspace_id or "", url, branch=body.branch, path=relative
            )
        else:
            await _clone_in_sandbox(emulator, record, body, url)
    except sandstorm.SandstormError as exc:
        message = str(exc).replace(url, body.url) if url != body.url else str(exc)
        lowered = message.lower()
        if "not found" in lowered or "does not exist" in lowered or "not appear" in lowered:
            raise DaemonError(404, message, "GIT_REPO_NOT_FOUND") from None
        if "authentication" in lowered:
            raise DaemonError(401, message, "GIT_AUTH_FAILED") from None
        raise DaemonError(400, message, "GIT_TRANSPORT_FAILED") from None
    if body.commit_id:
        await git(emulator, record, body.path, f"checkout -q {q(body.commit_id)}")
    return Response(status_code=200)


async def _clone_in_sandbox(
    emulator: Emulator, record: SandboxRecord, body: GitClone, url: str
) -> None:
    """``git clone`` run by the sandbox itself (engines without a clone primitive)."""
    args = ["clone", "-q"]
    if body.branch:
        args += ["--branch", body.branch]
    if body.depth:
        args += ["--depth", str(body.depth)]
    if body.insecure_skip_tls:
        args = ["-c", "http.sslVerify=false", *args]
    script = "git " + " ".join(q(a) for a in args) + f" -- {q(url)} {q(body.path)}"
    result = await shell(emulator, record, script, plain=True)
    if result.exit_code != 0:
        raise sandstorm.WorkspaceError((result.stderr or result.stdout).strip())


_STATUS = {
    " ": "Unmodified",
    "?": "Untracked",
    "M": "Modified",
    "A": "Added",
    "D": "Deleted",
    "R": "Renamed",
    "C": "Copied",
    "U": "Updated but unmerged",
    "T": "Modified",
    "!": "Untracked",
}


async def git_status(request: Request, record: SandboxRecord) -> Response:
    """``GET /git/status?path=``."""
    path = query(request, "path")
    result = await git(emulator_of(request), record, path, "status --porcelain=v1 -b -uall -z")
    entries = result.stdout.split("\0")
    head = entries[0][3:] if entries and entries[0].startswith("## ") else ""
    body: dict[str, Any] = {"currentBranch": "", "fileStatus": [], "ahead": 0, "behind": 0}
    branch_part, _, tracking = head.partition(" [")
    if branch_part.startswith("No commits yet on "):
        branch_part = branch_part[len("No commits yet on ") :]
    if branch_part.startswith("HEAD (no branch)"):
        body["detached"] = True
        branch_part = "HEAD"
    local, sep, upstream = branch_part.partition("...")
    body["currentBranch"] = local
    body["branchPublished"] = bool(sep)
    if sep:
        body["upstream"] = upstream
    for item in tracking.rstrip("]").split(", "):
        word, _, number = item.partition(" ")
        if word in ("ahead", "behind") and number.isdigit():
            body[word] = int(number)
    index = 1
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        x, y, name = entry[0], entry[1], entry[3:]
        extra = ""
        if x in "RC":
            extra = entries[index] if index < len(entries) else ""
            index += 1
        body["fileStatus"].append(
            {
                "name": name,
                "staging": _STATUS.get(x, "Modified") if x != "?" else "Untracked",
                "worktree": _STATUS.get(y, "Modified"),
                "extra": extra,
            }
        )
    return JSONResponse(body)


async def git_branches(request: Request, record: SandboxRecord) -> Response:
    """``GET /git/branches?path=``."""
    emulator = emulator_of(request)
    path = query(request, "path")
    listing = await git(emulator, record, path, "branch --format='%(refname:short)'")
    current = await git(emulator, record, path, "symbolic-ref --short -q HEAD || true")
    branches = [line for line in listing.stdout.splitlines() if line and not line.startswith("(")]
    body: dict[str, Any] = {"branches": branches}
    if current.stdout.strip():
        body["current"] = current.stdout.strip()
    return JSONResponse(body)


async def git_create_branch(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/branches`` -> 201."""
    body = body_of(GitBranch, await json_body(request))
    try:
        await git(emulator_of(request), record, body.path, f"branch -- {q(body.name)}")
    except DaemonError as exc:
        if "already exists" in exc.message:
            raise DaemonError(409, exc.message, "GIT_BRANCH_EXISTS") from None
        raise
    return Response(status_code=201)


async def git_delete_branch(request: Request, record: SandboxRecord) -> Response:
    """``DELETE /git/branches`` -> 204."""
    body = body_of(GitBranch, await json_body(request))
    try:
        await git(emulator_of(request), record, body.path, f"branch -D -- {q(body.name)}")
    except DaemonError as exc:
        if "not found" in exc.message:
            raise DaemonError(404, exc.message, "GIT_BRANCH_NOT_FOUND") from None
        raise
    return Response(status_code=204)


async def git_checkout(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/checkout``."""
    body = body_of(GitCheckout, await json_body(request))
    try:
        await git(emulator_of(request), record, body.path, f"checkout -q {q(body.branch)} --")
    except DaemonError as exc:
        if "did not match" in exc.message or "invalid reference" in exc.message:
            raise DaemonError(404, exc.message, "GIT_BRANCH_NOT_FOUND") from None
        raise
    return Response(status_code=200)


async def git_add(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/add``."""
    body = body_of(GitAdd, await json_body(request))
    files = " ".join(q(f) for f in body.files) or "."
    await git(emulator_of(request), record, body.path, f"add -A -- {files}")
    return Response(status_code=200)


async def git_commit(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/commit`` -> ``{hash}``."""
    emulator = emulator_of(request)
    body = body_of(GitCommit, await json_body(request))
    who = f"-c user.name={q(body.author)} -c user.email={q(body.email)}"
    empty = " --allow-empty" if body.allow_empty else ""
    author = q(f"{body.author} <{body.email}>")
    await git(
        emulator,
        record,
        body.path,
        f"{who} commit -q{empty} --author={author} -m {q(body.message)}",
    )
    head = await git(emulator, record, body.path, "rev-parse HEAD")
    return JSONResponse({"hash": head.stdout.strip()})


async def git_history(request: Request, record: SandboxRecord) -> Response:
    """``GET /git/history?path=``."""
    path = query(request, "path")
    result = await git(
        emulator_of(request), record, path, "log --format='%H%x00%an%x00%ae%x00%aI%x00%B%x1e'"
    )
    commits = []
    for entry in result.stdout.split("\x1e"):
        fields = entry.strip("\n").split("\0")
        if len(fields) == 5:
            sha, name, email, when, message = fields
            commits.append(
                {
                    "hash": sha,
                    "author": name,
                    "email": email,
                    "timestamp": when,
                    "message": message.strip(),
                }
            )
    return JSONResponse(commits)


async def git_push(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/push``."""
    body = body_of(GitRemote, await json_body(request))
    args = "push"
    if body.set_upstream:
        args += " --set-upstream"
    if body.remote or body.branch:
        args += f" {q(body.remote or 'origin')}"
    if body.branch:
        args += f" {q(body.branch)}"
    await git(emulator_of(request), record, body.path, args, code="GIT_PUSH_REJECTED")
    return Response(status_code=200)


async def git_pull(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/pull``."""
    body = body_of(GitRemote, await json_body(request))
    args = "pull --no-rebase"
    if body.remote or body.branch:
        args += f" {q(body.remote or 'origin')}"
    if body.branch:
        args += f" {q(body.branch)}"
    await git(emulator_of(request), record, body.path, args, code="GIT_TRANSPORT_FAILED")
    return Response(status_code=200)


_SCOPES = ("global", "local", "system")


def _scope(scope: str | None, path: str | None) -> tuple[str, str]:
    """(``git -C`` target, ``--scope`` flag) for a config call."""
    scope = scope or "global"
    if scope not in _SCOPES:
        raise DaemonError(400, f"scope must be one of {', '.join(_SCOPES)}", "BAD_REQUEST")
    if scope == "local" and not path:
        raise DaemonError(400, "path is required when scope is local", "BAD_REQUEST")
    return path or ".", f"--{scope}"


_HOME = 'HOME="${HOME:-$PWD}" '


async def git_init(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/init`` -> 201."""
    body = body_of(GitInit, await json_body(request))
    args = "init -q"
    if body.bare:
        args += " --bare"
    if body.initial_branch:
        args += f" -b {q(body.initial_branch)}"
    script = f"mkdir -p -- {q(body.path)} && git -C {q(body.path)} {args}"
    await run_checked(emulator_of(request), record, script)
    return Response(status_code=201)


async def git_reset(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/reset``."""
    body = body_of(GitReset, await json_body(request))
    mode = body.mode or "mixed"
    if mode not in ("soft", "mixed", "hard", "merge", "keep"):
        raise DaemonError(400, "mode must be soft, mixed, hard, merge or keep", "BAD_REQUEST")
    target = q(body.target or "HEAD")
    if body.files:
        args = f"reset -q {target} -- " + " ".join(q(f) for f in body.files)
    else:
        args = f"reset -q --{mode} {target}"
    await git(emulator_of(request), record, body.path, args)
    return Response(status_code=200)


async def git_restore(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/restore``."""
    body = body_of(GitRestore, await json_body(request))
    args = "restore"
    if body.source:
        args += f" --source={q(body.source)}"
    if body.staged:
        args += " --staged"
    if body.worktree or not body.staged:
        args += " --worktree"
    args += " -- " + " ".join(q(f) for f in body.files)
    await git(emulator_of(request), record, body.path, args)
    return Response(status_code=200)


async def git_remotes(request: Request, record: SandboxRecord) -> Response:
    """``GET /git/remotes?path=``."""
    path = query(request, "path")
    result = await git(emulator_of(request), record, path, "remote -v")
    remotes: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] not in remotes:
            remotes[parts[0]] = parts[1]
    return JSONResponse({"remotes": [{"name": n, "url": u} for n, u in remotes.items()]})


async def git_add_remote(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/remotes`` -> 201."""
    emulator = emulator_of(request)
    body = body_of(GitAddRemote, await json_body(request))
    if body.overwrite:
        await git(emulator, record, body.path, f"remote remove {q(body.name)} 2>/dev/null || true")
    await git(emulator, record, body.path, f"remote add {q(body.name)} {q(body.url)}")
    if body.fetch:
        await git(
            emulator, record, body.path, f"fetch -q {q(body.name)}", code="GIT_TRANSPORT_FAILED"
        )
    return Response(status_code=201)


async def git_get_config(request: Request, record: SandboxRecord) -> Response:
    """``GET /git/config?key=&path=&scope=`` -> ``{value}`` (null when unset)."""
    key = query(request, "key")
    target, flag = _scope(request.query_params.get("scope"), request.query_params.get("path"))
    script = f"{_HOME}git -c safe.directory='*' -C {q(target)} config {flag} --get {q(key)}"
    result = await shell(emulator_of(request), record, script, plain=True)
    if result.exit_code not in (0, 1):
        raise DaemonError(400, result.stderr.strip() or "git config failed", "BAD_REQUEST")
    value = result.stdout.rstrip("\n") if result.exit_code == 0 else None
    return JSONResponse({"value": value})


async def git_set_config(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/config``."""
    body = body_of(GitSetConfig, await json_body(request))
    target, flag = _scope(body.scope, body.path)
    base = f"{_HOME}git -c safe.directory='*' -C {q(target)} config {flag}"
    script = f"{base} {q(body.key)} {q(body.value)}"
    await run_checked(emulator_of(request), record, script)
    return Response(status_code=200)


async def git_configure_user(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/config/user``."""
    body = body_of(GitConfigureUser, await json_body(request))
    target, flag = _scope(body.scope, body.path)
    base = f"{_HOME}git -c safe.directory='*' -C {q(target)} config {flag}"
    script = f"{base} user.name {q(body.name)} && {base} user.email {q(body.email)}"
    await run_checked(emulator_of(request), record, script)
    return Response(status_code=200)


async def git_credentials(request: Request, record: SandboxRecord) -> Response:
    """``POST /git/credentials``: later clones of that host use them (never logged)."""
    body = body_of(GitCredentials, await json_body(request))
    host = (body.host or "github.com").lower()
    emulator_of(request).rt(record).credentials[host] = (body.username, body.password)
    return Response(status_code=200)


async def update_env(request: Request, record: SandboxRecord) -> Response:
    """``POST /env``: set and unset variables for every later command."""
    body = body_of(UpdateEnv, await json_body(request))
    _check_env(body.set)
    for name in body.unset or []:
        record.env.pop(name, None)
    record.env.update(body.set or {})
    return JSONResponse(dict(record.env))


async def initialize(request: Request, record: SandboxRecord) -> Response:
    """``POST /init``: the daemon is always initialised here."""
    return JSONResponse({})


async def entrypoint_session(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/entrypoint``: snapshots here have no entrypoint."""
    return JSONResponse({"sessionId": "entrypoint", "commands": []})


async def entrypoint_logs(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/entrypoint/logs``."""
    return JSONResponse({"output": "", "stdout": "", "stderr": ""})


# ---------------------------------------------------------------------------- info


async def work_dir(request: Request, record: SandboxRecord) -> Response:
    """``GET /work-dir``."""
    work, _ = await probe_dirs(emulator_of(request), record)
    return JSONResponse({"dir": work})


async def home_dir(request: Request, record: SandboxRecord) -> Response:
    """``GET /user-home-dir``."""
    _, home = await probe_dirs(emulator_of(request), record)
    return JSONResponse({"dir": home})


async def version(request: Request, record: SandboxRecord) -> Response:
    """``GET /version``."""
    from .. import emulator as package

    return JSONResponse({"version": package.DAEMON_VERSION})


async def system_metrics(request: Request, record: SandboxRecord) -> Response:
    """``GET /system/metrics``: a fresh reading from the engine's accounting."""
    emulator = emulator_of(request)
    try:
        sample = await emulator.sample(record)
    except sandstorm.CapabilityNotSupported as exc:
        raise DaemonError(501, str(exc), "NOT_IMPLEMENTED") from None
    return JSONResponse(
        {
            "cpuCount": sample.cpu_count,
            "cpuUsedPct": sample.cpu_used_pct,
            "memTotal": sample.mem_total,
            "memUsed": sample.mem_used,
            "diskTotal": sample.disk_total,
            "diskUsed": sample.disk_used,
            "diskFree": max(0, sample.disk_total - sample.disk_used),
            "timestamp": iso(sample.at),
            "timestampUnix": int(sample.at.timestamp()),
        }
    )


async def ports(request: Request, record: SandboxRecord) -> Response:
    """``GET /port``: the engine isolates networking, so no ports are exposed."""
    return JSONResponse({"ports": []})


async def port_in_use(request: Request, record: SandboxRecord) -> Response:
    """``GET /port/{port}/in-use``."""
    return JSONResponse({"isInUse": False})


def toolbox_routes() -> list[BaseRoute]:
    """Routes relative to ``/toolbox/{sandbox_id}``."""
    p = "/toolbox/{sandbox_id}"
    s = p + "/process/session/{session_id}"
    c = s + "/command/{command_id}"
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/process/execute", execute),
        ("POST", "/process/code-run", code_run),
        ("POST", "/process/session", session_create),
        ("GET", "/process/session", session_list),
        ("POST", "/files/bulk-upload", bulk_upload),
        ("POST", "/files/bulk-download", bulk_download),
        ("GET", "/files/download", download),
        ("POST", "/files/upload-v2", upload_v2),
        ("POST", "/files/upload", upload_v2),
        ("GET", "/files", list_files),
        ("DELETE", "/files", delete_file),
        ("GET", "/files/info", file_info),
        ("POST", "/files/folder", create_folder),
        ("POST", "/files/move", move_file),
        ("POST", "/files/permissions", set_permissions),
        ("GET", "/files/find", find_in_files),
        ("GET", "/files/search", search_files),
        ("POST", "/files/replace", replace_in_files),
        ("POST", "/git/clone", git_clone),
        ("GET", "/git/status", git_status),
        ("GET", "/git/branches", git_branches),
        ("POST", "/git/branches", git_create_branch),
        ("DELETE", "/git/branches", git_delete_branch),
        ("POST", "/git/checkout", git_checkout),
        ("POST", "/git/add", git_add),
        ("POST", "/git/commit", git_commit),
        ("GET", "/git/history", git_history),
        ("POST", "/git/push", git_push),
        ("POST", "/git/pull", git_pull),
        ("GET", "/work-dir", work_dir),
        ("GET", "/user-home-dir", home_dir),
        ("GET", "/version", version),
        ("GET", "/system/metrics", system_metrics),
        ("GET", "/port", ports),
        ("POST", "/git/init", git_init),
        ("POST", "/git/reset", git_reset),
        ("POST", "/git/restore", git_restore),
        ("GET", "/git/remotes", git_remotes),
        ("POST", "/git/remotes", git_add_remote),
        ("GET", "/git/config", git_get_config),
        ("POST", "/git/config", git_set_config),
        ("POST", "/git/config/user", git_configure_user),
        ("POST", "/git/credentials", git_credentials),
        ("POST", "/env", update_env),
        ("POST", "/init", initialize),
        ("GET", "/process/session/entrypoint", entrypoint_session),
        ("GET", "/process/session/entrypoint/logs", entrypoint_logs),
    ]
    routes: list[BaseRoute] = [
        Route(p + path, endpoint(handler), methods=[method]) for method, path, handler in table
    ]
    routes += [
        Route(s, endpoint(session_get), methods=["GET"]),
        Route(s, endpoint(session_delete), methods=["DELETE"]),
        Route(s + "/exec", endpoint(session_exec), methods=["POST"]),
        Route(c, endpoint(command_get), methods=["GET"]),
        Route(c + "/logs", endpoint(command_logs), methods=["GET"]),
        WebSocketRoute(c + "/logs", command_logs_ws),
        Route(c + "/input", endpoint(command_input), methods=["POST"]),
        Route(p + "/port/{port:int}/in-use", endpoint(port_in_use), methods=["GET"]),
    ]
    return routes
