"""Git clone and status for workspaces: git runs inside the workspace's own sandbox.

No git process ever runs on the host, and the host never reads a repository's files.
Each operation is a shell script (built here) that the provider runs like any other
code in the workspace, so git gets every isolation layer a run gets: namespaces,
seccomp, Landlock, the workspace's uid, cgroups, its disk. Whatever a hostile repository
makes git execute (a ``core.fsmonitor`` in a submodule, a filter driver, an ``include``)
runs as sandboxed code of that workspace, nothing more.

Inside, git is still hardened (so that a repository cannot turn a status into code
execution in the first place): no system or global config, ``-c`` overrides (which beat
the repository's own config and reach submodule children through
``GIT_CONFIG_PARAMETERS``) for hooks, fsmonitor, ssh and credential helpers, an explicit
protocol allow-list (``ext`` never), no terminal prompts. Scripts use paths relative to
the run's working directory (the workspace), never a host path.

A clone is two runs. The *fetch* (``git clone --no-checkout``) may reach the network
even in a workspace whose network is blocked: it gets the host's network for that one
run when the URL is remote (https, http, ssh, git). A local source (a path or a
``file://`` URL on the host) is bound read-only into that run instead, with no network.
The *checkout* then runs with the workspace's own network policy, so filters and other
checkout-time behaviour of the repository never run with more network than the
workspace's code has.

Credentials in an ``http(s)://user:token@host/...`` URL are taken out of the URL, given
to git by an inline credential helper that reads them from the run's environment, and
never reach the cloned repository's config, an exception message, a log line or a repr.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from .._errors import WorkspaceError
from .._models import GitFileStatus, GitStatus
from ..adapters import scrub_credentials

__all__ = [
    "DEFAULT_PROTOCOLS",
    "GitCommand",
    "ClonePlan",
    "clone_plan",
    "parse_porcelain_v2",
    "relative_path",
    "status_command",
]

DEFAULT_PROTOCOLS: frozenset[str] = frozenset({"https", "http", "ssh", "git", "file"})
"""Transport protocols a clone allows unless told otherwise (never ``ext``)."""

_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._-]+\Z")
_SCP_LIKE = re.compile(r"[^/:]+:")
_MAX_MESSAGE = 2000
_GIT = "/usr/bin/git"

# exit codes the scripts use for their own refusals (git itself exits 128 or 1)
NOT_FOUND = 90
NOT_A_REPO = 91
NOT_EMPTY = 92
NOT_A_DIR = 93

# git started with these overrides: the command line beats every config file, and is
# passed to child gits (submodules) through GIT_CONFIG_PARAMETERS
_HARDENING = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.untrackedCache=false",
    "core.sshCommand=ssh -o BatchMode=yes",
    "core.askPass=",
    "core.pager=cat",
    "credential.helper=",
    "safe.directory=*",
    "submodule.recurse=false",
    "diff.external=",
    "uploadpack.packObjectsHook=",
)


_HOME = "/tmp/.sandstorm-git-home"
# the global config (in the run's private /tmp): what git's transport children (which do
# not inherit ``-c``) must see too
_PREAMBLE = f"""set -u
mkdir -p {_HOME} && cat > {_HOME}/config <<'EOF'
[safe]
\tdirectory = *
[core]
\thooksPath = /dev/null
\tfsmonitor = false
EOF
"""


def _base_env() -> dict[str, str]:
    return {
        "HOME": _HOME,
        "XDG_CONFIG_HOME": _HOME,
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": _HOME + "/config",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_PROXY_COMMAND": "",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_EXTERNAL_DIFF": "",
        "GIT_PAGER": "cat",
    }


def git_error(what: str, exit_code: int, stderr: str, secrets: tuple[str, ...] = ()) -> str:
    """A short, scrubbed message for a failed git run."""
    detail = scrub_credentials(stderr.strip(), *secrets)
    if len(detail) > _MAX_MESSAGE:
        detail = "..." + detail[-_MAX_MESSAGE:]
    return f"{what} failed (git exit status {exit_code}): {detail}"


@dataclass(frozen=True)
class GitCommand:
    """A shell script to run in the workspace, its extra environment and what to show."""

    script: str
    env: dict[str, str]
    what: str
    secrets: tuple[str, ...] = ()
    host_network: bool = False
    read_only: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"GitCommand({self.what!r})"


@dataclass(frozen=True)
class ClonePlan:
    """The two runs of a clone, and the script that removes what a failed clone left."""

    fetch: GitCommand
    checkout: GitCommand
    cleanup: GitCommand
    shown: str
    secrets: tuple[str, ...] = field(default=())


def relative_path(path: str, workspace_dir: str | None = None) -> str:
    """``path`` (relative to the workspace, or absolute below ``workspace_dir``) as ``./x``.

    The result is relative to the run's working directory (the workspace) and never
    starts with ``-``; absolute paths elsewhere are refused.
    """
    if not isinstance(path, str) or _CTRL.search(path):
        raise WorkspaceError(f"invalid path {path!r}")
    if posixpath.isabs(path):
        if workspace_dir is not None and (
            path == workspace_dir or path.startswith(workspace_dir.rstrip("/") + "/")
        ):
            path = posixpath.relpath(path, workspace_dir)
        else:
            raise WorkspaceError(f"path {path!r} is outside the workspace")
    norm = posixpath.normpath(path or ".")
    if norm == ".." or norm.startswith("../"):
        raise WorkspaceError(f"path {path!r} is outside the workspace")
    return "." if norm == "." else "./" + norm


def _git(extra: tuple[str, ...] = ()) -> str:
    args = [_GIT]
    for option in (*_HARDENING, *extra):
        args += ["-c", option]
    return " ".join(shlex.quote(a) for a in args)


def _split_credentials(url: str) -> tuple[str, str | None, str | None, SplitResult | None]:
    """``url`` without its secrets, the username and password taken out, and the clean parts.

    For http(s) the whole user-info goes (it is handed to git by a credential helper);
    for other URL schemes (ssh) only a password, which git could not use anyway.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None, None
    if "@" not in parts.netloc:
        return url, None, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if parts.scheme.lower() not in ("http", "https"):
        if not password:
            return url, None, None, None
        clean = parts._replace(netloc=f"{user}@{hostport}")
        return clean.geturl(), None, unquote(password), None
    clean = parts._replace(netloc=hostport)
    return clean.geturl(), unquote(user), unquote(password), clean


