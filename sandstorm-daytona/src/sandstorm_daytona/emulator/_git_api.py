"""Toolbox git endpoints: clone through the engine, the rest as git in the sandbox."""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import sandstorm
from sandstorm import Capability

from ._daemon import (
    NOT_FOUND_RC,
    body_of,
    emulator_of,
    json_body,
    query,
    run_checked,
)
from ._errors import DaemonError
from ._files_api import relative_path
from ._records import SandboxRecord
from ._shell import q
from ._state import Emulator
from ._wire import (
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
)
from ._workspace_shell import probe_dirs, shell

__all__ = [
    "git",
    "git_add",
    "git_add_remote",
    "git_branches",
    "git_checkout",
    "git_clone",
    "git_commit",
    "git_configure_user",
    "git_create_branch",
    "git_credentials",
    "git_delete_branch",
    "git_get_config",
    "git_history",
    "git_init",
    "git_pull",
    "git_push",
    "git_remotes",
    "git_reset",
    "git_restore",
    "git_set_config",
    "git_status",
]


async def git(
    emulator: Emulator, record: SandboxRecord, path: str, args: str, *, code: str = "BAD_REQUEST"
) -> sandstorm.RunResult:
    """Run ``git -C path args`` in the sandbox; failures become daemon errors."""
    script = (
        f"[ -d {q(path)} ] || exit {NOT_FOUND_RC}\n"
        f"git -c safe.directory='*' -c core.quotepath=off -C {q(path)} {args}"
    )
    result = await shell(emulator, record, script, plain=True)
    if result.exit_code == NOT_FOUND_RC:
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
    relative = relative_path(body.path, work)
    username, password = body.username, body.password
    if not username and not password:
        host = (urllib.parse.urlsplit(body.url).hostname or "").lower()
        username, password = emulator.runtime_of(record).credentials.get(host, (None, None))
    url = _with_credentials(body.url, username, password)
    if relative is None:
        raise DaemonError(
            400,
            f"clone target {body.path} must be inside the working directory {work}",
            "INVALID_FILE_PATH",
        )
    engine_may_clone = not _is_local(body.url) or _granted(emulator, body.url)
    try:
        if Capability.GIT in emulator.provider.capabilities and not body.depth and engine_may_clone:
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


_REMOTE_SCHEMES = ("http", "https", "git", "ssh", "git+ssh", "ssh+git")


def _is_local(url: str) -> bool:
    """True for a repository on the cloning machine's own disk: a path or ``file://``
    (git's rule: ``scheme://`` or ``[user@]host:path`` is remote, the rest a local path)."""
    scheme, sep, _ = url.partition("://")
    if sep:
        return scheme.lower() not in _REMOTE_SCHEMES
    head = url.split("/", 1)[0]
    return ":" not in head


def _granted(emulator: Emulator, url: str) -> bool:
    """True when the local repository ``url`` lies in a directory the operator let the
    engine read (``EmulatorConfig.git_clone_host_paths``)."""
    import os.path

    path = url[len("file://") :] if url.lower().startswith("file://") else url
    if not path.startswith("/"):
        return False
    real = os.path.realpath(path)
    for root in emulator.config.git_clone_host_paths:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return True
    return False


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
    emulator_of(request).runtime_of(record).credentials[host] = (body.username, body.password)
    return Response(status_code=200)
