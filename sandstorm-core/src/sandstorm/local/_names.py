"""Workspace names: found in one lookup, claimed atomically across processes.

``workspaces/.names/`` holds one file per (namespace, name), named by a hash of the two
and holding the workspace's id. Without it, a named create and every call that gives a
name read every workspace's record (14 ms with 400 live workspaces, growing with each).

A claim happens under an exclusive lock on the directory, which processes sharing the
root take too, so two creates of one name cannot both succeed. An entry whose workspace
is gone (deleted by a process that died before releasing the name) counts as free. A
root made before the index existed has it built once, from the workspaces' records.
Every method blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = ["NameIndex"]

_BUILT = ".built"


class NameIndex:
    """The name index of one root's workspaces directory (``base``).

    ``alive(workspace_id)`` says whether a workspace still exists; ``scan()`` yields
    (namespace, name, id) of every named workspace, for the one-time build.
    """

    def __init__(
        self,
        base: Path,
        alive: Callable[[str], bool],
        scan: Callable[[], Iterable[tuple[str, str, str]]],
    ) -> None:
        self.directory = base / ".names"
        self._alive = alive
        self._scan = scan
        self._built = False

    @staticmethod
    def _key(namespace: str, name: str) -> str:
        return hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:40]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the directory's lock, the index built first if it is not yet."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self.ready:
                self._build()
            yield
        finally:
            os.close(fd)

    def _build(self) -> None:
        """Under the lock: index the named workspaces of a root made before the index."""
        for namespace, name, workspace_id in self._scan():
            self._write(self._key(namespace, name), workspace_id)
        (self.directory / _BUILT).touch()
        self._built = True

    def _write(self, key: str, workspace_id: str) -> None:
        part = self.directory / f".{key}.{os.getpid()}"
        part.write_text(workspace_id)
        part.rename(self.directory / key)

    def _holder(self, key: str) -> str | None:
        try:
            holder = (self.directory / key).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return holder if holder and self._alive(holder) else None

    @property
    def ready(self) -> bool:
        """True once the index is built (a lookup is then one small file read)."""
        if not self._built and (self.directory / _BUILT).exists():
            self._built = True
        return self._built

    def find(self, namespace: str, name: str) -> str | None:
        """The id of the live workspace named ``name`` in ``namespace``, else ``None``."""
        if not self.directory.parent.is_dir():
            return None  # no workspace was ever made under this root
        key = self._key(namespace, name)
        if self.ready:
            return self._holder(key)
        with self._locked():  # builds it first
            return self._holder(key)

    def claim(self, namespace: str, name: str, workspace_id: str) -> str | None:
        """Give ``name`` to ``workspace_id``; the id of the live workspace holding it
        already (nothing changed then), else ``None``."""
        key = self._key(namespace, name)
        with self._locked():
            holder = self._holder(key)
            if holder is not None and holder != workspace_id:
                return holder
            self._write(key, workspace_id)
            return None

    def release(self, namespace: str, name: str, workspace_id: str) -> None:
        """Free ``name`` if ``workspace_id`` holds it."""
        key = self._key(namespace, name)
        with self._locked(), contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if (self.directory / key).read_text() == workspace_id:
                (self.directory / key).unlink()