def _check_clone_args(url: str, branch: str | None, depth: int | None) -> None:
    if not isinstance(url, str) or not url.strip():
        raise WorkspaceError("git URL is empty")
    if _CTRL.search(url):
        raise WorkspaceError("git URL contains control characters")
    if url.startswith("-"):
        raise WorkspaceError("git URL must not start with '-'")
    if branch is not None and (
        not branch or branch.startswith("-") or _CTRL.search(branch) or " " in branch
    ):
        raise WorkspaceError(f"invalid git branch name {branch!r}")
    if depth is not None and depth < 1:
        raise WorkspaceError(f"clone depth must be >= 1, not {depth}")


def _protocol_options(protocols: Collection[str]) -> tuple[tuple[str, ...], str]:
    options = ["protocol.allow=never"]
    for proto in sorted(set(protocols)):
        if not _SAFE_TOKEN.match(proto) or proto == "ext":
            raise WorkspaceError(f"git protocol {proto!r} cannot be allowed")
        options.append(f"protocol.{proto}.allow=always")
    return tuple(options), ":".join(sorted(set(protocols)))


def local_source(url: str) -> str | None:
    """The host directory a clone URL names (a path or ``file://``), else ``None``."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path) or "/"
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return os.path.abspath(url)


def clone_plan(
    url: str,
    dest: str,
    branch: str | None = None,
    *,
    depth: int | None = None,
    protocols: Collection[str] = DEFAULT_PROTOCOLS,
) -> ClonePlan:
    """The runs that clone ``url`` into ``dest`` (``./x``, see :func:`relative_path`).

    ``dest`` must be an empty directory or not exist yet (its parent must). The fetch
    fails, and leaves ``dest`` as it was found, on any error.
    """
    _check_clone_args(url, branch, depth)
    clean_url, user, password, clean_parts = _split_credentials(url)
    secrets = tuple(s for s in (user, password) if s)
    shown = scrub_credentials(url, *secrets)
    options, allowed = _protocol_options(protocols)
    env = _base_env()
    env["GIT_ALLOW_PROTOCOL"] = allowed
    extra = list(options)
    if clean_parts is not None:
        scope = f"{clean_parts.scheme}://{clean_parts.netloc}"
        if '"' in scope or "\\" in scope or _CTRL.search(scope):
            raise WorkspaceError(f"invalid host in git URL {shown!r}")
        extra.append(
            f"credential.{scope}.helper="
            '!f() { test "$1" = get || exit 0; printf "username=%s\\npassword=%s\\n" '
            '"$SANDSTORM_GIT_USERNAME" "$SANDSTORM_GIT_PASSWORD"; }; f'
        )
        env["SANDSTORM_GIT_USERNAME"] = user or ""
        env["SANDSTORM_GIT_PASSWORD"] = password or ""
    source = local_source(clean_url)
    read_only: tuple[str, ...] = ()
    if source is not None:
        if not os.path.isdir(source):
            raise WorkspaceError(f"git clone of {shown!r} failed: no such local repository")
        read_only = (os.path.realpath(source),)
    q = shlex.quote(dest)
    argv = ["clone", "--quiet", "--no-checkout", "--template=", "--no-local"]
    argv += ["--no-recurse-submodules", "--upload-pack=git-upload-pack"]
    if branch is not None:
        argv += ["--branch", branch]
    if depth is not None:
        argv += ["--depth", str(depth)]
    argv += ["--", clean_url, dest]
    git = _git(tuple(extra))
    fetch = (
        _PREAMBLE
        + f"""if [ -L {q} ] || {{ [ -e {q} ] && [ ! -d {q} ]; }}; then
  echo "clone destination {dest} is not a directory" >&2; exit {NOT_A_DIR}
