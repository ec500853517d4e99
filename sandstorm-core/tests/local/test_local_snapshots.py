"""Snapshots: real archives that round-trip a workspace, and hostile archives refused."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local._snapshots import SnapshotStore

IS_ROOT = os.geteuid() == 0
SANDBOX = (65534, 65534)
needs_root = pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")


def owner() -> tuple[int, int] | None:
    return SANDBOX if IS_ROOT else None


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots", "local")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace with binary files, odd modes, symlinks, hard links and empty dirs."""
    root = tmp_path / "ws" / "files"
    root.mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "blob.bin").write_bytes(bytes(range(256)) * 4096 + os.urandom(12345))
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho run\n")
    os.chmod(root / "run.sh", 0o750)
    (root / "private").write_bytes(b"")
    os.chmod(root / "private", 0o600)
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "ro").mkdir()
    (root / "ro" / "inside.txt").write_text("read only dir\n")
    os.chmod(root / "ro", 0o555)
    os.symlink("src/main.py", root / "link-rel")
    os.symlink("/usr/bin/python3", root / "link-abs")  # a venv's interpreter link
    os.symlink("does/not/exist", root / "dangling")
    os.link(root / "src" / "main.py", root / "hard.py")
    os.mkfifo(root / "pipe", 0o640)
    (root / "unicode-\u00e9\u4e2d.txt").write_text("\u2603")
    os.utime(root / "src" / "main.py", (1_600_000_000.5, 1_600_000_000.5))
    return root


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything observable about a tree: type, mode, content or link target, mtime."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, int(st.st_mtime))
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ("fifo", mode)
            else:
                out[rel] = ("file", mode, path.read_bytes(), int(st.st_mtime))
    rst = root.stat()
    out["."] = ("dir", stat.S_IMODE(rst.st_mode))
    return out


def test_round_trip_is_identical(store: SnapshotStore, workspace: Path, tmp_path: Path) -> None:
    before = tree(workspace)
    snap = store.create(workspace, "ws-1", name="first")
    assert isinstance(snap, sandstorm.Snapshot)
    assert snap.id.startswith("snap-")
    assert snap.workspace_id == "ws-1"
    assert snap.provider == "local"
    assert snap.name == "first"
    assert snap.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - snap.created_at).total_seconds()) < 60
    archive = store.archive_path(snap.id)
    assert snap.size == archive.stat().st_size > 0
    # a real archive, readable by any tar implementation
    with tarfile.open(archive) as tf:
        names = set(tf.getnames())
    assert {"src/main.py", "src/blob.bin", "empty/nested", "link-abs", "pipe"} <= names

    dest = tmp_path / "restored" / "files"
    restored = store.restore_into(snap.id, dest, owner())
    assert restored == snap
    after = tree(dest)
    assert after == before
    st_main = (dest / "src" / "main.py").stat()
    assert st_main.st_mtime == pytest.approx(1_600_000_000.5, abs=1e-3)
    assert st_main.st_ino == (dest / "hard.py").stat().st_ino, "hard link not kept"


def test_uncompressed_store(tmp_path: Path, workspace: Path) -> None:
    store = SnapshotStore(tmp_path / "plain", "local", compression="none")
    snap = store.create(workspace, "ws-1")
    assert store.archive_path(snap.id).name.endswith(".tar")
    dest = tmp_path / "out"
    store.restore_into(snap.id, dest, owner())
    assert tree(dest) == tree(workspace)


def test_metadata_file_and_listing(store: SnapshotStore, workspace: Path) -> None:
    a = store.create(workspace, "ws-a")
    b = store.create(workspace, "ws-b")
    c = store.create(workspace, "ws-a")
    meta = json.loads((store.directory / f"{a.id}.json").read_text())
    assert meta["snapshot"]["id"] == a.id
    assert store.get(b.id) == b
    assert [s.id for s in store.list()] == [a.id, b.id, c.id]
    assert [s.id for s in store.list("ws-a")] == [a.id, c.id]
    store.delete(b.id)
    assert [s.id for s in store.list()] == [a.id, c.id]
    assert sorted(p.name for p in store.directory.iterdir()) == sorted(
        [f"{a.id}.json", f"{a.id}.tar.gz", f"{c.id}.json", f"{c.id}.tar.gz"]
    )


