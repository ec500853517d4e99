"""Toolbox file-system endpoints, through the engine's file API or shell helpers."""

from __future__ import annotations

import base64
import json
import mimetypes
import posixpath
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import sandstorm
from sandstorm import Capability

from ._daemon import (
    BOUNDARY,
    NOT_FOUND_RC,
    body_of,
    emulator_of,
    json_body,
    must_exist,
    query,
    run_checked,
)
from ._errors import DaemonError, iso
from ._records import SandboxRecord
from ._shell import q
from ._state import Emulator
from ._wire import (
    ReplaceRequest,
)
from ._workspace_shell import probe_dirs, shell

__all__ = [
    "bulk_download",
    "bulk_upload",
    "check_inside",
    "create_folder",
    "delete_file",
    "download",
    "file_info",
    "find_in_files",
    "list_files",
    "move_file",
    "read_bytes",
    "relative_path",
    "replace_in_files",
    "search_files",
    "set_permissions",
    "upload_v2",
    "write_bytes",
]


def relative_path(path: str, work_dir: str) -> str | None:
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


def check_inside(path: str) -> str:
    """``path``, or 400 ``INVALID_FILE_PATH`` when it is relative and climbs out of the
    working directory (``../``): what a download of such a path answers."""
    if not path.startswith("/"):
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            raise DaemonError(
                400,
                f"invalid path {path}: it leaves the working directory",
                "INVALID_FILE_PATH",
            )
    return path


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
    relative = relative_path(path, work)
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
    relative = relative_path(path, work)
    if relative is not None and Capability.FILES in emulator.provider.capabilities:
        try:
            return await emulator.provider.read_file(record.workspace_id or "", relative)
        except (OSError, sandstorm.SandstormError) as exc:
            raise _file_error(exc, path) from None
    return await _read_through_shell(emulator, record, path)


SHELL_READ_CHUNK = 3 << 20
"""Raw bytes per shell read: 4 MiB once base64-encoded, within an engine's per-stream
output cap (the ``local`` engine keeps 4 MiB by default), so no chunk is ever cut."""


async def _read_through_shell(emulator: Emulator, record: SandboxRecord, path: str) -> bytes:
    """The bytes at ``path`` (outside the engine's file API), read in base64 chunks.

    A chunk the engine still truncated fails the read (``FILE_READ_FAILED``) rather than
    returning a shortened file.
    """
    quoted = q(path)
    checks = must_exist(path) + f"[ -d {quoted} ] && exit 21\n[ -r {quoted} ] || exit 13\n"
    data = bytearray()
    while True:
        read = (
            f"dd if={quoted} bs=65536 skip={len(data)} count={SHELL_READ_CHUNK} "
            "iflag=skip_bytes,count_bytes status=none | base64 -w0"
        )
        result = await shell(emulator, record, checks + read, plain=True)
        if result.exit_code == NOT_FOUND_RC:
            raise DaemonError(404, f"file not found: {path}", "FILE_NOT_FOUND")
        if result.exit_code == 21:
            raise DaemonError(400, f"{path} is a directory", "FILE_READ_FAILED")
        if result.exit_code != 0:
            message = result.stderr.strip() or f"cannot read {path}"
            raise DaemonError(403, message, "FILE_ACCESS_DENIED")
        if result.stdout_truncated:
            raise DaemonError(
                400, f"{path}: the engine cut the file's output short", "FILE_READ_FAILED"
            )
        chunk = base64.b64decode(result.stdout)
        data += chunk
        if len(chunk) < SHELL_READ_CHUNK:
            return bytes(data)


async def bulk_upload(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/bulk-upload``: ``files[i].path`` + ``files[i].file`` parts."""
    emulator = emulator_of(request)
    _require_multipart(request)
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


def _require_multipart(request: Request) -> None:
    """400 unless the body is multipart/form-data with a boundary (the daemon's
    ``c.MultipartForm()`` fails the same way: Go's ``http.ErrNotMultipart``)."""
    kind, _, params = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/form-data" or "boundary=" not in params.lower():
        raise DaemonError(400, "request Content-Type isn't multipart/form-data", "BAD_REQUEST")


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
    _require_multipart(request)
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
    path = check_inside(request.query_params.get("path") or ".")
    try:
        depth = max(1, int(request.query_params.get("depth", "1")))
    except ValueError:
        raise DaemonError(400, "depth must be an integer", "BAD_REQUEST") from None
    script = (
        must_exist(path)
        + f"[ -d {q(path)} ] || exit 20\n"
        + f"find {q(path)} -mindepth 1 -maxdepth {depth} -printf '{_FIND_FORMAT}'"
    )
    result = await shell(emulator_of(request), record, script, plain=True)
    if result.exit_code == NOT_FOUND_RC:
        raise DaemonError(404, f"directory not found: {path}", "FILE_NOT_FOUND")
    if result.exit_code == 20:
        raise DaemonError(400, f"{path} is not a directory", "INVALID_FILE_PATH")
    if result.exit_code != 0:
        raise DaemonError(403, result.stderr.strip(), "FILE_ACCESS_DENIED")
    infos = sorted(_infos(result.stdout, path), key=lambda i: i["path"])
    return JSONResponse(infos)


async def file_info(request: Request, record: SandboxRecord) -> Response:
    """``GET /files/info?path=``."""
    path = check_inside(query(request, "path"))
    script = must_exist(path) + f"find {q(path)} -maxdepth 0 -printf '{_FIND_FORMAT}'"
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
    relative = relative_path(path, work)
    if relative in (".", ""):
        raise DaemonError(400, "refusing to delete the working directory", "INVALID_FILE_PATH")
    flag = "-rf" if recursive else "-f"
    quoted = q(path)
    keep_dirs = f"if [ -d {quoted} ] && [ ! -L {quoted} ]; then rmdir -- {quoted}; exit $?; fi\n"
    script = must_exist(path) + ("" if recursive else keep_dirs) + f"rm {flag} -- {quoted}"
    await run_checked(emulator, record, script, not_found=f"file not found: {path}")
    return Response(status_code=204)


async def move_file(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/move?source=&destination=``."""
    source = query(request, "source")
    destination = query(request, "destination")
    script = must_exist(source) + f"mv -- {q(source)} {q(destination)}"
    await run_checked(emulator_of(request), record, script, not_found=f"file not found: {source}")
    return Response(status_code=200)


async def set_permissions(request: Request, record: SandboxRecord) -> Response:
    """``POST /files/permissions?path=&owner=&group=&mode=``."""
    path = query(request, "path")
    lines = [must_exist(path)]
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
    script = must_exist(path) + f"grep -rnI --null -e {q(pattern)} -- {q(path)}; [ $? -le 1 ]"
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
    script = must_exist(path) + f"find {q(path)} -name {q(pattern)} -print0"
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
