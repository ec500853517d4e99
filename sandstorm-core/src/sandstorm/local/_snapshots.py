"""Workspace snapshots as real tar archives plus a JSON metadata file.

A snapshot of a workspace directory is ``{directory}/{id}.tar[.gz]`` (PAX format) next
to ``{directory}/{id}.json``. Both are written to a temporary file and renamed into
place, the metadata last, so a snapshot is either fully visible or not at all, and
concurrent writers never see each other's partial files.

Archiving reads the workspace through directory file descriptors without following any
symlink, so code racing in the sandbox cannot make the host archive a file outside the
workspace. Restoring goes through :class:`~sandstorm.local._files.TreeWriter`: member
names that are absolute or contain ``..`` are refused, no write ever goes through a
symlink (a crafted ``link -> /etc`` followed by ``link/passwd`` fails), hard links must
point at files of the same archive, and device files are refused. Symlinks themselves
are restored verbatim, whatever they point at (a virtualenv's ``bin/python ->
/usr/bin/python3`` must survive); they are inert on the host, whose file operations never
follow a symlink out of the workspace.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

from pydantic import ValidationError

from .._errors import SnapshotNotFound, WorkspaceError
from .._models import Snapshot
from ._files import Owner, TreeWriter, walk_tree

__all__ = ["SnapshotStore"]

_ID_RE = re.compile(r"snap-[0-9a-f]{32}\Z")
_FORMAT = 1
_STALE_TEMP_SECONDS = 24 * 3600


class SnapshotStore:
    """Snapshots of workspace directories, kept in ``directory``.

    ``provider_name`` goes into every :class:`~sandstorm.Snapshot`. ``compression`` is
    ``"gz"`` (the default, at ``compresslevel``) or ``"none"``. Every method is
    blocking; call it from a worker thread in async code.
    """

    def __init__(
        self,
        directory: Path,
        provider_name: str,
        *,
        compression: Literal["gz", "none"] = "gz",
        compresslevel: int = 1,
    ) -> None:
        self.directory = Path(directory)
        self.provider_name = provider_name
        self.compression = compression
        self.compresslevel = compresslevel
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_temporaries()

    def __repr__(self) -> str:
        return f"SnapshotStore({str(self.directory)!r}, {self.provider_name!r})"

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files that a crashed writer left behind (a day old or more)."""
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for path in self.directory.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < cutoff:
                    path.unlink()

    # paths

    def _meta_path(self, snapshot_id: str) -> Path:
        if not isinstance(snapshot_id, str) or not _ID_RE.match(snapshot_id):
            raise SnapshotNotFound(str(snapshot_id))
        return self.directory / f"{snapshot_id}.json"

    def archive_path(self, snapshot_id: str) -> Path:
        """The archive file of ``snapshot_id``; :class:`~sandstorm.SnapshotNotFound` if none."""
        return self.directory / self._load(snapshot_id)[1]

    def _load(self, snapshot_id: str) -> tuple[Snapshot, str]:
        meta = self._meta_path(snapshot_id)
        try:
            raw = json.loads(meta.read_bytes())
            snap = Snapshot.model_validate(raw["snapshot"])
            archive = str(raw["archive"])
        except FileNotFoundError:
            raise SnapshotNotFound(snapshot_id) from None
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise WorkspaceError(f"snapshot {snapshot_id!r} has corrupt metadata: {exc}") from None
        if archive != os.path.basename(archive) or not archive.startswith(snapshot_id):
            raise WorkspaceError(f"snapshot {snapshot_id!r} has corrupt metadata")
        return snap, archive

    def _write_atomic(self, target: Path, write: Callable[[IO[bytes]], None]) -> int:
        """Write ``target`` through a temporary file and a rename; return its size."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=target.suffix)
        try:
            with open(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
                size = os.fstat(fh.fileno()).st_size
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return size

    # public API

    def create(
        self, workspace_files_dir: Path, workspace_id: str, name: str | None = None
    ) -> Snapshot:
        """Archive ``workspace_files_dir`` into a new snapshot of workspace ``workspace_id``."""
        snapshot_id = "snap-" + uuid.uuid4().hex
        suffix = ".tar.gz" if self.compression == "gz" else ".tar"
        archive = f"{snapshot_id}{suffix}"
        created_at = datetime.now(UTC)

        def write_meta(fh: IO[bytes]) -> None:
            fh.write(json.dumps(doc, indent=2).encode())

        def write_archive(fh: IO[bytes]) -> None:
            if self.compression == "gz":
                with tarfile.open(
                    fileobj=fh,
                    mode="w:gz",
                    compresslevel=self.compresslevel,
                    format=tarfile.PAX_FORMAT,
                ) as tf:
                    _archive_tree(tf, Path(workspace_files_dir))
            else:
                with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tf:
                    _archive_tree(tf, Path(workspace_files_dir))

        size = self._write_atomic(self.directory / archive, write_archive)
        snap = Snapshot(
            id=snapshot_id,
            provider=self.provider_name,
            workspace_id=workspace_id,
            created_at=created_at,
            size=size,
            name=name,
        )
        doc = {"format": _FORMAT, "archive": archive, "snapshot": snap.model_dump(mode="json")}
        try:
            self._write_atomic(self._meta_path(snapshot_id), write_meta)
        except BaseException:
            (self.directory / archive).unlink(missing_ok=True)
            raise
        return snap

    def get(self, snapshot_id: str) -> Snapshot:
        """The snapshot ``snapshot_id``; :class:`~sandstorm.SnapshotNotFound` if unknown."""
        return self._load(snapshot_id)[0]

    def list(self, workspace_id: str | None = None) -> builtins.list[Snapshot]:
        """Every snapshot (of ``workspace_id`` only, when given), oldest first."""
        snaps = []
        for meta in self.directory.glob("snap-*.json"):
            try:
                snap = self.get(meta.stem)
            except SnapshotNotFound:
                continue  # deleted meanwhile
            if workspace_id is None or snap.workspace_id == workspace_id:
                snaps.append(snap)
        return sorted(snaps, key=lambda s: (s.created_at, s.id))

    def delete(self, snapshot_id: str) -> None:
        """Delete snapshot ``snapshot_id``; :class:`~sandstorm.SnapshotNotFound` if unknown."""
        _, archive = self._load(snapshot_id)
        try:
            self._meta_path(snapshot_id).unlink()
        except FileNotFoundError:
            raise SnapshotNotFound(snapshot_id) from None
        (self.directory / archive).unlink(missing_ok=True)

    def restore_into(self, snapshot_id: str, dest_dir: Path, owner: Owner | None) -> Snapshot:
        """Recreate the files of ``snapshot_id`` in ``dest_dir``, every entry owned by ``owner``.

        ``dest_dir`` is created when missing (and removed again if the restore fails); an
        existing one should be empty. Contents, modes, symlinks, hard links, empty
        directories and modification times come back as they were archived.
        """
        snap, archive = self._load(snapshot_id)
        dest = Path(dest_dir)
        created = not dest.exists()
        if created:
            dest.mkdir(mode=0o700, parents=True)
            if owner is not None:
                os.chown(dest, *owner)
        try:
            path = self.directory / archive
            if not path.is_file():
                raise SnapshotNotFound(snapshot_id)
            with tarfile.open(path, "r:*") as tf, TreeWriter(dest, owner) as writer:
                for member in tf:
                    _extract(tf, member, writer)
        except tarfile.TarError as exc:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise WorkspaceError(f"snapshot {snapshot_id!r} has a corrupt archive: {exc}") from None
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise
        return snap


def _tarinfo(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = st.st_mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _archive_tree(tf: tarfile.TarFile, root: Path) -> None:
    """Add every entry below ``root`` to ``tf`` without following any symlink."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    hardlinks: dict[tuple[int, int], str] = {}
    try:
        info = _tarinfo(".", os.fstat(root_fd))
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for dir_fd, prefix, name, st in walk_tree(root_fd):
            relname = prefix + name
            info = _tarinfo(relname, st)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                try:
                    info.linkname = os.readlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue  # removed since it was listed
                except OSError as exc:
                    raise WorkspaceError(
                        f"{relname!r} changed while the snapshot was taken; retry"
                    ) from exc
                tf.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tf.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in hardlinks:
                    info.type = tarfile.LNKTYPE
                    info.linkname = hardlinks[key]
                    tf.addfile(info)
                    continue
                _add_file(tf, info, dir_fd, name, relname)
                if st.st_nlink > 1:
                    hardlinks[key] = relname
            # sockets and device files are not workspace content: skipped
    finally:
        os.close(root_fd)


