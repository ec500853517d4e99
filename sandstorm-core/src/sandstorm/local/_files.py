"""Host-side file operations inside a workspace directory, safe against escapes.

Every function takes the workspace root (a trusted host directory) and a path that comes
from the user. The path is resolved one component at a time with ``openat``-style calls
on directory file descriptors (``O_NOFOLLOW`` everywhere), the way ``openat2`` with
``RESOLVE_BENEATH`` does it in the kernel:

- absolute paths are accepted only when they lie inside the root;
- ``..`` may not climb above the root;
- a symlink inside the workspace is followed only while it stays inside the root
  (relative target, never above the root); an absolute symlink, or one that climbs out,
  makes the operation fail with :class:`~sandstorm.WorkspaceError`;
- no component is ever opened by a path string after it was checked, so code in the
  sandbox racing to swap a directory for a symlink makes the operation fail, never leave
  the root.

Files and directories created here are owned by ``owner`` (the sandbox uid/gid) when it
is given. :class:`TreeWriter` is the same machinery for writing a whole tree (snapshot
restore, template copy), with no symlink following at all.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .._errors import WorkspaceError
from .._models import FileInfo

__all__ = [
    "Owner",
    "TreeWriter",
    "delete_path",
    "list_files",
    "make_dirs",
    "normalize_path",
    "open_dir",
    "read_file",
    "remove_tree",
    "resolve_path",
    "walk_tree",
    "write_file",
]

Owner = tuple[int, int]
"""A ``(uid, gid)`` pair that host-side writes give their files."""

_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_DIR_MODE = 0o755
_NEW_FILE_MODE = 0o644
_COPY_CHUNK = 1 << 20


def _escape(path: str, why: str) -> WorkspaceError:
    return WorkspaceError(f"path {path!r} is outside the workspace: {why}")


def _components(root: Path, path: str) -> list[str]:
    """The components of ``path``, relative to ``root`` (``.`` and empty ones dropped)."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if "\0" in path:
        raise WorkspaceError(f"path {path!r} contains a NUL byte")
    if path.startswith("/"):
        norm = os.path.normpath(path)
        root_str = os.path.normpath(str(root))
        if norm == root_str:
            return []
        if not norm.startswith(root_str.rstrip("/") + "/"):
            raise _escape(path, "absolute paths must lie inside the workspace root")
        path = norm[len(root_str) :].lstrip("/")
    return [part for part in path.split("/") if part not in ("", ".")]


