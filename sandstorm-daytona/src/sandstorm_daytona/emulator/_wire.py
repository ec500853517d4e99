"""Request bodies of the main API and the toolbox, validated at the boundary.

Field names are the wire's own (camelCase, or snake_case for the git bodies); unknown
keys are ignored as the real service does. A bad body becomes a 400 whose message
names each offending field.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

__all__ = [
    "CodeRunRequest",
    "CreateSandbox",
    "CreateSandboxSnapshot",
    "CreateSession",
    "CreateSnapshot",
    "ExecuteRequest",
    "ForkSandbox",
    "GitAdd",
    "GitBranch",
    "GitCheckout",
    "GitClone",
    "GitCommit",
    "GitPath",
    "GitRemote",
    "NetworkSettings",
    "ReplaceRequest",
    "ResizeSandbox",
    "SessionExecute",
    "UpdateLabels",
    "INT32_MAX",
    "UINT32_MAX",
    "describe",
    "loads",
    "parse",
]

INT32_MAX = 2**31 - 1
"""The largest value of the service's ``integer`` columns (Postgres ``int4``): cpu,
memory, disk and the auto-stop/archive/delete intervals are stored in them
(``apps/api/src/sandbox/entities/sandbox.entity.ts``)."""

UINT32_MAX = 2**32 - 1
"""The largest ``timeout`` the daemon decodes (``ExecuteRequest.Timeout *uint32`` in
the daemon's ``apps/daemon/pkg/toolbox/process`` package)."""


def _minutes() -> Any:
    """An optional interval in minutes that fits the service's ``integer`` column."""
    return Field(default=None, ge=-INT32_MAX - 1, le=INT32_MAX)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Volume(_Body):
    volumeId: StrictStr
    mountPath: StrictStr
    subpath: StrictStr | None = None


class CreateBuildInfo(_Body):
    dockerfileContent: StrictStr
    contextHashes: list[StrictStr] | None = None


class CreateSandbox(_Body):
    """``POST /sandbox``: every field optional."""

    name: StrictStr | None = None
    snapshot: StrictStr | None = None
    user: StrictStr | None = None
    env: dict[str, StrictStr] | None = None
    labels: dict[str, StrictStr] | None = None
    public: StrictBool | None = None
    networkBlockAll: StrictBool | None = None
    kvm: StrictBool | None = None
    networkAllowList: StrictStr | None = None
    domainAllowList: StrictStr | None = None
    outboundProxyUrl: StrictStr | None = None
    otelEndpointOverride: StrictStr | None = None
    target: StrictStr | None = None
    # IsNumber() only in CreateSandboxDto: 0 is accepted (and means the default)
    cpu: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    gpu: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    gpuType: list[StrictStr] | None = None
    spot: StrictBool | None = None
    memory: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    disk: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    autoStopInterval: StrictInt | None = _minutes()
    autoPauseInterval: StrictInt | None = _minutes()
    autoArchiveInterval: StrictInt | None = _minutes()
    autoDeleteInterval: StrictInt | None = _minutes()
    ttlMinutes: StrictInt | None = _minutes()
    queueTimeout: StrictInt | None = _minutes()
    volumes: list[Volume] | None = None
    buildInfo: CreateBuildInfo | None = None
    linkedSandbox: StrictStr | None = None
    secrets: list[dict[str, StrictStr]] | None = None


class UpdateLabels(_Body):
    labels: dict[str, StrictStr]


class ResizeSandbox(_Body):
    cpu: StrictInt | None = Field(default=None, ge=1, le=INT32_MAX)
    memory: StrictInt | None = Field(default=None, ge=1, le=INT32_MAX)
    disk: StrictInt | None = Field(default=None, ge=1, le=INT32_MAX)


class NetworkSettings(_Body):
    networkBlockAll: StrictBool | None = None
    networkAllowList: StrictStr | None = None
    domainAllowList: StrictStr | None = None


class CreateSandboxSnapshot(_Body):
    name: StrictStr = Field(min_length=1)
    includeMemory: StrictBool | None = None


class ForkSandbox(_Body):
    name: StrictStr | None = None


class CreateSnapshot(_Body):
    name: StrictStr = Field(min_length=1)
    imageName: StrictStr | None = None
    entrypoint: list[StrictStr] | None = None
    # IsNumber() only in CreateSnapshotDto: 0 is accepted (and means the default)
    cpu: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    gpu: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    memory: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    disk: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    buildInfo: CreateBuildInfo | None = None
    regionId: StrictStr | None = None


class ExecuteRequest(_Body):
    command: StrictStr
    cwd: StrictStr | None = None
    envs: dict[str, StrictStr] | None = None
    timeout: StrictInt | None = Field(default=None, ge=0, le=UINT32_MAX)


class CodeRunRequest(_Body):
    code: StrictStr
    language: StrictStr = "python"
    argv: list[StrictStr] | None = None
    envs: dict[str, StrictStr] | None = None
    timeout: StrictInt | None = Field(default=None, ge=0, le=UINT32_MAX)


class CreateSession(_Body):
    sessionId: StrictStr = Field(min_length=1)


class SessionExecute(_Body):
    command: StrictStr
    runAsync: StrictBool | None = None
    async_: StrictBool | None = Field(default=None, alias="async")
    suppressInputEcho: StrictBool | None = None


class ReplaceRequest(_Body):
    files: list[StrictStr]
    pattern: StrictStr
    newValue: StrictStr


class GitClone(_Body):
    url: StrictStr = Field(min_length=1)
    path: StrictStr = Field(min_length=1)
    branch: StrictStr | None = None
    commit_id: StrictStr | None = None
    username: StrictStr | None = None
    password: StrictStr | None = None
    insecure_skip_tls: StrictBool | None = None
    depth: StrictInt | None = None


class GitPath(_Body):
    path: StrictStr = Field(min_length=1)


class GitBranch(_Body):
    path: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)


