"""Workspaces as directories: ``{root}/workspaces/{id}/meta.json`` plus ``files/``.

``meta.json`` is the :class:`~sandstorm.Workspace` model as JSON; ``env.json`` holds the
workspace's environment variables; ``files/`` is the code's working directory, owned by
the sandbox uid so the code can write it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from .._errors import WorkspaceError, WorkspaceNotFound
from .._models import Workspace

__all__ = ["WorkspaceStore", "chown_tree", "disk_usage"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it to ``uid:gid`` (entries already right are skipped)."""
    stack = [str(path)]
    while stack:
        current = stack.pop()
        st = os.lstat(current)
        if st.st_uid != uid or st.st_gid != gid:
            os.lchown(current, uid, gid)
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        est = entry.stat(follow_symlinks=False)
                        if est.st_uid != uid or est.st_gid != gid:
                            os.lchown(entry.path, uid, gid)
        except NotADirectoryError:
            continue


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk by everything below ``path`` (hard links counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


class WorkspaceStore:
    """Create, find, list and delete workspace directories under ``root``."""

    def __init__(self, root: Path, provider: str, owner: tuple[int, int] | None) -> None:
        self.root = root
        self.base = root / "workspaces"
        self._provider = provider
        self._owner = owner
        self._prepared = False
        self._uids: set[int] | None = None
        self._uid_lock = threading.Lock()

    def path(self, workspace_id: str) -> Path:
        """The workspace's directory; :class:`WorkspaceNotFound` for a malformed id."""
        if not _ID.match(workspace_id):
            raise WorkspaceNotFound(workspace_id, self._provider)
        return self.base / workspace_id

    def files(self, workspace_id: str) -> Path:
        """The workspace's ``files/`` directory (the code's working directory)."""
        return self.path(workspace_id) / "files"

    def prepare(self) -> None:
        """Create the state directories (private to the host user)."""
        if self._prepared and self.base.is_dir():
            return
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        self._prepared = True

    def create(self, workspace: Workspace, env: Mapping[str, str]) -> Workspace:
        """Make the directories and write ``meta.json``; returns ``workspace``."""
        self.prepare()
        path = self.path(workspace.id)
        path.mkdir(mode=0o700)
        files = path / "files"
        files.mkdir(mode=0o755)
        if self._owner is not None:
            os.chown(files, *self._owner)
        if env:
            (path / "env.json").write_text(json.dumps(dict(env)))
        self.save(workspace)
        return workspace

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
        """Make the workspace disappear at once (a rename into ``trash/``); returns the trash path.

        :meth:`purge` removes the files afterwards, possibly in the background.
        """
        path = self.path(workspace_id)
        if not (path / "meta.json").exists():
            raise WorkspaceNotFound(workspace_id, self._provider)
        trash = self.root / "trash"
        trash.mkdir(exist_ok=True, mode=0o700)
        target = trash / f"{workspace_id}.{secrets.token_hex(4)}"
        try:
            path.rename(target)
        except FileNotFoundError:
            raise WorkspaceNotFound(workspace_id, self._provider) from None
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
        """Remove a discarded workspace's files for good."""
        shutil.rmtree(path, ignore_errors=True)

    def purge_trash(self) -> None:
        """Remove whatever earlier processes left in ``trash/``."""
        trash = self.root / "trash"
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