def _add_file(
    tf: tarfile.TarFile, info: tarfile.TarInfo, dir_fd: int, name: str, relname: str
) -> None:
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except FileNotFoundError:
        return  # removed since it was listed
    except OSError as exc:
        raise WorkspaceError(f"cannot archive {relname!r}: {exc.strerror}") from None
    with open(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise WorkspaceError(f"{relname!r} changed while the snapshot was taken; retry")
        info.size = st.st_size
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = st.st_mtime
        try:
            tf.addfile(info, fh)
        except OSError as exc:
            if "unexpected end of data" in str(exc):
                raise WorkspaceError(
                    f"{relname!r} shrank while the snapshot was taken; retry"
                ) from None
            raise


def _extract(tf: tarfile.TarFile, member: tarfile.TarInfo, writer: TreeWriter) -> None:
    name = member.name
    if member.isdir():
        writer.mkdir(name, member.mode, member.mtime)
    elif member.isreg():
        source = tf.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise WorkspaceError(f"archive member {name!r} has no data")
        with source:
            writer.file(name, source, member.size, member.mode, member.mtime)
    elif member.issym():
        writer.symlink(name, member.linkname, member.mtime)
    elif member.islnk():
        writer.hardlink(name, member.linkname)
    elif member.isfifo():
        writer.fifo(name, member.mode, member.mtime)
    else:
        raise WorkspaceError(
            f"archive member {name!r} is a device or unsupported file type; refusing it"
        )