class GitCheckout(_Body):
    path: StrictStr = Field(min_length=1)
    branch: StrictStr = Field(min_length=1)


class GitAdd(_Body):
    path: StrictStr = Field(min_length=1)
    files: list[StrictStr]


class GitCommit(_Body):
    path: StrictStr = Field(min_length=1)
    message: StrictStr
    author: StrictStr
    email: StrictStr
    allow_empty: StrictBool | None = None


class GitRemote(_Body):
    path: StrictStr = Field(min_length=1)
    username: StrictStr | None = None
    password: StrictStr | None = None
    branch: StrictStr | None = None
    remote: StrictStr | None = None
    set_upstream: StrictBool | None = None


class GitInit(_Body):
    path: StrictStr = Field(min_length=1)
    bare: StrictBool | None = None
    initial_branch: StrictStr | None = None


class GitReset(_Body):
    path: StrictStr = Field(min_length=1)
    files: list[StrictStr] | None = None
    mode: StrictStr | None = None
    target: StrictStr | None = None


class GitRestore(_Body):
    path: StrictStr = Field(min_length=1)
    files: list[StrictStr]
    source: StrictStr | None = None
    staged: StrictBool | None = None
    worktree: StrictBool | None = None


class GitAddRemote(_Body):
    path: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    url: StrictStr = Field(min_length=1)
    fetch: StrictBool | None = None
    overwrite: StrictBool | None = None


class GitSetConfig(_Body):
    key: StrictStr = Field(min_length=1)
    value: StrictStr
    path: StrictStr | None = None
    scope: StrictStr | None = None


class GitConfigureUser(_Body):
    name: StrictStr
    email: StrictStr
    path: StrictStr | None = None
    scope: StrictStr | None = None


class GitCredentials(_Body):
    username: StrictStr
    password: StrictStr
    host: StrictStr | None = None
    protocol: StrictStr | None = None


class UpdateEnv(_Body):
    set: dict[str, StrictStr] | None = None
    unset: list[StrictStr] | None = None


_M = TypeVar("_M", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    """class-validator style: ``"cpu must be an integer, name ..."`` joined with ", "."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return ", ".join(parts)


def loads(raw: bytes | str) -> Any:
    """``raw`` parsed as JSON; ``ValueError`` for bad JSON and for nesting too deep to
    parse (the daemon's decoder stops at depth 10,000, Python's parser far earlier)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse(model: type[_M], data: Any) -> _M:
    """Validate ``data``; raises ``ValueError`` with a field-by-field message."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
