"""Workspaces and snapshots as plain directories: the bookkeeping of a host-process adapter.

Layout under ``root``::

    workspaces/<id>/meta.json   the Workspace (JSON) and its create-time env
    workspaces/<id>/files/      the workspace's files (the code's working directory)
    snapshots/<id>/meta.json    the Snapshot (JSON)
    snapshots/<id>/files/       a full copy of the files at snapshot time

Every method is synchronous (local filesystem work); ids are checked so no id reaches
outside ``root``. Deleting a workspace first kills every process working inside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import InvalidPath, SnapshotNotFound, WorkspaceError, WorkspaceNotFound
from .._models import FileInfo, NetworkPolicy, Snapshot, Workspace
from ._process import kill_process_tree

__all__ = ["DirectoryStore"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class DirectoryStore:
    """Workspaces, their files and their snapshots under one ``root`` directory.

    ``provider`` is the provider's name, written into every model. Two stores with the
    same ``root`` see the same workspaces (persistence across provider instances); give
    each namespace its own ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], provider: str) -> None:
        self.root = Path(root)
        self.provider = provider
        self._workspaces = self.root / "workspaces"
        self._snapshots = self.root / "snapshots"

    # ------------------------------------------------------------------ workspaces

    def _ws_dir(self, workspace_id: str) -> Path:
        path = self._workspaces / workspace_id
        if not _ID.fullmatch(workspace_id) or not (path / "meta.json").is_file():
            raise WorkspaceNotFound(workspace_id, self.provider)
        return path

    def files(self, workspace: Workspace | str) -> Path:
        """The directory holding the workspace's files; ``WorkspaceNotFound`` if deleted."""
        workspace_id = workspace if isinstance(workspace, str) else workspace.id
        return self._ws_dir(workspace_id) / "files"

    def create(
        self,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        persistent: bool = True,
        template: str | None = None,
        network: NetworkPolicy | None = None,
        source: Path | None = None,
    ) -> Workspace:
        """A new workspace (its files copied from ``source`` when given).

        ``network`` is what the code really gets: this store's processes share the host's
        network, so that is the default (claiming ``blocked`` would be a lie).
        """
        workspace = Workspace(
            id="ws-" + uuid.uuid4().hex[:16],
            provider=self.provider,
            name=name,
            template=template,
            persistent=persistent,
            created_at=datetime.now(UTC),
            labels=dict(labels or {}),
            network=network or NetworkPolicy(mode="host"),
        )
        path = self._workspaces / workspace.id
        path.mkdir(parents=True)
        if source is None:
            (path / "files").mkdir()
        else:
            shutil.copytree(source, path / "files", symlinks=True)
        meta = {"workspace": workspace.model_dump(mode="json"), "env": dict(env or {})}
        _write_json(path / "meta.json", meta)
        return workspace

    def _meta(self, workspace_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self._ws_dir(workspace_id) / "meta.json").read_text())
        return data

    def get(self, workspace_id: str) -> Workspace:
        """The workspace, or ``WorkspaceNotFound``."""
        return Workspace.model_validate(self._meta(workspace_id)["workspace"])

    def env(self, workspace: Workspace | str) -> dict[str, str]:
        """The ``env`` the workspace was created with."""
        workspace_id = workspace if isinstance(workspace, str) else workspace.id
        env: dict[str, str] = self._meta(workspace_id)["env"]
        return env

    def list_workspaces(self) -> list[Workspace]:
        """Every workspace of this store, oldest first."""
        found = []
        for child in self._children(self._workspaces):
            try:
                found.append(self.get(child))
            except (WorkspaceNotFound, ValueError, OSError):
                continue  # being created or deleted right now
        return sorted(found, key=lambda ws: ws.created_at)

    def delete(self, workspace_id: str) -> None:
        """Kill every process working in the workspace, then remove it."""
        path = self._ws_dir(workspace_id)
        hidden = self._workspaces / f".deleting-{workspace_id}-{uuid.uuid4().hex[:6]}"
        os.rename(path, hidden)  # gone at once for get/list, whatever the cleanup takes
        kill_process_tree(None, hidden)
        shutil.rmtree(hidden, ignore_errors=True)

    # ------------------------------------------------------------------ files

    def path(self, workspace: Workspace | str, relpath: str) -> Path:
        """``relpath`` inside the workspace's files; ``InvalidPath`` if it leaves them."""
        base = self.files(workspace).resolve()
        full = (base / relpath).resolve()
        if full != base and base not in full.parents:
            raise InvalidPath(f"path {relpath!r} leaves the workspace")
        return full

    def write_file(self, workspace: Workspace | str, relpath: str, data: bytes) -> None:
        """Write ``data`` to ``relpath``, creating parent directories."""
        target = self.path(workspace, relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def read_file(self, workspace: Workspace | str, relpath: str) -> bytes:
        """The bytes of ``relpath``; ``FileNotFoundError`` when missing."""
        target = self.path(workspace, relpath)
        if target.is_dir():
            raise WorkspaceError(f"{relpath!r} is a directory")
        return target.read_bytes()

    def list_files(self, workspace: Workspace | str, relpath: str) -> list[FileInfo]:
        """The entries of directory ``relpath``; ``FileInfo.path`` is workspace-relative."""
        base = self.files(workspace).resolve()
        directory = self.path(workspace, relpath)
        out = []
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            out.append(
                FileInfo(
                    path=(directory / entry.name).relative_to(base).as_posix(),
                    name=entry.name,
                    is_dir=stat.S_ISDIR(st.st_mode),
                    size=st.st_size,
                    mode=stat.S_IMODE(st.st_mode),
                    modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                )
            )
        return out

    def delete_file(self, workspace: Workspace | str, relpath: str) -> None:
        """Delete a file or a whole tree; ``FileNotFoundError`` when missing."""
        base = self.files(workspace).resolve()
        parent = self.path(workspace, os.path.dirname(relpath) or ".")
        target = parent / os.path.basename(relpath.rstrip("/"))
        if target == base or base not in target.parents:
            raise InvalidPath(f"refusing to delete {relpath!r}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()  # FileNotFoundError when missing

    # ------------------------------------------------------------------ snapshots

    def _snap_dir(self, snapshot_id: str) -> Path:
        path = self._snapshots / snapshot_id
        if not _ID.fullmatch(snapshot_id) or not (path / "meta.json").is_file():
            raise SnapshotNotFound(snapshot_id)
        return path

    def snapshot(self, workspace: Workspace | str, name: str | None = None) -> Snapshot:
        """A full copy of the workspace's files as they are now."""
        workspace_id = workspace if isinstance(workspace, str) else workspace.id
        source = self.files(workspace_id)
        snapshot_id = "snap-" + uuid.uuid4().hex[:16]
        path = self._snapshots / snapshot_id
        path.mkdir(parents=True)
        shutil.copytree(source, path / "files", symlinks=True)
        size = sum(f.stat().st_size for f in (path / "files").rglob("*") if f.is_file())
        snapshot = Snapshot(
            id=snapshot_id,
            provider=self.provider,
            workspace_id=workspace_id,
            created_at=datetime.now(UTC),
            size=max(size, 1),
            name=name,
        )
        _write_json(path / "meta.json", snapshot.model_dump(mode="json"))
        return snapshot

    def restore(self, snapshot_id: str, name: str | None = None) -> Workspace:
        """A new workspace holding a copy of the snapshot's files."""
        path = self._snap_dir(snapshot_id)
        return self.create(name=name, source=path / "files")

    def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot of this store, oldest first."""
        found = []
        for child in self._children(self._snapshots):
            try:
                meta = json.loads((self._snap_dir(child) / "meta.json").read_text())
                found.append(Snapshot.model_validate(meta))
            except (SnapshotNotFound, ValueError, OSError):
                continue
        return sorted(found, key=lambda snap: snap.created_at)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove the snapshot; ``SnapshotNotFound`` if it does not exist."""
        path = self._snap_dir(snapshot_id)
        hidden = self._snapshots / f".deleting-{snapshot_id}-{uuid.uuid4().hex[:6]}"
        os.rename(path, hidden)
        shutil.rmtree(hidden, ignore_errors=True)

    @staticmethod
    def _children(directory: Path) -> list[str]:
        try:
            return [name for name in os.listdir(directory) if _ID.fullmatch(name)]
        except FileNotFoundError:
            return []


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
