"""Git clone and status for workspaces, with the host ``git`` binary, hardened.

Repository content is untrusted: it comes from the network or from code running in the
sandbox. So every ``git`` process here

- runs as the sandbox's uid/gid (``owner``) when the host is root, never as root;
- sees a clean environment: no system or user config, no credential helpers of the host,
  no terminal prompts, hooks disabled, only the allowed transport protocols;
- starts in the target directory (entered as root before the uid drop), so it needs no
  access to the host directories above the workspace.

``status`` never lets git read the repository's own ``.git/config`` (whose
``core.fsmonitor``, filter drivers or ``include.path`` would otherwise run commands of the
sandbox's choosing on the host): git runs on a private shadow git directory that links
to the repository's objects, refs and index, with a config made only of the few
repository settings that cannot run anything.

Credentials in an ``http(s)://user:token@host/...`` URL are taken out of the URL, handed
to git through a credential helper scoped to that host, and never reach the cloned
repository's config, an exception message, a log line or a repr.

These functions block; call them from a worker thread in async code.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from .._errors import WorkspaceError
from .._models import GitFileStatus, GitStatus
from . import _files
from ._files import Owner

__all__ = ["DEFAULT_PROTOCOLS", "clone", "parse_porcelain_v2", "scrub_credentials", "status"]

log = logging.getLogger("sandstorm.local.git")

DEFAULT_PROTOCOLS: frozenset[str] = frozenset({"https", "http", "ssh", "git", "file"})
"""Transport protocols :func:`clone` allows unless told otherwise (never ``ext``)."""

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._-]+\Z")
_MAX_MESSAGE = 2000
_MAX_CONFIG = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_CRED_HELPER = """#!/bin/sh
test "$1" = get || exit 0
printf 'username=%s\\npassword=%s\\n' "$SANDSTORM_GIT_USERNAME" "$SANDSTORM_GIT_PASSWORD"
"""


def scrub_credentials(text: str, *secrets: str) -> str:
    """``text`` with URL user-info (``https://user:token@``) and ``secrets`` redacted."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        if len(secret) >= 3:
            for form in {secret, unquote(secret)}:
                text = text.replace(form, "***")
    return text


def _git_binary() -> str:
    git = shutil.which("git", path=os.defpath + ":/usr/local/bin:/usr/bin:/bin")
    if git is None:
        raise WorkspaceError("git is not installed on the host (no 'git' on PATH)")
    return git


def _check_owner(owner: Owner | None) -> Owner:
    """The uid/gid git runs as when the host is root: never root itself."""
    if owner is None or owner[0] == 0 or owner[1] == 0:
        raise WorkspaceError(
            "refusing to run git as root on untrusted repository content; pass the "
            "sandbox's (uid, gid) as owner"
        )
    return owner


@contextlib.contextmanager
def _private_home() -> Iterator[Path]:
    """A temporary HOME readable by the sandbox uid but writable only by the host."""
    home = Path(tempfile.mkdtemp(prefix="sandstorm-git-"))
    try:
        os.chmod(home, 0o755)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _base_env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg"),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_OPTIONAL_LOCKS": "0",
    }


def _write_config(home: Path, text: str) -> None:
    path = home / "gitconfig"
    path.write_text(text)
    os.chmod(path, 0o644)


_HARDENING = """[safe]
\tdirectory = *
[core]
\thooksPath = /dev/null
\tfsmonitor = false
\taskPass =
\tuntrackedCache = false
[credential]
\thelper =
"""


# Run as root, this launcher enters a private mount namespace, binds the workspace
# directories it was handed as descriptors onto paths the sandbox uid can reach, drops to
# the sandbox uid/gid with no_new_privs, and execs git. The host's workspace directories
# stay closed (mode 0700) to that uid; git sees only what was bound.
_LAUNCHER = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
def fail(what):
    sys.stderr.write(f"sandstorm git launcher: {what}\n")
    os._exit(126)