def normalize_path(root: Path, path: str) -> str:
    """``path`` as a clean relative POSIX path (``"."`` for the root), checked lexically.

    This only checks the string (absolute paths outside ``root``, ``..`` above it); the
    file operations below also check symlinks on the real filesystem.
    """
    parts: list[str] = []
    for part in _components(root, path):
        if part == "..":
            if not parts:
                raise _escape(path, "'..' climbs above the workspace root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


def _chown(name: str, dir_fd: int, owner: Owner | None) -> None:
    if owner is not None:
        os.chown(name, owner[0], owner[1], dir_fd=dir_fd, follow_symlinks=False)


class _Resolved:
    """Where a path ended up: the directory fd holding it and its final name."""

    __slots__ = ("dir_fd", "name", "parts")

    def __init__(self, dir_fd: int, name: str | None, parts: list[str]) -> None:
        self.dir_fd = dir_fd
        self.name = name  # None: the path is the workspace root itself
        self.parts = parts  # resolved components from the root, final name included

    @property
    def relpath(self) -> str:
        return "/".join(self.parts) or "."


@contextmanager
def _resolve(
    root: Path,
    path: str,
    *,
    follow_final: bool,
    create_parents: bool = False,
    owner: Owner | None = None,
) -> Iterator[_Resolved]:
    """Walk ``path`` beneath ``root``; yield the parent directory fd and the final name.

    The final component need not exist. Symlinks in intermediate components are followed
    inside the root; the final one only when ``follow_final``.
    """
    normalize_path(root, path)  # lexical escapes fail early, before touching the disk
    pending = deque(_components(root, path))
    # one open directory at a time, whatever the depth: ".." is reopened and checked to be
    # the directory it came from (by device and inode)
    cur = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    idents = [_ident(cur)]
    names: list[str] = []
    final: str | None = None
    links = 0
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                if len(idents) == 1:
                    raise _escape(path, "'..' climbs above the workspace root")
                cur = _up(cur, idents[-2], path)
                idents.pop()
                names.pop()
                continue
            last = not pending
            if last and not follow_final:
                final = comp
                break
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    final = comp
                    break
                if not create_parents:
                    raise FileNotFoundError(
                        errno.ENOENT, "no such file or directory", path
                    ) from None
                try:
                    os.mkdir(comp, _NEW_DIR_MODE, dir_fd=cur)
                    _chown(comp, cur, owner)
                except FileExistsError:
                    pass
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                try:
                    target = os.readlink(comp, dir_fd=cur)
                except FileNotFoundError:
                    raise FileNotFoundError(
                        errno.ENOENT, "no such file or directory", path
                    ) from None
                except OSError:
                    raise WorkspaceError(
                        f"path {path!r} changed while it was being resolved"
                    ) from None
                if target.startswith("/"):
                    shown = "/".join([*names, comp])
                    raise _escape(path, f"symlink {shown!r} points to absolute path {target!r}")
                pending.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if last:
                final = comp
                break
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            try:
                fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise WorkspaceError(
                        f"path {path!r} changed while it was being resolved"
                    ) from None
                raise
            os.close(cur)
            cur = fd
            idents.append(_ident(cur))
            names.append(comp)
        if final is None and len(idents) > 1:
            # the path named a directory (e.g. "a/b/.."): report it by parent and name
            final = names.pop()
            cur = _up(cur, idents[-2], path)
            idents.pop()
        parts = [*names, final] if final is not None else []
        yield _Resolved(cur, final, parts)
    finally:
        os.close(cur)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _up(fd: int, expected: tuple[int, int], shown: str) -> int:
    """The parent of directory ``fd`` (which is closed), checked to be ``expected``."""
    try:
        parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    if _ident(parent) != expected:
        os.close(parent)
        raise WorkspaceError(f"{shown!r} was moved while it was being worked on; retry")
    return parent


def _open_subdir(name: str, dir_fd: int) -> int:
    """Open directory ``name`` below ``dir_fd`` (no symlink), making it readable if need be."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        pass
    # a mode-000 directory of the (same-uid) sandbox: fix its mode through an O_PATH
    # descriptor, which names exactly that inode, never a symlink's target
    handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{handle}", 0o700)
    finally:
        os.close(handle)
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` (below directory ``parent_fd``) and everything in it.

    Nothing is followed, nothing recurses in Python and at most two directories are open
    at any time, so any depth (past ``PATH_MAX``) and any number of entries work.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    cur = _open_subdir(name, parent_fd)
    stack: list[tuple[tuple[int, int], str, Iterator[str]]] = [
        (_ident(cur), name, iter(os.listdir(cur)))
    ]
    try:
        while True:
            _, _, entries = stack[-1]
            for entry in entries:
                try:
                    est = os.stat(entry, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(est.st_mode):
                    sub = _open_subdir(entry, cur)
                    os.close(cur)
                    cur = sub
                    stack.append((_ident(cur), entry, iter(os.listdir(cur))))
                    break
                with suppress(FileNotFoundError):
                    os.unlink(entry, dir_fd=cur)
            else:
                _, done, _ = stack.pop()
                if not stack:
                    break
                cur = _up(cur, stack[-1][0], name)
                os.rmdir(done, dir_fd=cur)
    finally:
        os.close(cur)
    os.rmdir(name, dir_fd=parent_fd)


def resolve_path(root: Path, path: str) -> Path:
    """The host path that ``path`` names inside ``root``, symlinks resolved within the root.

    Use it to hand a path to an external tool (such as ``git``) that runs with the
    sandbox's uid; raises :class:`~sandstorm.WorkspaceError` when ``path`` escapes.
    """
    with _resolve(root, path, follow_final=True) as res:
        return root.joinpath(*res.parts)


def make_dirs(root: Path, path: str, owner: Owner | None) -> Path:
    """Create directory ``path`` (and its parents) inside ``root``; return its host path."""
    with _resolve(root, path, follow_final=True, create_parents=True, owner=owner) as res:
        if res.name is not None:
            try:
                os.mkdir(res.name, _NEW_DIR_MODE, dir_fd=res.dir_fd)
                _chown(res.name, res.dir_fd, owner)
            except FileExistsError:
                st = os.stat(res.name, dir_fd=res.dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(
                        errno.ENOTDIR, "exists and is not a directory", path
                    ) from None
        return root.joinpath(*res.parts)


def open_dir(root: Path, path: str, *, create: bool = False, owner: Owner | None = None) -> int:
    """An ``O_DIRECTORY`` descriptor of ``path`` inside ``root`` (the caller closes it).

    Resolved like every path here (symlinks only within the root); with ``create`` the
    directory and its parents are made first, owned by ``owner``. Hand the descriptor to
    work that must act on exactly this directory even if the sandbox renames things.
    """
    with _resolve(root, path, follow_final=True, create_parents=create, owner=owner) as res:
        if res.name is None:
            return os.dup(res.dir_fd)
        if create:
            with suppress(FileExistsError):
                os.mkdir(res.name, _NEW_DIR_MODE, dir_fd=res.dir_fd)
                _chown(res.name, res.dir_fd, owner)
        try:
            return os.open(res.name, _DIR_FLAGS, dir_fd=res.dir_fd)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path) from None
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path) from None
            raise


def write_file(
    root: Path,
    path: str,
    data: bytes,
    owner: Owner | None,
    *,
    mode: int | None = None,
) -> None:
    """Write ``data`` to ``path`` inside ``root`` atomically, creating parent directories.

    The new file replaces the old one in a single rename, so readers see either the old
    or the new content. It is owned by ``owner``; its mode is ``mode``, else the
    replaced file's mode, else ``0o644``. A symlink at ``path`` itself is replaced, not
    followed. :class:`IsADirectoryError` when ``path`` is a directory.
    """
    with _resolve(root, path, follow_final=False, create_parents=True, owner=owner) as res:
        if res.name is None:
            raise IsADirectoryError(errno.EISDIR, "is the workspace root", path)
        try:
            old = os.stat(res.name, dir_fd=res.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and stat.S_ISDIR(old.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if mode is None:
            mode = stat.S_IMODE(old.st_mode) if old and stat.S_ISREG(old.st_mode) else None
        tmp = f".{res.name[:200]}.{secrets.token_hex(6)}.sandstorm-tmp"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=res.dir_fd,
        )
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view[:_COPY_CHUNK]) :]
                if owner is not None:
                    os.fchown(fd, owner[0], owner[1])
                os.fchmod(fd, _NEW_FILE_MODE if mode is None else mode)
            finally:
                os.close(fd)
            os.replace(tmp, res.name, src_dir_fd=res.dir_fd, dst_dir_fd=res.dir_fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=res.dir_fd)
            raise


def read_file(root: Path, path: str, *, max_size: int | None = None) -> bytes:
    """The bytes of regular file ``path`` inside ``root`` (symlinks followed within it).

    Raises :class:`FileNotFoundError`, :class:`IsADirectoryError`, or
    :class:`~sandstorm.WorkspaceError` for special files and files over ``max_size``.
    """
    with _resolve(root, path, follow_final=True) as res:
        if res.name is None:
            raise IsADirectoryError(errno.EISDIR, "is the workspace root", path)
        try:
            st = os.stat(res.name, dir_fd=res.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path) from None
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if not stat.S_ISREG(st.st_mode):
            raise WorkspaceError(f"{path!r} is not a regular file")
        fd = os.open(
            res.name,
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
            dir_fd=res.dir_fd,
        )
        with open(fd, "rb", closefd=True) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(f"{path!r} is not a regular file")
            if max_size is not None and st.st_size > max_size:
                raise WorkspaceError(
                    f"{path!r} is {st.st_size} bytes, over the {max_size}-byte read limit"
                )
            data = fh.read() if max_size is None else fh.read(max_size + 1)
        if max_size is not None and len(data) > max_size:
            raise WorkspaceError(f"{path!r} is over the {max_size}-byte read limit")
        return data


def _info(st: os.stat_result, relpath: str, name: str) -> FileInfo:
    return FileInfo(
        path=relpath,
        name=name,
        is_dir=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
    )


def list_files(root: Path, path: str = ".") -> list[FileInfo]:
    """The entries of directory ``path`` inside ``root``, sorted by name.

    Each :class:`~sandstorm.FileInfo` has ``path`` relative to the root and ``mode`` as
    permission bits (``0o644``). Symlinks are listed as themselves (``is_dir`` false),
    not followed. :class:`NotADirectoryError` when ``path`` is a file.
    """
    with _resolve(root, path, follow_final=True) as res:
        if res.name is None:
            fd = os.dup(res.dir_fd)
        else:
            try:
                fd = os.open(res.name, _DIR_FLAGS, dir_fd=res.dir_fd)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", path) from None
            except NotADirectoryError:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path) from None
        try:
            prefix = "" if res.name is None else res.relpath + "/"
            infos = []
            for name in sorted(os.listdir(fd)):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                infos.append(_info(st, prefix + name, name))
            return infos
        finally:
            os.close(fd)


def delete_path(root: Path, path: str) -> None:
    """Delete file, symlink or directory tree ``path`` inside ``root``.

    A symlink is removed itself, never followed; a tree is removed without following any
    symlink in it. Deleting the workspace root is refused.
    """
    with _resolve(root, path, follow_final=False) as res:
        if res.name is None:
            raise WorkspaceError("refusing to delete the workspace root")
        try:
            st = os.stat(res.name, dir_fd=res.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path) from None
        if stat.S_ISDIR(st.st_mode):
            remove_tree(res.dir_fd, res.name)
        else:
            os.unlink(res.name, dir_fd=res.dir_fd)


def walk_tree(root_fd: int) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """Yield ``(dir_fd, prefix, name, lstat)`` for every entry below ``root_fd``.

    Parents come before their children, names in sorted order; ``prefix + name`` is the
    entry's relative path. Nothing is followed: symlinks are yielded as themselves.
    ``dir_fd`` is valid until the next entry is asked for.

    Directories are entered through ``O_NOFOLLOW`` descriptors and left through ``..``,
    checked to be the directory they were entered from; one directory is open at a time
    (besides ``root_fd``), so any depth works. A directory moved while it is walked makes
    the walk fail (:class:`~sandstorm.WorkspaceError`), never leave the tree.
    """
    cur = os.dup(root_fd)
    stack: list[tuple[tuple[int, int], str, Iterator[str]]] = [
        (_ident(cur), "", iter(sorted(os.listdir(cur))))
    ]
    try:
        while stack:
            _, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if stack:
                    cur = _up(cur, stack[-1][0], prefix)
                continue
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield cur, prefix, name, st
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise WorkspaceError(f"cannot read {prefix + name!r}: {exc.strerror}") from None
                if _ident(sub) != (st.st_dev, st.st_ino):
                    os.close(sub)
                    raise WorkspaceError(f"{prefix + name!r} changed while it was read; retry")
                try:
                    entries = iter(sorted(os.listdir(sub)))
                except BaseException:
                    os.close(sub)
                    raise
                os.close(cur)
                cur = sub
                stack.append(((st.st_dev, st.st_ino), f"{prefix}{name}/", entries))
    finally:
        os.close(cur)


class _Cursor:
    """One open directory below a root, moved between relative paths one step at a time.

    Going down opens a component with ``O_NOFOLLOW`` (creating it when asked); going up
    reopens ``..`` and checks it is the directory it came from. Consecutive paths that
    share a prefix (a tree written in order) cost one step each, at any depth.
    """

    def __init__(
        self, root_fd: int, owner: Owner | None, created: dict[str, tuple[int, float | None]]
    ) -> None:
        self._fd = os.dup(root_fd)
        self._idents = [_ident(self._fd)]
        self._parts: list[str] = []
        self._owner = owner
        self._created = created

    def goto(self, parts: list[str], relpath: str, *, create: bool = True) -> int:
        mine = self._parts
        # list slices compare in C: deep trees must not cost a Python loop per entry
        if len(mine) <= len(parts) and parts[: len(mine)] == mine:
            common = len(mine)
        elif len(parts) < len(mine) and mine[: len(parts)] == parts:
            common = len(parts)
        else:
            common = 0
            for here, theirs in zip(mine, parts, strict=False):
                if here != theirs:
                    break
                common += 1
        while len(self._parts) > common:
            self._fd = _up(self._fd, self._idents[-2], relpath)
            self._idents.pop()
            self._parts.pop()
        for comp in parts[common:]:
            try:
                new = os.open(comp, _DIR_FLAGS, dir_fd=self._fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(comp, 0o700, dir_fd=self._fd)
                _chown(comp, self._fd, self._owner)
                self._created.setdefault("/".join([*self._parts, comp]), (_NEW_DIR_MODE, None))
                new = os.open(comp, _DIR_FLAGS, dir_fd=self._fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    shown = "/".join([*self._parts, comp])
                    raise WorkspaceError(
                        f"entry {relpath!r} goes through {shown!r}, which is not a "
                        "directory (a symlink or a file); refusing to follow it"
                    ) from None
                raise
            os.close(self._fd)
            self._fd = new
            self._idents.append(_ident(new))
            self._parts.append(comp)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class TreeWriter:
    """Write a tree of entries below ``root`` without ever following a symlink.

    Used to restore snapshots and copy templates: entry paths are relative POSIX paths
    (``..``, absolute paths and paths through symlinks are refused with
    :class:`~sandstorm.WorkspaceError`), every entry is owned by ``owner``, and
    directory modes and times are applied in :meth:`close` so restrictive directory
    modes do not block writing their contents. Use it as a context manager.
    """

    def __init__(self, root: Path, owner: Owner | None) -> None:
        self._root = root
        self._owner = owner
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dirs: dict[str, tuple[int, float | None]] = {}
        self._cursor = _Cursor(self._root_fd, owner, self._dirs)
        self._last: tuple[str, list[str]] = ("", [])
        self._source = _Cursor(self._root_fd, owner, self._dirs)

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(apply=exc_info[0] is None)

    def _parts(self, relpath: str) -> list[str]:
        last, last_parts = self._last
        if relpath == last:
            return list(last_parts)
        # entries come parent first: reuse the previous split for the shared prefix, so a
        # deep tree does not cost a split of its whole path per entry
        if last and relpath.startswith(last + "/"):
            parts = last_parts + self._split(relpath[len(last) + 1 :], relpath)
        elif last.startswith(relpath + "/") and not relpath.startswith("/"):
            parts = last_parts[: relpath.count("/") + 1]
            if "/".join(parts) != relpath:
                parts = self._split(relpath, relpath)
        else:
            parts = self._split(relpath, relpath)
        self._last = (relpath, parts)
        return list(parts)

    @staticmethod
    def _split(tail: str, relpath: str) -> list[str]:
        if "\0" in tail:
            raise WorkspaceError(f"entry {relpath!r} contains a NUL byte")
        if relpath.startswith("/"):
            raise WorkspaceError(f"entry {relpath!r} is an absolute path")
        parts = tail.split("/")
        if "" in parts or "." in parts:
            parts = [p for p in parts if p not in ("", ".")]
        if ".." in parts:
            raise WorkspaceError(f"entry {relpath!r} contains '..'")
        return parts

    @contextmanager
    def _parent(self, relpath: str, *, source: bool = False) -> Iterator[tuple[int, str | None]]:
        """The fd of ``relpath``'s parent directory (created as needed) and its name."""
        parts = self._parts(relpath)
        cursor = self._source if source else self._cursor
        yield cursor.goto(parts[:-1], relpath, create=not source), (parts[-1] if parts else None)

    def _clear(self, fd: int, name: str, relpath: str) -> None:
        """Remove a non-directory already at ``name`` so a new entry can take its place."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise WorkspaceError(f"entry {relpath!r} would replace a directory")
        os.unlink(name, dir_fd=fd)

    def mkdir(self, relpath: str, mode: int, mtime: float | None = None) -> None:
        """Create directory ``relpath`` (mode and time are applied on close)."""
        with self._parent(relpath) as (fd, name):
            key = "/".join(self._parts(relpath))
            self._dirs[key] = (mode & 0o7777, mtime)
            if name is None:
                return  # the root itself: only its mode and time
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    self._clear(fd, name, relpath)
                    os.mkdir(name, 0o700, dir_fd=fd)
            _chown(name, fd, self._owner)

    def file(
        self, relpath: str, source: IO[bytes], size: int, mode: int, mtime: float | None = None
    ) -> None:
        """Create regular file ``relpath`` with exactly ``size`` bytes read from ``source``."""
        with self._parent(relpath) as (fd, name):
            if name is None:
                raise WorkspaceError("a file entry cannot replace the root directory")
            self._clear(fd, name, relpath)
            out = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=fd,
            )
            try:
                remaining = size
                while remaining > 0:
                    chunk = source.read(min(_COPY_CHUNK, remaining))
                    if not chunk:
                        raise WorkspaceError(f"entry {relpath!r} is truncated")
                    remaining -= len(chunk)
                    if not chunk.strip(b"\0"):
                        # zeros stay a hole: a sparse file comes back sparse (and fits
                        # the disk limit it fitted before)
                        os.lseek(out, len(chunk), os.SEEK_CUR)
                        continue
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
                os.ftruncate(out, size)
                if self._owner is not None:
                    os.fchown(out, *self._owner)
                os.fchmod(out, mode & 0o7777)
                if mtime is not None:
                    ns = int(mtime * 1_000_000_000)
                    os.utime(out, ns=(ns, ns))
            finally:
                os.close(out)

    def symlink(self, relpath: str, target: str, mtime: float | None = None) -> None:
        """Create symlink ``relpath`` -> ``target`` (stored verbatim, never followed here)."""
        if "\0" in target:
            raise WorkspaceError(f"symlink {relpath!r} has a NUL byte in its target")
        with self._parent(relpath) as (fd, name):
            if name is None:
                raise WorkspaceError("a symlink entry cannot replace the root directory")
            self._clear(fd, name, relpath)
            os.symlink(target, name, dir_fd=fd)
            _chown(name, fd, self._owner)
            if mtime is not None:
                ns = int(mtime * 1_000_000_000)
                os.utime(name, ns=(ns, ns), dir_fd=fd, follow_symlinks=False)

    def hardlink(self, relpath: str, existing: str) -> None:
        """Create ``relpath`` as a hard link to the already written entry ``existing``."""
        with (
            self._parent(existing, source=True) as (src_fd, src_name),
            self._parent(relpath) as (fd, name),
        ):
            if name is None or src_name is None:
                raise WorkspaceError(f"hard link {relpath!r} -> {existing!r} is invalid")
            st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(
                    f"hard link {relpath!r} must point to a regular file, not {existing!r}"
                )
            self._clear(fd, name, relpath)
            os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)

    def fifo(self, relpath: str, mode: int, mtime: float | None = None) -> None:
        """Create named pipe ``relpath``."""
        with self._parent(relpath) as (fd, name):
            if name is None:
                raise WorkspaceError("a fifo entry cannot replace the root directory")
            self._clear(fd, name, relpath)
            os.mkfifo(name, 0o600, dir_fd=fd)
            # a read end opened non-blocking never waits for a writer
            pipe = os.open(
                name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            try:
                if self._owner is not None:
                    os.fchown(pipe, *self._owner)
                os.fchmod(pipe, mode & 0o7777)
                if mtime is not None:
                    ns = int(mtime * 1_000_000_000)
                    os.utime(pipe, ns=(ns, ns))
            finally:
                os.close(pipe)

    def close(self, *, apply: bool = True) -> None:
        """Apply directory modes and times (deepest first) and release the root fd."""
        if self._root_fd < 0:
            return
        try:
            if apply:
                # children were recorded after their parents: reversed, the deepest first
                for relpath in reversed(list(self._dirs)):
                    mode, mtime = self._dirs[relpath]
                    self._apply_dir(relpath, mode, mtime)
        finally:
            self._cursor.close()
            self._source.close()
            os.close(self._root_fd)
            self._root_fd = -1

    def _apply_dir(self, relpath: str, mode: int, mtime: float | None) -> None:
        if not relpath:
            if self._owner is not None:
                os.fchown(self._root_fd, *self._owner)
            os.fchmod(self._root_fd, mode)
            if mtime is not None:
                ns = int(mtime * 1_000_000_000)
                os.utime(self._root_fd, ns=(ns, ns))
            return
        with self._parent(relpath) as (fd, name):
            assert name is not None
            dfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                os.fchmod(dfd, mode)
                if mtime is not None:
                    ns = int(mtime * 1_000_000_000)
                    os.utime(dfd, ns=(ns, ns))
            finally:
                os.close(dfd)
