"""The MCP tools: argument models (their JSON schemas are what the model reads) and the
calls each makes through the public provider API (so hooks and the audit log see them)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from .._capabilities import Capability
from .._errors import ContextNotFound, ExecutionTimeout, InvalidArgument
from .._interactive import Execution
from .._models import RunResult
from .._provider import AsyncProvider
from ._session import ServerOptions, Session

__all__ = ["TOOLS", "Content", "ToolSpec", "available", "truncate"]

Content = types.TextContent | types.ImageContent
Handler = Callable[[Session, Any], Awaitable[list[Content]]]

_MAX_CODE = 1_000_000
_MAX_PATH = 4096


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Timeout = Annotated[
    float | None,
    Field(
        default=None,
        gt=0,
        description="seconds before the call is stopped (default and maximum: see the tool "
        "description)",
    ),
]


class RunCodeArgs(_Args):
    """Arguments of ``run_code``."""

    code: str = Field(max_length=_MAX_CODE, description="the source code to run")
    language: str = Field(
        default="python",
        max_length=64,
        description="the language of the code, one of the provider's languages",
    )
    timeout: Timeout = None


class RunCommandArgs(_Args):
    """Arguments of ``run_command``."""

    command: str = Field(
        min_length=1, max_length=_MAX_CODE, description="a shell command line (bash or sh)"
    )
    timeout: Timeout = None


class WriteFileArgs(_Args):
    """Arguments of ``write_file``."""

    path: str = Field(
        min_length=1, max_length=_MAX_PATH, description="file path, relative to the workspace"
    )
    content: str = Field(description="the file's content: text, or base64 when encoding is base64")
    encoding: Literal["text", "base64"] = Field(
        default="text", description="'text' writes content as UTF-8; 'base64' decodes it first"
    )


class ReadFileArgs(_Args):
    """Arguments of ``read_file``."""

    path: str = Field(
        min_length=1, max_length=_MAX_PATH, description="file path, relative to the workspace"
    )
    encoding: Literal["auto", "text", "base64"] = Field(
        default="auto",
        description="'auto' returns UTF-8 text when the file is text, else base64",
    )


class ListFilesArgs(_Args):
    """Arguments of ``list_files``."""

    path: str = Field(
        default=".",
        min_length=1,
        max_length=_MAX_PATH,
        description="directory, relative to the workspace",
    )


class StartProcessArgs(_Args):
    """Arguments of ``start_process``."""

    command: str = Field(
        min_length=1, max_length=_MAX_CODE, description="a shell command line to run in background"
    )


class ProcessArgs(_Args):
    """Arguments of ``process_logs`` and ``stop_process``."""

    process_id: str = Field(
        min_length=1, max_length=256, description="the id start_process returned"
    )


class ExposePortArgs(_Args):
    """Arguments of ``expose_port``."""

    port: int = Field(ge=1, le=65535, description="a TCP port a process in the sandbox listens on")


class SnapshotArgs(_Args):
    """Arguments of ``snapshot``."""

    name: str | None = Field(
        default=None, min_length=1, max_length=128, description="an optional name for it"
    )


class RestoreArgs(_Args):
    """Arguments of ``restore``."""

    snapshot_id: str = Field(min_length=1, max_length=256, description="the id snapshot returned")


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what the model reads, what it needs, and what it does."""

    name: str
    description: str
    args: type[_Args]
    handler: Handler
    needs: Capability | None = None
    language: str | None = None
    """A language the provider must support for the tool to be listed."""

    def tool(self, options: ServerOptions) -> types.Tool:
        """The MCP tool declaration."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        props = schema.get("properties", {})
        for prop in props.values():
            prop.pop("title", None)
        for branch in props.get("timeout", {}).get("anyOf", []):
            if branch.get("type") == "number":
                branch["maximum"] = options.max_timeout
        return types.Tool(
            name=self.name,
            description=self.description.format(
                max_output=options.max_output,
                default_timeout=_seconds(options.default_timeout),
                max_timeout=_seconds(options.max_timeout),
                max_file=options.max_file_bytes,
                max_snapshots=options.max_snapshots,
                max_processes=options.max_processes,
                max_ports=options.max_ports,
            ),
            input_schema=schema,
        )


def available(provider: AsyncProvider, capabilities: frozenset[Capability]) -> list[ToolSpec]:
    """The tools this provider can serve: those whose capability (and language) it has."""
    return [
        spec
        for spec in TOOLS
        if (spec.needs is None or spec.needs in capabilities)
        and (spec.language is None or spec.language in provider.languages)
    ]


# ---------------------------------------------------------------------- output


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a notice saying how much was left out."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return (
        text[:limit] + f"\n[... output truncated: {cut} more characters not shown (limit {limit}); "
        "write large output to a file and read parts of it instead]"
    )


def _text(text: str) -> types.TextContent:
    return types.TextContent(text=text)


def _report(
    options: ServerOptions, exit_code: int | None, stdout: str, stderr: str, extra: str = ""
) -> str:
    """One compact text block: exit code, then stdout and stderr, sharing the output limit."""
    parts = [] if exit_code is None else [f"exit_code: {exit_code}"]
    budget = options.max_output
    out = truncate(stdout, max(budget - min(len(stderr), budget // 2), budget // 2))
    err = truncate(stderr, max(budget - len(stdout), budget // 2))
    if stdout:
        parts.append("stdout:\n" + out)
    if stderr:
        parts.append("stderr:\n" + err)
    if extra:
        # the value of the last expression and a traceback count against the limit too
        used = len(out) * bool(stdout) + len(err) * bool(stderr)
        parts.append(truncate(extra, max(budget - used, budget // 4)))
    if not stdout and not stderr and not extra:
        parts.append("(no output)")
    return "\n".join(parts)


def _run_result(options: ServerOptions, result: RunResult) -> list[Content]:
    notes = []
    if result.stdout_truncated or result.stderr_truncated:
        notes.append("note: the provider's output cap cut the output")
    if result.reason != "exited":
        notes.append(
            f"ended: {result.reason}" + (f" (signal {result.signal})" if result.signal else "")
        )
    report = _report(options, result.exit_code, result.stdout, result.stderr, "\n".join(notes))
    return [_text(report)]


def _execution(options: ServerOptions, execution: Execution) -> list[Content]:
    blocks: list[Content] = []
    texts = []
    for result in execution.results:
        image = _image(result.png, result.data.get("image/jpeg"))
        if image is not None:
            data, mime = image
            if len(data) > _max_image(options):
                texts.append(
                    f"image omitted: {mime}, {len(data)} characters as base64, over this "
                    f"server's limit of {_max_image(options)} (save it to a file instead)"
                )
            else:
                blocks.append(types.ImageContent(data=data, mime_type=mime))
            continue
        if result.text is not None:
            texts.append(("result: " if result.is_main_result else "display: ") + result.text)
    if execution.error is not None:
        error = execution.error
        texts.append(f"error: {error.name}: {error.value}\n{error.traceback}".rstrip())
    exit_code = 1 if execution.error is not None else 0
    report = _report(options, exit_code, execution.stdout, execution.stderr, "\n".join(texts))
    return [_text(report), *blocks]


def _image(png: str | None, jpeg: Any) -> tuple[str, str] | None:
    if png is not None:
        return png, "image/png"
    if isinstance(jpeg, str):
        return jpeg, "image/jpeg"
    return None


def _max_image(options: ServerOptions) -> int:
    """Most base64 characters of one image in a result: that of the largest readable file."""
    return options.max_file_bytes * 4 // 3 + 4


def _seconds(value: float) -> str:
    return f"{value:g}"


def _timeout(options: ServerOptions, asked: float | None) -> float:
    if asked is None:
        return options.default_timeout
    if asked > options.max_timeout:
        raise InvalidArgument(
            f"timeout {asked:g}s is over this server's maximum of {options.max_timeout:g}s"
        )
    return asked


def timed_out(options: ServerOptions, exc: ExecutionTimeout) -> list[Content]:
    """The tool-error content of a timeout: the message, then the partial output."""
    report = _report(options, None, exc.stdout or "", exc.stderr or "")
    return [_text(f"ExecutionTimeout: {exc}\n{report}")]


# ---------------------------------------------------------------------- handlers


async def _run_code(session: Session, args: RunCodeArgs) -> list[Content]:
    provider, options = session.provider, session.options
    seconds = _timeout(options, args.timeout)
    if args.language not in provider.languages:
        raise InvalidArgument(
            f"language {args.language!r} is not one of {sorted(provider.languages)}"
        )
    sandbox = await session.sandbox()
    if Capability.INTERPRETER in session.capabilities and args.language == "python":
        context = await session.context(args.language)
        try:
            execution = await sandbox.run_code(args.code, context=context, timeout=seconds)
        except ContextNotFound:
            session.forget_context(args.language)  # the next call starts a fresh one
            raise
        return _execution(options, execution)
    result = await sandbox.run(args.code, language=args.language, timeout=seconds)
    return _run_result(options, result)


async def _run_command(session: Session, args: RunCommandArgs) -> list[Content]:
    seconds = _timeout(session.options, args.timeout)
    sandbox = await session.sandbox()
    return _run_result(session.options, await sandbox.exec(args.command, timeout=seconds))


async def _write_file(session: Session, args: WriteFileArgs) -> list[Content]:
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgument(f"content is not valid base64: {exc}") from None
    else:
        data = args.content.encode("utf-8", "surrogatepass")
    if len(data) > session.options.max_file_bytes:
        raise InvalidArgument(
            f"content is {len(data)} bytes; this server writes at most "
            f"{session.options.max_file_bytes} bytes per file"
        )
    sandbox = await session.sandbox()
    await sandbox.write_file(args.path, data)
    return [_text(f"wrote {len(data)} bytes to {args.path}")]


async def _read_file(session: Session, args: ReadFileArgs) -> list[Content]:
    sandbox = await session.sandbox()
    limit = session.options.max_file_bytes
    # refused before it is read whole: a sparse file can claim terabytes
    data = await sandbox.read_file(args.path, max_size=limit)
    text: str | None = None
    if args.encoding != "base64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if args.encoding == "text":
                raise InvalidArgument(
                    f"{args.path} is not UTF-8 text; read it with encoding 'base64'"
                ) from None
    if text is not None:
        return [_text(truncate(text, session.options.max_output))]
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > session.options.max_output:
        raise InvalidArgument(
            f"{args.path} is {len(data)} bytes, {len(encoded)} characters as base64: over this "
            f"server's output limit of {session.options.max_output} characters"
        )
    return [_text(f"base64:{encoded}")]


async def _list_files(session: Session, args: ListFilesArgs) -> list[Content]:
    sandbox = await session.sandbox()
    entries = await sandbox.list_files(args.path)
    rows = [
        {"name": entry.name + ("/" if entry.is_dir else ""), "size": entry.size}
        for entry in sorted(entries, key=lambda entry: entry.name)
    ]
    return [_text(truncate(json.dumps(rows), session.options.max_output))]


async def _start_process(session: Session, args: StartProcessArgs) -> list[Content]:
    sandbox = await session.sandbox()
    await session.check_process_room(sandbox)
    process = await sandbox.start_process(args.command)
    session.started(process.id)
    return [_text(f"process_id: {process.id}\nstatus: running")]


async def _process_logs(session: Session, args: ProcessArgs) -> list[Content]:
    sandbox = await session.sandbox()
    process = await sandbox.get_process(args.process_id)
    info = await process.refresh()
    logs = await process.logs()
    status = f"status: {info.status}" + (
        f" (exit code {info.exit_code})" if info.exit_code is not None else ""
    )
    return [_text(_report(session.options, None, logs.stdout, logs.stderr, status))]


async def _stop_process(session: Session, args: ProcessArgs) -> list[Content]:
    sandbox = await session.sandbox()
    process = await sandbox.get_process(args.process_id)
    await process.kill()
    return [_text(f"stopped {args.process_id}")]


async def _expose_port(session: Session, args: ExposePortArgs) -> list[Content]:
    session.check_port_room(args.port)
    sandbox = await session.sandbox()
    exposed = await sandbox.expose_port(args.port)
    session.exposed(args.port)
    lines = [f"url: {exposed.url}"]
    if exposed.headers:
        lines.append("headers: " + json.dumps(exposed.headers))
    return [_text("\n".join(lines))]


async def _snapshot(session: Session, args: SnapshotArgs) -> list[Content]:
    session.check_snapshot_room()
    sandbox = await session.sandbox()
    snap = await sandbox.snapshot(name=args.name)
    session.snapshotted(snap.id)
    return [_text(f"snapshot_id: {snap.id}\nsize: {snap.size} bytes")]


async def _restore(session: Session, args: RestoreArgs) -> list[Content]:
    provider = session.provider
    await session.sandbox()  # the session is open
    await session.check_restore(args.snapshot_id)
    workspace = await provider.restore(args.snapshot_id)
    await session.replace(await provider.attach(workspace))
    return [_text(f"restored {args.snapshot_id}: the session now works in a copy of it")]


_LIMITS = (
    " Output over {max_output} characters is cut with a notice. Timeout: {default_timeout}s by"
    " default, at most {max_timeout}s."
)

TOOLS: Sequence[ToolSpec] = (
    ToolSpec(
        "run_code",
        "Run code in this session's sandbox and return stdout, stderr, the exit code and, for "
        "Python, the value of the last expression and any charts (as images). Python state "
        "(variables, imports) persists between calls when the sandbox has an interpreter; the "
        "sandbox has no network. Files persist for the whole session." + _LIMITS,
        RunCodeArgs,
        _run_code,
    ),
    ToolSpec(
        "run_command",
        "Run a shell command line in this session's sandbox (working directory: the "
        "workspace) and return stdout, stderr and the exit code." + _LIMITS,
        RunCommandArgs,
        _run_command,
        language="shell",
    ),
    ToolSpec(
        "write_file",
        "Write a file in the sandbox's workspace (parent directories are created). Text is "
        "written as UTF-8; pass encoding 'base64' for binary content. At most {max_file} bytes.",
        WriteFileArgs,
        _write_file,
        Capability.FILES,
    ),
    ToolSpec(
        "read_file",
        "Read a file from the sandbox's workspace: UTF-8 text as is, anything else as "
        "'base64:' followed by base64. Files over {max_file} bytes are refused; text over "
        "{max_output} characters is cut with a notice.",
        ReadFileArgs,
        _read_file,
        Capability.FILES,
    ),
    ToolSpec(
        "list_files",
        "List a directory of the sandbox's workspace as JSON: name (a trailing / marks a "
        "directory) and size in bytes.",
        ListFilesArgs,
        _list_files,
        Capability.FILES,
    ),
    ToolSpec(
        "start_process",
        "Start a shell command line in the background (a server, a watcher) and return its "
        "process_id at once. It runs until it exits, stop_process, or the session ends. At most "
        "{max_processes} run at once.",
        StartProcessArgs,
        _start_process,
        Capability.PROCESSES,
    ),
    ToolSpec(
        "process_logs",
        "The status, exit code and output so far of a background process. Output over "
        "{max_output} characters is cut with a notice.",
        ProcessArgs,
        _process_logs,
        Capability.PROCESSES,
    ),
    ToolSpec(
        "stop_process",
        "Kill a background process started with start_process.",
        ProcessArgs,
        _stop_process,
        Capability.PROCESSES,
    ),
    ToolSpec(
        "expose_port",
        "Make a TCP port a process in the sandbox listens on reachable from outside the "
        "sandbox; returns the URL (and any headers a client must send). The URL is for the "
        "user or the client application; the sandbox itself has no network. At most "
        "{max_ports} ports per session.",
        ExposePortArgs,
        _expose_port,
        Capability.PORTS,
    ),
    ToolSpec(
        "snapshot",
        "Capture the files of the sandbox's workspace; returns a snapshot_id for restore. "
        "Snapshots last as long as the session; it may hold {max_snapshots}.",
        SnapshotArgs,
        _snapshot,
        Capability.SNAPSHOTS,
    ),
    ToolSpec(
        "restore",
        "Replace the session's workspace with a copy of a snapshot this session made "
        "(files only: running processes and interpreter state are not kept).",
        RestoreArgs,
        _restore,
        Capability.SNAPSHOTS,
    ),
)
"""Every tool, in the order they are listed."""