def check(result, what):
    if result != 0:
        fail(f"{what}: {os.strerror(ctypes.get_errno())}")
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
check(libc.mount(None, b"/", None, (1 << 18) | 16384, None), "make mounts private")
uid, gid, cwd, binds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
for fd, source, target in binds:
    # a mount seen through a descriptor from the old namespace cannot be bound: reopen
    # the path here and insist it is still the very directory the host checked
    want = os.fstat(fd)
    new = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    got = os.fstat(new)
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
        fail(f"{source} changed while git was being started")
    check(libc.mount(f"/proc/self/fd/{new}".encode(), target.encode(), None, 4096, None),
          f"bind {target}")
    os.close(new)
    os.close(fd)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
os.chdir(cwd)
os.execv(sys.argv[6], sys.argv[6:])
"""


def _as_root() -> bool:
    return os.geteuid() == 0


def _run(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    owner: Owner | None,
    timeout: float | None,
    what: str,
    secrets: tuple[str, ...] = (),
    binds: tuple[tuple[int, Path, Path], ...] = (),
) -> bytes:
    """Run git as the sandbox uid in its own session; kill the group on timeout.

    As root, ``binds`` (descriptor, its path, mount point) are bind-mounted in a private
    mount namespace first, each checked to still be the descriptor's directory, and git
    starts in ``cwd`` (a mount point). Otherwise git runs directly as the current user in
    ``cwd`` (a real path) and ``binds`` are unused.
    """
    if _as_root():
        uid, gid = _check_owner(owner)
        spec = json.dumps([(fd, str(source), str(target)) for fd, source, target in binds])
        full = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(uid), str(gid), str(cwd), spec]
        full += ["--", *argv]
        popen_cwd: Path = Path("/")
    else:
        full, popen_cwd = argv, cwd
    proc = subprocess.Popen(
        full,
        cwd=popen_cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(fd for fd, _, _ in binds),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise WorkspaceError(f"{what} timed out after {timeout:g}s and was killed") from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        detail = scrub_credentials(err.decode(errors="replace").strip(), *secrets)
        if len(detail) > _MAX_MESSAGE:
            detail = "..." + detail[-_MAX_MESSAGE:]
        raise WorkspaceError(f"{what} failed (git exit status {proc.returncode}): {detail}")
    return out


# ------------------------------------------------------------------ clone


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


def _protocol_config(protocols: Collection[str]) -> str:
    lines = ["[protocol]", "\tallow = never"]
    for proto in sorted(set(protocols)):
        if not _SAFE_TOKEN.match(proto) or proto == "ext":
            raise WorkspaceError(f"git protocol {proto!r} cannot be allowed")
        lines += [f'[protocol "{proto}"]', "\tallow = always"]
    return "\n".join(lines) + "\n"


def _clear_dir(fd: int) -> None:
    """Remove everything inside directory ``fd`` without following symlinks."""
    for name in os.listdir(fd):
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)


def clone(
    url: str,
    dest_dir: Path,
    branch: str | None = None,
    owner: Owner | None = None,
    timeout: float | None = 300.0,
    *,
    depth: int | None = None,
    protocols: Collection[str] = DEFAULT_PROTOCOLS,
    workspace_root: Path | None = None,
) -> None:
    """Clone ``url`` (at ``branch``, else the remote's default) into ``dest_dir``.

    ``dest_dir`` must be an empty directory or not exist yet (its parent must); it and
    everything in it end up owned by ``owner``, because git runs as that uid. On any
    failure (including ``timeout`` seconds passing) ``dest_dir`` is left as it was
    found and :class:`~sandstorm.WorkspaceError` says why, credentials scrubbed.
    ``protocols`` limits the transports (``ext`` is never allowed).

    Pass ``workspace_root`` whenever ``dest_dir`` lies in a workspace: the destination
    is then resolved like the file operations resolve paths (symlinks only within the
    root), so code in the sandbox cannot redirect the clone, or its cleanup, elsewhere.
    As root, an existing ``dest_dir`` must already belong to ``owner``.
    """
    _check_clone_args(url, branch, depth)
    clean_url, user, password, clean_parts = _split_credentials(url)
    secrets = tuple(s for s in (user, password) if s)
    shown = scrub_credentials(url, *secrets)
    if _as_root():
        _check_owner(owner)  # refuse early rather than run as root

    dest = Path(dest_dir)
    dest_fd, created = _open_dest(dest, workspace_root, owner)
    try:
        # checked before anything may be cleaned up: a failed clone only ever removes
        # what git wrote into a directory that was empty and the sandbox's own
        _check_owned(dest_fd, owner, f"clone destination {str(dest)!r}")
        if os.listdir(dest_fd):
            raise WorkspaceError(f"clone destination {str(dest)!r} is not empty")
    except BaseException:
        os.close(dest_fd)
        raise
    try:
        with _private_home() as home:
            _clone(url, clean_url, clean_parts, branch, depth, protocols, user, password,
                   secrets, shown, dest, dest_fd, home, owner, timeout)  # fmt: skip
    except BaseException:
        with contextlib.suppress(OSError):
            _clear_dir(dest_fd)
        if created:
            with contextlib.suppress(OSError, WorkspaceError):
                if workspace_root is not None:
                    _files.delete_path(workspace_root, str(dest))
                else:
                    dest.rmdir()
        raise
    finally:
        os.close(dest_fd)


def _open_dest(dest: Path, workspace_root: Path | None, owner: Owner | None) -> tuple[int, bool]:
    """A descriptor of the clone destination, and whether it was created just now."""
    try:
        if workspace_root is not None:
            try:
                return _files.open_dir(workspace_root, str(dest)), False
            except FileNotFoundError:
                return _files.open_dir(workspace_root, str(dest), create=True, owner=owner), True
        try:
            return os.open(dest, _DIR_FLAGS), False
        except FileNotFoundError:
            dest.mkdir(mode=0o755)
            if owner is not None and _as_root():
                os.chown(dest, *owner)
            return os.open(dest, _DIR_FLAGS), True
    except (NotADirectoryError, FileExistsError):
        raise WorkspaceError(f"clone destination {str(dest)!r} is not a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WorkspaceError(f"clone destination {str(dest)!r} is a symlink") from None
        raise


def _check_owned(fd: int, owner: Owner | None, what: str) -> None:
    """As root, git may only work in directories the sandbox uid already owns."""
    if _as_root() and owner is not None and os.fstat(fd).st_uid != owner[0]:
        raise WorkspaceError(
            f"{what} is not owned by the sandbox user (uid {owner[0]}); refusing to run git there"
        )


def _clone(
    url: str,
    clean_url: str,
    clean_parts: SplitResult | None,
    branch: str | None,
    depth: int | None,
    protocols: Collection[str],
    user: str | None,
    password: str | None,
    secrets: tuple[str, ...],
    shown: str,
    dest: Path,
    dest_fd: int,
    home: Path,
    owner: Owner | None,
    timeout: float | None,
) -> None:
    config = _HARDENING + _protocol_config(protocols)
    env = _base_env(home)
    if clean_parts is not None:
        helper = home / "credential-helper"
        helper.write_text(_CRED_HELPER)
        os.chmod(helper, 0o755)
        scope = f"{clean_parts.scheme}://{clean_parts.netloc}"
        if '"' in scope or "\\" in scope or _CTRL.search(scope):
            raise WorkspaceError(f"invalid host in git URL {shown!r}")
        config += f'[credential "{scope}"]\n\thelper = {helper}\n'
        env["SANDSTORM_GIT_USERNAME"] = user or ""
        env["SANDSTORM_GIT_PASSWORD"] = password or ""
    _write_config(home, config)
    argv = [_git_binary(), "clone", "--quiet", "--template=", "--no-recurse-submodules"]
    if branch is not None:
        argv += ["--branch", branch]
    if depth is not None:
        argv += ["--depth", str(depth)]
    argv += ["--", clean_url, "."]
    binds: tuple[tuple[int, Path, Path], ...] = ()
    cwd = dest
    if _as_root():
        cwd = home / "work"
        cwd.mkdir(mode=0o755)
        binds = ((dest_fd, dest.absolute(), cwd),)
    log.debug("git clone %s (branch %s) into %s", shown, branch, dest)
    _run(
        argv,
        cwd=cwd,
        env=env,
        owner=owner,
        timeout=timeout,
        what=f"git clone of {shown}",
        secrets=secrets,
        binds=binds,
    )


# ------------------------------------------------------------------ status

# Repository settings git may take from the repository's own config: none of them runs
# anything. Everything else in .git/config is ignored.
_PASSTHROUGH = re.compile(
    r"(core\.(filemode|symlinks|ignorecase|precomposeunicode|autocrlf|eol|safecrlf"
    r"|checkstat|trustctime|quotepath|sparsecheckout|sparsecheckoutcone)"
    r"|status\.(showuntrackedfiles|renames|renamelimit)"
    r"|branch\.[^\n]+\.(remote|merge)"
    r"|remote\.[^\n]+\.fetch"
    r"|index\.(version|skiphash))\Z"
)
# The .git entries git may see (through links); config, hooks and commondir never.
_SHADOWED = frozenset(
    {"objects", "refs", "packed-refs", "index", "info", "shallow", "logs", "MERGE_HEAD",
     "ORIG_HEAD", "FETCH_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG", "sparse-checkout",
     "rebase-merge", "rebase-apply", "MERGE_MSG"}
)  # fmt: skip


def _read_small(name: str, dir_fd: int, limit: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise WorkspaceError(f".git/{name} is not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise WorkspaceError(f".git/{name} is too large")
    return data


def _repo_settings(
    git: str, git_fd: int, home: Path, env: dict[str, str], owner: Owner | None
) -> tuple[str, list[tuple[str, str]]]:
    """The repository's format settings (for the shadow config) and safe pass-through ones."""
    try:
        raw = _read_small("config", git_fd, _MAX_CONFIG)
    except FileNotFoundError:
        return "", []
    copy = home / "repo-config"
    copy.write_bytes(raw)
    os.chmod(copy, 0o644)
    out = _run(
        [git, "config", "--file", str(copy), "--null", "--list"],
        cwd=home,
        env=env,
        owner=owner,
        timeout=30,
        what="reading the repository's git config",
    )
    fmt: list[str] = []
    passthrough: list[tuple[str, str]] = []
    extensions: list[str] = []
    for entry in out.split(b"\0"):
        if not entry:
            continue
        key_b, _, value_b = entry.partition(b"\n")
        key, value = key_b.decode(errors="replace"), value_b.decode(errors="replace")
        if key == "core.repositoryformatversion" and value.isdigit():
            fmt = ["[core]", f"\trepositoryformatversion = {value}"]
        elif key.startswith("extensions."):
            name = key.removeprefix("extensions.")
            if _SAFE_TOKEN.match(name) and _SAFE_TOKEN.match(value):
                extensions.append(f"\t{name} = {value}")
        elif _PASSTHROUGH.match(key) and "\0" not in value:
            passthrough.append((key, value))
    text = "\n".join(fmt + (["[extensions]", *extensions] if extensions else [])) + "\n"
    return text, passthrough


def status(
    repo_dir: Path,
    owner: Owner | None = None,
    timeout: float | None = 60.0,
    *,
    workspace_root: Path | None = None,
) -> GitStatus:
    """``git status`` of the repository whose work tree is ``repo_dir``.

    Each :class:`~sandstorm.GitFileStatus` has ``status`` as the two-letter code of
    ``git status --short`` (``" M"`` modified, ``"A "`` staged new file, ``"??"``
    untracked, ``"R "`` renamed, ``"UU"`` conflict, ...). ``repo_dir/.git`` must be a
    directory (linked worktrees and ``.git`` symlinks are refused). As root, the
    repository must belong to ``owner``; pass ``workspace_root`` when ``repo_dir`` lies
    in a workspace (see :func:`clone`).
    """
    repo = Path(repo_dir)
    git = _git_binary()
    if _as_root():
        _check_owner(owner)
    try:
        if workspace_root is not None:
            repo_fd = _files.open_dir(workspace_root, str(repo))
        else:
            repo_fd = os.open(repo, _DIR_FLAGS)
    except FileNotFoundError:
        raise WorkspaceError(f"{str(repo)!r} does not exist") from None
    except OSError as exc:
        raise WorkspaceError(f"{str(repo)!r} is not a directory: {exc.strerror}") from None
    try:
        try:
            git_fd = os.open(".git", _DIR_FLAGS, dir_fd=repo_fd)
        except FileNotFoundError:
            raise WorkspaceError(f"{str(repo)!r} is not a git repository (no .git)") from None
        except OSError:
            raise WorkspaceError(
                f"{str(repo)!r}: .git is not a directory (linked worktrees, submodule "
                "checkouts and .git symlinks are not supported)"
            ) from None
        try:
            _check_owned(repo_fd, owner, f"repository {str(repo)!r}")
            _check_owned(git_fd, owner, f"repository {str(repo)!r} (its .git)")
            return _status(git, repo, repo_fd, git_fd, owner, timeout)
        finally:
            os.close(git_fd)
    finally:
        os.close(repo_fd)


def _status(
    git: str, repo: Path, repo_fd: int, git_fd: int, owner: Owner | None, timeout: float | None
) -> GitStatus:
    with _private_home() as home:
        env = _base_env(home)
        _write_config(home, _HARDENING)
        fmt_config, passthrough = _repo_settings(git, git_fd, home, env, owner)

        shadow = home / "gitdir"
        shadow.mkdir(mode=0o755)
        (shadow / "config").write_text(fmt_config + "[core]\n\tbare = false\n")
        try:
            head = _read_small("HEAD", git_fd, 4096)
        except FileNotFoundError:
            raise WorkspaceError(f"{str(repo)!r} is not a git repository (no HEAD)") from None
        (shadow / "HEAD").write_bytes(head)
        if _as_root():
            # git sees the repository only through bind mounts of the checked descriptors
            work, real_git = home / "work", home / "git"
            work.mkdir(mode=0o755)
            real_git.mkdir(mode=0o755)
            binds: tuple[tuple[int, Path, Path], ...] = (
                (repo_fd, repo.absolute(), work),
                (git_fd, repo.absolute() / ".git", real_git),
            )
        else:
            work, real_git, binds = repo, repo / ".git", ()
        for name in os.listdir(git_fd):
            if name in _SHADOWED or name.startswith("sharedindex."):
                os.symlink(real_git / name, shadow / name)
        if not (shadow / "refs").is_symlink():
            (shadow / "refs").mkdir()
        if not (shadow / "objects").is_symlink():
            raise WorkspaceError(f"{str(repo)!r} is not a git repository (no objects)")
        for path in [shadow, *shadow.iterdir()]:
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)

        env["GIT_DIR"] = str(shadow)
        env["GIT_WORK_TREE"] = str(work)
        env["GIT_CONFIG_COUNT"] = str(len(passthrough))
        for i, (key, value) in enumerate(passthrough):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        out = _run(
            [git, "status", "--porcelain=v2", "--branch", "-z"],
            cwd=work,
            env=env,
            owner=owner,
            timeout=timeout,
            what="git status",
            binds=binds,
        )
    return parse_porcelain_v2(out)


def parse_porcelain_v2(out: bytes) -> GitStatus:
    """Parse ``git status --porcelain=v2 --branch -z`` output."""
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
