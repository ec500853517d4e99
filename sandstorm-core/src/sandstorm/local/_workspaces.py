"""Workspaces as directories: ``{root}/workspaces/{id}/meta.json`` plus ``files/``.

``meta.json`` is the :class:`~sandstorm.Workspace` model as JSON; ``env.json`` holds the
workspace's environment variables; ``files/`` is the code's working directory, owned by
the sandbox uid so the code can write it.

With disk images (``images=True``, see :mod:`._disk`), ``files/`` is the mount point of
the workspace's own ``disk.img``: the store mounts it at creation, again on first use
after a restart, and deletion is unmount plus unlink. ``workspaces/`` itself is then a
shared mount, so images mounted after a sandbox was prepared still reach it.

Several stores (providers) may use one root at once, in one process or several, so a
mount is shared: ``{id}/mount-user.*`` name the open stores using it (``host:pid:start``
of their process, see :func:`sandstorm._exits.current_owner`, plus a token per store;
those of dead processes are pruned whenever they are read). They are only read or
written under the workspace's lock (:meth:`WorkspaceStore._locked`), as is every mount
and unmount of that image. A store records itself when it mounts or first uses a
workspace; :meth:`WorkspaceStore.close` unmounts only the images no other open store
uses; :meth:`WorkspaceStore.prepare` adopts only mounts whose users are all gone (a
crash left them), which the next store to close unmounts.

Blank workspaces can be made ahead (:meth:`WorkspaceStore.make_spares`): a directory
under ``workspaces/.spare/`` with its image formatted and mounted, never shown to code and
never listed; :meth:`WorkspaceStore.claim_spare` renames one into place for a new
workspace, which takes the format, attach and mount off the caller's path. Spares are
removed at :meth:`WorkspaceStore.close` (a crashed process's ones when the next store
on the root is prepared).

Nothing here recurses in Python or follows a link: deleting a tree the code made
(any depth, any size) goes through :func:`._files.remove_tree`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from .._errors import WorkspaceError, WorkspaceNotFound
from .._exits import current_owner, owner_alive
from .._models import Workspace
from . import _disk

log = logging.getLogger("sandstorm.local")

__all__ = ["WorkspaceStore", "chown_tree", "disk_usage", "pid_alive"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it to ``uid:gid`` (entries already right are skipped).

    Walks by descriptors (any depth, no symlink followed, see :func:`._files.walk_tree`).
    """
    from ._files import walk_tree

    root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(root)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(root, uid, gid)
        for dir_fd, _, name, est in walk_tree(root):
            if (est.st_uid, est.st_gid) != (uid, gid):
                with contextlib.suppress(FileNotFoundError):
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(root)


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk by everything below ``path`` (hard links counted once).

    The fallback without disk images: only what a walk sees (not unlinked open files).
    """
    from ._files import walk_tree

    total = 0
    seen: set[tuple[int, int]] = set()
    try:
        root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        for _, _, _, st in walk_tree(root):
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_blocks * 512
    except (OSError, ValueError, WorkspaceError):
        pass  # the tree changed under the walk: what was counted so far
    finally:
        os.close(root)
    return total


_USER = "mount-user."
"""Prefix of the empty files (in a workspace's directory) naming the stores that use its
mount: ``mount-user.{host}:{pid}:{start}:{token}``. Files, not a list in one file: adding
or removing a user writes no data (rewriting a file makes ext4 flush it: milliseconds)."""


def _users(path: Path) -> list[str]:
    """The users (``host:pid:start:token``) of the workspace's mount whose process lives;
    the records of dead ones are removed."""
    users = []
    for name in os.listdir(path):
        if name.startswith(_USER):
            user = name[len(_USER) :]
            if owner_alive("/".join(user.rsplit(":", 3)[:3])) is True:
                users.append(user)
            else:
                (path / name).unlink(missing_ok=True)
    return users


def _add_user(path: Path, user: str) -> None:
    os.close(os.open(path / f"{_USER}{user}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def _remove_user(path: Path, user: str) -> None:
    (path / f"{_USER}{user}").unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkspaceStore:
    """Create, find, list and delete workspace directories under ``root``."""

    def __init__(
        self, root: Path, provider: str, owner: tuple[int, int] | None, *, images: bool = False
    ) -> None:
        self.root = root
        self.base = root / "workspaces"
        self.images = images
        self._provider = provider
        self._owner = owner
        self._prepared = False
        self._shared = False
        self._mounted: set[str] = set()
        self._users_fd: int | None = None
        self._uids: set[int] | None = None
        self._uid_lock = threading.Lock()
        self._spares: dict[int, list[Path]] = {}
        self._spare_lock = threading.Lock()
        self._token = secrets.token_hex(4)

    @property
    def _user(self) -> str:
        """This store as a user of mounts: its process (``host:pid:start``) and a token."""
        return f"{current_owner().replace('/', ':')}:{self._token}"

    def path(self, workspace_id: str) -> Path:
        """The workspace's directory; :class:`WorkspaceNotFound` for a malformed id."""
        if not _ID.match(workspace_id):
            raise WorkspaceNotFound(workspace_id, self._provider)
        return self.base / workspace_id

    @staticmethod
    def leftovers(root: Path) -> list[str]:
        """What providers with state dir ``root`` left behind (relative paths): workspaces,
        trash and blank workspaces, held names. Empty once every one of them closed clean."""
        workspaces = root / "workspaces"
        containers = (".trash", ".spare", ".names")  # what is inside them counts
        places = [workspaces, *(workspaces / name for name in containers), root / "trash"]
        return sorted(
            str(entry.relative_to(root))
            for place in places
            if place.is_dir()
            for entry in place.iterdir()
            if entry.name not in (*containers, ".built")  # the name index's marker
        )

    def exists(self, workspace_id: str) -> bool:
        """True while the workspace is stored (its record present, not discarded)."""
        try:
            return (self.path(workspace_id) / "meta.json").is_file()
        except WorkspaceNotFound:
            return False

    def files(self, workspace_id: str) -> Path:
        """The workspace's ``files/`` directory (the code's working directory)."""
        return self.path(workspace_id) / "files"

    def image(self, workspace_id: str) -> Path:
        """The workspace's disk image (present only with disk images)."""
        return self.path(workspace_id) / "disk.img"

    def prepare(self) -> None:
        """Create the state directories (private to the host user).

        With disk images, also make ``workspaces/`` a shared mount and adopt the images
        mounted with no live user (a crash left them; :meth:`close` unmounts them). Images
        another open store (in this process or another) uses stay its own.
        """
        if self._prepared and self.base.is_dir():
            return
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        if self.images:
            # every provider using this root holds a shared lock on it while it is open;
            # the last one to close (the only one that can lock it exclusively) removes
            # the bind below, even one a killed process left
            if self._users_fd is None:
                self._users_fd = self._open_users()
                if self._users_fd is not None:
                    fcntl.flock(self._users_fd, fcntl.LOCK_SH)
            # ours to remove at close: a bind made now, or one a crashed provider made
            # (marked); a mount point someone else made stays theirs
            marker = self.root / ".workspaces-bind"
            self._purge_stale_spares()  # before the bind copies their mounts
            if _disk.share(self.base):
                marker.touch()
            self._shared = marker.exists()
            for point in _disk.mounted_below(self.base):
                if point.name == "files" and point.parent.parent == self.base.resolve():
                    self._adopt(point.parent.name)
        self._prepared = True

    def _adopt(self, workspace_id: str) -> None:
        """Use a mount found at start when no open store uses it (else leave it be)."""
        try:
            with self._locked(workspace_id):
                path = self.path(workspace_id)
                users = _users(path)
                if not _disk.is_mounted(path / "files") or (users and self._user not in users):
                    return  # gone meanwhile, or another open store's
                _add_user(path, self._user)
        except (FileNotFoundError, NotADirectoryError, WorkspaceNotFound):
            return  # deleted meanwhile
        self._mounted.add(workspace_id)

    def _use(self, workspace_id: str) -> None:
        """Record this store as a user of the workspace's mount (under its lock)."""
        _add_user(self.path(workspace_id), self._user)

    def create(
        self, workspace: Workspace, env: Mapping[str, str], disk_bytes: int | None = None
    ) -> Workspace:
        """Make the directories (and disk image) and write ``meta.json``; returns ``workspace``."""
        self.prepare()
        path = self.path(workspace.id)
        files = path / "files"
        spare = bool(self.images and disk_bytes and self.claim_spare(workspace.id, disk_bytes))
        if not spare:
            path.mkdir(mode=0o700)
            files.mkdir(mode=0o755)
        try:
            if self.images and disk_bytes and not spare:
                _disk.create_image(self.image(workspace.id), disk_bytes)
                with self._locked(workspace.id):
                    _disk.mount_image(self.image(workspace.id), files, fresh=True)
                    self._use(workspace.id)
                self._mounted.add(workspace.id)
                with contextlib.suppress(OSError):
                    os.rmdir(files / "lost+found")
            if self._owner is not None:
                os.chown(files, *self._owner)  # the image's root, when there is one
            if env:
                (path / "env.json").write_text(json.dumps(dict(env)))
            self.save(workspace)
        except BaseException:
            self.purge(path)
            raise
        return workspace

    def _purge_stale_spares(self) -> None:
        """Remove the blank workspaces of processes that are gone (a crash left them)."""
        if self.spare_dir.is_dir():
            for entry in self.spare_dir.iterdir():
                pid = entry.name.split(".", 1)[0]
                if not pid.isdigit() or not pid_alive(int(pid)):
                    self.purge(entry)

    @property
    def spare_dir(self) -> Path:
        """Where blank workspaces wait (not a valid workspace id: never listed)."""
        return self.base / ".spare"

    def spare_count(self, disk_bytes: int) -> int:
        """How many blank workspaces of ``disk_bytes`` are ready."""
        with self._spare_lock:
            return len(self._spares.get(disk_bytes, []))

    def make_spares(self, disk_bytes: int, count: int, *, max_sizes: int = 4) -> None:
        """Make blank workspaces (image formatted and mounted) until ``count`` are ready.

        At most ``max_sizes`` disk sizes are kept: the oldest size's spares are removed.
        Only with disk images (without them a workspace costs two ``mkdir``).
        """
        if not self.images:
            return
        self.prepare()
        with self._spare_lock:
            ready = self._spares.pop(disk_bytes, [])
            self._spares[disk_bytes] = ready  # most recently wanted size last
            dropped = []
            while len(self._spares) > max_sizes:
                dropped += self._spares.pop(next(iter(self._spares)))
        for path in dropped:
            self.purge(path)
        self.spare_dir.mkdir(exist_ok=True, mode=0o700)
        while self.spare_count(disk_bytes) < count:
            path = self.spare_dir / f"{os.getpid()}.{secrets.token_hex(6)}"
            path.mkdir(mode=0o700)
            files = path / "files"
            files.mkdir(mode=0o755)
            try:
                # ours from the start: a claimed spare is renamed into place already used
                _add_user(path, self._user)
                _disk.create_image(path / "disk.img", disk_bytes)
                _disk.mount_image(path / "disk.img", files, fresh=True)
                with contextlib.suppress(OSError):
                    os.rmdir(files / "lost+found")
            except BaseException:
                self.purge(path)
                raise
            with self._spare_lock:
                if disk_bytes in self._spares:
                    self._spares[disk_bytes].append(path)
                    continue
            self.purge(path)  # the size was dropped meanwhile
            return

    def claim_spare(self, workspace_id: str, disk_bytes: int) -> bool:
        """Move a blank workspace of ``disk_bytes`` into place as ``workspace_id``."""
        target = self.path(workspace_id)
        while True:
            with self._spare_lock:
                ready = self._spares.get(disk_bytes)
                if not ready:
                    return False
                path = ready.pop()
            try:
                path.rename(target)
            except OSError as exc:
                log.warning("could not use the prepared workspace %s: %s", path, exc)
                self.purge(path)
                continue
            self._mounted.add(workspace_id)
            return True

    def drop_spares(self) -> None:
        """Remove every blank workspace this store made."""
        with self._spare_lock:
            spares = [path for ready in self._spares.values() for path in ready]
            self._spares.clear()
        for path in spares:
            self.purge(path)

    @contextlib.contextmanager
    def _locked(self, workspace_id: str) -> Iterator[None]:
        """Serialise mounting one workspace's image across processes sharing the root."""
        fd = os.open(self.path(workspace_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _mount(self, workspace_id: str) -> None:
        """Mount the image unless it is mounted already (by anyone); record us as a user."""
        files = self.files(workspace_id)
        with self._locked(workspace_id):
            if not _disk.is_mounted(files):
                _disk.mount_image(self.image(workspace_id), files)
            self._use(workspace_id)
        self._mounted.add(workspace_id)

    def mounted(self, workspace_id: str) -> Path:
        """The workspace's ``files/``, its image mounted there first when it has one.

        The first use by this store records it as a user of the mount (shared with any
        other store using the same root; see :meth:`close`).
        """
        files = self.files(workspace_id)
        if self.images and self.image(workspace_id).is_file():
            self.prepare()  # the shared bind must come before any image below it
            if workspace_id not in self._mounted or not _disk.is_mounted(files):
                self._mount(workspace_id)
        return files

    def usage(self, workspace_id: str) -> tuple[int, int] | None:
        """(bytes used, bytes free) of the workspace's image; ``None`` without one."""
        if not self.images or not self.image(workspace_id).is_file():
            return None
        return _disk.usage(self.mounted(workspace_id))

    def close(self) -> None:
        """Stop using the images this store used; unmount those no other open store uses.

        A busy one stays mounted (with no user recorded: the next store adopts it). Then
        wait (up to a second) for the released loop devices to go: sandboxes killed just
        before may still hold a copy of a mount for a moment.
        """
        self.drop_spares()
        released = []
        for workspace_id in sorted(self._mounted):
            files = self.files(workspace_id)
            try:
                with self._locked(workspace_id):
                    path = self.path(workspace_id)
                    _remove_user(path, self._user)
                    if _users(path):
                        continue  # another open store still uses it: it unmounts it
                    if _disk.unmount(files, attempts=5):
                        released.append(self.image(workspace_id))
                    else:
                        log.warning("workspace %s is still in use; its disk stays mounted", files)
            except (FileNotFoundError, NotADirectoryError):
                continue  # deleted meanwhile (deletion unmounts)
            except OSError as exc:
                log.warning("unmounting %s: %s", files, exc)
        self._mounted.clear()
        self._purge_stale_spares()  # a killed process's blank workspaces hold the bind too
        self.release_bind()
        self._shared = False
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None
        self._prepared = False
        deadline = time.monotonic() + 1.0
        while released and time.monotonic() < deadline:
            released = [image for image in released if _disk.attached_device(image)]
            if released:
                time.sleep(0.01)

    def release_bind(self) -> None:
        """Remove the shared bind of ``workspaces/`` when no image is mounted below it and
        no other provider uses this root; a no-op otherwise (the last one removes it)."""
        marker = self.root / ".workspaces-bind"
        if not marker.exists():
            return
        with self._alone() as alone:
            if alone and _disk.unshare(self.base):
                marker.unlink(missing_ok=True)

    def _open_users(self) -> int | None:
        """A descriptor of ``root/.users``, the file every open provider holds a shared lock on."""
        try:
            return os.open(self.root / ".users", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None

    @contextlib.contextmanager
    def _alone(self) -> Iterator[bool]:
        """Whether no other open provider uses this root; kept true for the ``with`` block.

        Our own shared lock is upgraded for the block (or a lock taken just for it), then
        put back as it was: no exclusive lock outlives the block.
        """
        held = self._users_fd
        fd = held if held is not None else self._open_users()
        if fd is None:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
            else:
                yield True
        finally:
            if held is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)  # a failed upgrade may have dropped it too
            else:
                os.close(fd)

    def save(self, workspace: Workspace) -> None:
        """Atomically (re)write the workspace's ``meta.json``."""
        path = self.path(workspace.id)
        tmp = path / f".meta.{secrets.token_hex(4)}.tmp"
        tmp.write_text(workspace.model_dump_json(indent=2))
        tmp.replace(path / "meta.json")

    def get(self, workspace_id: str) -> Workspace:
        """The stored workspace; :class:`WorkspaceNotFound` when there is none."""
        try:
            text = (self.path(workspace_id) / "meta.json").read_text()
        except (FileNotFoundError, NotADirectoryError):
            raise WorkspaceNotFound(workspace_id, self._provider) from None
        return Workspace.model_validate_json(text)

    def env(self, workspace_id: str) -> dict[str, str]:
        """The workspace's own environment variables."""
        try:
            data = json.loads((self.path(workspace_id) / "env.json").read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def list(self) -> list[Workspace]:
        """Every stored workspace, oldest first."""
        if not self.base.is_dir():
            return []
        found = []
        for entry in self.base.iterdir():
            if not _ID.match(entry.name):
                continue
            try:
                found.append(self.get(entry.name))
            except (WorkspaceNotFound, ValueError):
                continue
        return sorted(found, key=lambda ws: ws.created_at)

    def delete(self, workspace_id: str) -> None:
        """Remove the workspace's directory tree; :class:`WorkspaceNotFound` if absent."""
        self.purge(self.discard(workspace_id))

    def discard(self, workspace_id: str) -> Path:
        """Make the workspace disappear at once (a rename into ``workspaces/.trash/``).

        Returns the trash path (on the same mount as the workspace, so the rename works
        when ``workspaces/`` is a bind mount).

        :meth:`purge` removes the files afterwards, possibly in the background.
        """
        path = self.path(workspace_id)
        if not (path / "meta.json").exists():
            raise WorkspaceNotFound(workspace_id, self._provider)
        trash = self.base / ".trash"
        trash.mkdir(exist_ok=True, mode=0o700)
        target = trash / f"{workspace_id}.{secrets.token_hex(4)}"
        try:
            path.rename(target)
        except FileNotFoundError:
            raise WorkspaceNotFound(workspace_id, self._provider) from None
        self._mounted.discard(workspace_id)
        return target

    def uid(self, workspace_id: str) -> int | None:
        """The uid recorded for the workspace (see :meth:`assign_uid`), None if none yet."""
        try:
            return int((self.path(workspace_id) / "uid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def assign_uid(self, workspace_id: str, uid_range: tuple[int, int]) -> int:
        """Give the workspace a uid from ``uid_range`` that no other workspace here has."""
        with self._uid_lock:
            if self._uids is None:
                self._uids = {uid for ws in self.list() if (uid := self.uid(ws.id)) is not None}
            first, last = uid_range
            if len(self._uids) > (last - first) // 2:
                raise WorkspaceError(f"the uid range {first}-{last} is (nearly) exhausted")
            uid = secrets.randbelow(last - first + 1) + first
            while uid in self._uids:
                uid = secrets.randbelow(last - first + 1) + first
            path = self.path(workspace_id)
            tmp = path / f".uid.{secrets.token_hex(4)}.tmp"
            tmp.write_text(str(uid))
            tmp.replace(path / "uid")
            self._uids.add(uid)
            return uid

    @staticmethod
    def purge(path: Path) -> None:
        """Remove a discarded workspace for good: unmount its image, then its directory.

        No walk of an image's content; a workspace without one is removed without
        recursion or following links. Errors are logged, never raised: the trash is
        tried again at the next start.
        """
        from ._files import remove_tree

        files = path / "files"
        try:
            if _disk.is_mounted(files):
                _disk.unmount(files, lazy=True)
            parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                remove_tree(parent, path.name)
            finally:
                os.close(parent)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("could not remove %s: %s", path, exc)

    def purge_trash(self) -> None:
        """Remove whatever earlier processes left in the trash."""
        for trash in (self.base / ".trash", self.root / "trash"):  # the latter: older layout
            if trash.is_dir():
                for entry in trash.iterdir():
                    self.purge(entry)

    @staticmethod
    def new_id() -> str:
        """A fresh random workspace id."""
        return secrets.token_hex(8)

    @staticmethod
    def now() -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)