@pytest.mark.parametrize("bad", ["snap-" + "0" * 32, "nope", "../../etc/passwd", ""])
def test_unknown_ids(store: SnapshotStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(sandstorm.SnapshotNotFound):
        store.get(bad)
    with pytest.raises(sandstorm.SnapshotNotFound):
        store.delete(bad)
    with pytest.raises(sandstorm.SnapshotNotFound):
        store.restore_into(bad, tmp_path / "dest", owner())
    assert not (tmp_path / "dest").exists()


def test_deleted_snapshot_is_gone(store: SnapshotStore, workspace: Path) -> None:
    snap = store.create(workspace, "ws")
    store.delete(snap.id)
    with pytest.raises(sandstorm.SnapshotNotFound):
        store.get(snap.id)
    with pytest.raises(sandstorm.SnapshotNotFound):
        store.delete(snap.id)


def test_concurrent_creates(store: SnapshotStore, workspace: Path) -> None:
    results: list[sandstorm.Snapshot] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            results.append(store.create(workspace, "ws"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({s.id for s in results}) == 6
    assert {s.id for s in store.list()} == {s.id for s in results}
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".tmp-")]


@needs_root
def test_restored_files_are_owned_by_the_sandbox(
    store: SnapshotStore, workspace: Path, tmp_path: Path
) -> None:
    snap = store.create(workspace, "ws")
    dest = tmp_path / "restored"
    store.restore_into(snap.id, dest, SANDBOX)
    for path in [dest, *dest.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == SANDBOX, path


# ------------------------------------------------------------------ hostile archives


def forge(store: SnapshotStore, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    """Write a snapshot whose archive holds exactly ``members`` (a tampered store)."""
    snap_id = "snap-" + "ab" * 16
    archive = store.directory / f"{snap_id}.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    doc = {
        "format": 1,
        "archive": archive.name,
        "snapshot": {
            "id": snap_id,
            "provider": "local",
            "workspace_id": "ws",
            "created_at": "2026-01-01T00:00:00Z",
            "size": archive.stat().st_size,
        },
    }
    (store.directory / f"{snap_id}.json").write_text(json.dumps(doc))
    return snap_id


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("host secret")
    return out


@pytest.mark.parametrize(
    "members",
    [
        pytest.param(lambda out: [member("../escape.txt", data=b"x")], id="dotdot"),
        pytest.param(lambda out: [member(f"{out}/abs.txt", data=b"x")], id="absolute"),
        pytest.param(
            lambda out: [
                member("evil", tarfile.SYMTYPE, link=str(out)),
                member("evil/pwned.txt", data=b"x"),
            ],
            id="through-absolute-symlink",
        ),
        pytest.param(
            lambda out: [
                member("evil", tarfile.SYMTYPE, link="../outside"),
                member("evil/secret.txt", data=b"overwritten"),
            ],
            id="through-relative-symlink",
        ),
        pytest.param(
            lambda out: [member("hard", tarfile.LNKTYPE, link=f"{out}/secret.txt")],
            id="hardlink-absolute",
        ),
        pytest.param(
            lambda out: [member("hard", tarfile.LNKTYPE, link="../outside/secret.txt")],
            id="hardlink-dotdot",
        ),
        pytest.param(lambda out: [member("dev", tarfile.CHRTYPE)], id="device"),
    ],
)
def test_hostile_archive_refused(
    store: SnapshotStore, tmp_path: Path, outside: Path, members: object
) -> None:
    snap_id = forge(store, members(outside))  # type: ignore[operator]
    dest = tmp_path / "dest" / "files"
    with pytest.raises(sandstorm.WorkspaceError):
        store.restore_into(snap_id, dest, owner())
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "host secret"
    assert not (tmp_path / "escape.txt").exists()
    assert not dest.exists(), "a failed restore must remove the directory it created"


def test_corrupt_archive_is_a_clear_error(store: SnapshotStore, workspace: Path) -> None:
    snap = store.create(workspace, "ws")
    store.archive_path(snap.id).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(sandstorm.WorkspaceError, match="corrupt"):
        store.restore_into(snap.id, store.directory.parent / "dest", owner())


def test_stale_temporaries_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    directory = tmp_path / "snaps"
    directory.mkdir()
    stale, fresh = directory / ".tmp-old.gz", directory / ".tmp-new.gz"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (0, 0))
    SnapshotStore(directory, "local")
    assert not stale.exists()
    assert fresh.exists()