fi
created=0
if [ -d {q} ]; then
  if [ -n "$(ls -A -- {q})" ]; then
    echo "clone destination {dest} is not empty" >&2; exit {NOT_EMPTY}
  fi
else
  mkdir -- {q} || exit {NOT_A_DIR}
  created=1
fi
{git} {" ".join(shlex.quote(a) for a in argv)}
rc=$?
if [ $rc -ne 0 ]; then
  if [ $created = 1 ]; then rm -rf -- {q}; else find {q} -mindepth 1 -delete; fi
  exit $rc
fi
"""
    )
    checkout = (
        _PREAMBLE
        + f"""cd -- {q} || exit {NOT_FOUND}
{_git()} rev-parse -q --verify HEAD >/dev/null || exit 0
exec {_git()} reset -q --hard
"""
    )
    cleanup = f"""[ -d {q} ] && [ ! -L {q} ] && find {q} -mindepth 1 -delete
[ {q} = . ] || rmdir -- {q}
exit 0
"""
    what = f"git clone of {shown}"
    return ClonePlan(
        fetch=GitCommand(
            fetch, env, what, secrets, host_network=source is None, read_only=read_only
        ),
        checkout=GitCommand(checkout, _base_env(), what),
        cleanup=GitCommand(cleanup, _base_env(), what),
        shown=shown,
        secrets=secrets,
    )


def status_command(repo: str) -> GitCommand:
    """The run that prints ``git status --porcelain=v2 --branch -z`` of ``repo`` (``./x``)."""
    q = shlex.quote(repo)
    script = (
        _PREAMBLE
        + f"""cd -- {q} 2>/dev/null || {{ echo "{repo!r} does not exist" >&2; exit {NOT_FOUND}; }}
[ -e .git ] || {{ echo "{repo!r} is not a git repository (no .git)" >&2; exit {NOT_A_REPO}; }}
exec {_git()} status --porcelain=v2 --branch -z
"""
    )
    return GitCommand(script, _base_env(), "git status")


def parse_porcelain_v2(out: bytes) -> GitStatus:
    """Parse ``git status --porcelain=v2 --branch -z`` output.

    The output comes from a sandbox, so it is untrusted: anything malformed is a
    :class:`~sandstorm.WorkspaceError`, never a crash.
    """
    try:
        return _parse_porcelain_v2(out)
    except (ValueError, IndexError):
        raise WorkspaceError("git status printed output that is not porcelain v2") from None


def _parse_porcelain_v2(out: bytes) -> GitStatus:
    fields = out.decode(errors="surrogateescape").split("\0")
    branch: str | None = None
    commit: str | None = None
    ahead = behind = 0
    files: list[GitFileStatus] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if not entry:
            continue
        kind = entry[0]
        if kind == "#":
            _, key, *rest = entry.split(" ")
            if key == "branch.oid" and rest and rest[0] != "(initial)":
                commit = rest[0]
            elif key == "branch.head" and rest and rest[0] != "(detached)":
                branch = " ".join(rest)
            elif key == "branch.ab" and len(rest) == 2:
                ahead, behind = int(rest[0].lstrip("+")), int(rest[1].lstrip("-"))
        elif kind == "1":
            parts = entry.split(" ", 8)
            files.append(GitFileStatus(path=parts[8], status=parts[1].replace(".", " ")))
        elif kind == "2":
            parts = entry.split(" ", 9)
            files.append(GitFileStatus(path=parts[9], status=parts[1].replace(".", " ")))
            i += 1  # the original path follows as its own field
        elif kind == "u":
            parts = entry.split(" ", 10)
            files.append(GitFileStatus(path=parts[10], status=parts[1]))
        elif kind == "?":
            files.append(GitFileStatus(path=entry[2:], status="??"))
        elif kind == "!":
            files.append(GitFileStatus(path=entry[2:], status="!!"))
    return GitStatus(branch=branch, commit=commit, ahead=ahead, behind=behind, files=tuple(files))
