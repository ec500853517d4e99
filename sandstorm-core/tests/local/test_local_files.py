"""Host-side workspace file operations: behaviour, binary safety, and escapes refused."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local._files import (
    TreeWriter,
    delete_path,
    list_files,
    make_dirs,
    normalize_path,
    open_dir,
    read_file,
    resolve_path,
    write_file,
)

IS_ROOT = os.geteuid() == 0
SANDBOX = (65534, 65534)
needs_root = pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace root and, next to it, an 'outside' directory holding a secret."""
    root = tmp_path / "ws" / "files"
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    return root, outside


def owner() -> tuple[int, int] | None:
    return SANDBOX if IS_ROOT else None


# ------------------------------------------------------------------ basic behaviour


def test_write_read_round_trip_creates_parents(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "a/b/c.txt", b"hello", owner())
    assert read_file(root, "a/b/c.txt") == b"hello"
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"hello"
    assert stat.S_IMODE((root / "a" / "b" / "c.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o755


def test_ten_mib_binary_round_trip(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    data = os.urandom(10 * 1024 * 1024) + bytes(range(256))
    write_file(root, "blob.bin", data, owner())
    assert read_file(root, "blob.bin") == data
    assert (root / "blob.bin").stat().st_size == len(data)


def test_empty_file_and_overwrite_keeps_mode(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "run.sh", b"#!/bin/sh\n", owner(), mode=0o755)
    write_file(root, "run.sh", b"", owner())
    assert read_file(root, "run.sh") == b""
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o755
    assert [p.name for p in root.iterdir()] == ["run.sh"], "temp file left behind"


def test_write_is_atomic_for_concurrent_readers(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    old, new = b"a" * 2_000_000, b"b" * 2_000_000
    write_file(root, "f", old, owner())
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(read_file(root, "f")[:1] + read_file(root, "f")[-1:])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(20):
            write_file(root, "f", new if i % 2 == 0 else old, owner())
    finally:
        stop.set()
        thread.join()
    assert seen <= {b"aa", b"bb", b"ab", b"ba"}
    # every single read was a whole file, never a torn or empty one
    assert all(len(s) == 2 for s in seen)


def test_read_errors_are_builtins(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "d").mkdir()
    with pytest.raises(FileNotFoundError):
        read_file(root, "missing.txt")
    with pytest.raises(FileNotFoundError):
        read_file(root, "nodir/missing.txt")
    with pytest.raises(IsADirectoryError):
        read_file(root, "d")
    with pytest.raises(IsADirectoryError):
        read_file(root, ".")
    with pytest.raises(IsADirectoryError):
        write_file(root, "d", b"x", owner())


def test_read_refuses_fifo_without_blocking_and_honours_max_size(
    layout: tuple[Path, Path],
) -> None:
    root, _ = layout
    os.mkfifo(root / "pipe")
    with pytest.raises(sandstorm.WorkspaceError, match="not a regular file"):
        read_file(root, "pipe")
    write_file(root, "big", b"x" * 100, owner())
    assert read_file(root, "big", max_size=100) == b"x" * 100
    with pytest.raises(sandstorm.WorkspaceError, match="100 bytes, over the 99-byte"):
        read_file(root, "big", max_size=99)


def test_list_files(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "src/main.py", b"print(1)\n", owner())
    write_file(root, "src/data.bin", b"\x00\x01", owner(), mode=0o600)
    (root / "src" / "empty").mkdir()
    os.symlink("main.py", root / "src" / "link")
    infos = list_files(root, "src")
    assert [i.name for i in infos] == ["data.bin", "empty", "link", "main.py"]
    by_name = {i.name: i for i in infos}
    assert by_name["main.py"].path == "src/main.py"
    assert by_name["main.py"].size == 9
    assert not by_name["main.py"].is_dir
    assert by_name["data.bin"].mode == 0o600
    assert by_name["empty"].is_dir
    assert not by_name["link"].is_dir
    assert by_name["main.py"].modified_at.tzinfo is not None
    top = list_files(root)
    assert [(i.path, i.is_dir) for i in top] == [("src", True)]
    with pytest.raises(NotADirectoryError):
        list_files(root, "src/main.py")
    with pytest.raises(FileNotFoundError):
        list_files(root, "nope")


def test_delete_file_and_tree(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "t/a/b/c.txt", b"x", owner())
    write_file(root, "single", b"x", owner())
    delete_path(root, "single")
    assert not (root / "single").exists()
    delete_path(root, "t")
    assert list(root.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        delete_path(root, "t")
    with pytest.raises(sandstorm.WorkspaceError, match="root"):
        delete_path(root, ".")


def test_absolute_path_inside_root_is_accepted(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, str(root / "abs.txt"), b"ok", owner())
    assert read_file(root, "abs.txt") == b"ok"
    assert normalize_path(root, str(root)) == "."
    assert normalize_path(root, "a/./b/../c") == "a/c"


def test_symlink_inside_workspace_is_followed(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "v2/app.py", b"v2", owner())
    os.symlink("v2", root / "current")
    os.symlink("../v2/app.py", root / "v2" / "self")
    assert read_file(root, "current/app.py") == b"v2"
    assert read_file(root, "v2/self") == b"v2"
    assert [i.name for i in list_files(root, "current")] == ["app.py", "self"]
    assert resolve_path(root, "current/app.py") == root / "v2" / "app.py"
    # deleting the link removes the link, not its target
    delete_path(root, "current")
    assert (root / "v2" / "app.py").exists()


def test_make_dirs(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    path = make_dirs(root, "repo/sub", owner())
    assert path == root / "repo" / "sub"
    assert path.is_dir()
    assert make_dirs(root, "repo/sub", owner()) == path  # idempotent
    write_file(root, "f", b"", owner())
    with pytest.raises(NotADirectoryError):
        make_dirs(root, "f", owner())


# ------------------------------------------------------------------ escapes


@pytest.mark.parametrize(
    "path",
    ["../outside/secret.txt", "a/../../outside/secret.txt", "..", "/etc/passwd", "/"],
)
def test_lexical_escapes_refused(layout: tuple[Path, Path], path: str) -> None:
    root, outside = layout
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        read_file(root, path)
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        write_file(root, path, b"pwned", owner())
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        delete_path(root, path)
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        list_files(root, path)
    assert (outside / "secret.txt").read_text() == "host secret"


def test_sibling_prefix_is_not_inside(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    (tmp_path / "files2").mkdir()
    with pytest.raises(sandstorm.WorkspaceError, match="outside"):
        write_file(root, str(tmp_path / "files2" / "x"), b"x", owner())
    assert list((tmp_path / "files2").iterdir()) == []


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_symlink_escapes_refused(layout: tuple[Path, Path], kind: str) -> None:
    root, outside = layout
    target = str(outside) if kind == "absolute" else "../../outside"
    os.symlink(target, root / "evil")
    os.symlink(target + "/secret.txt", root / "evilfile")
    for path in ("evil/secret.txt", "evilfile"):
        with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
            read_file(root, path)
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        write_file(root, "evil/secret.txt", b"pwned", owner())
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        write_file(root, "evil/new/deeper.txt", b"pwned", owner())
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        delete_path(root, "evil/secret.txt")
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        list_files(root, "evil")
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        resolve_path(root, "evil")
    # the link itself may be replaced or deleted: that stays inside the root
    write_file(root, "evilfile", b"now a file", owner())
    assert not (root / "evilfile").is_symlink()
    delete_path(root, "evil")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "host secret"


def test_delete_tree_does_not_follow_symlinks_inside(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    (root / "tree").mkdir()
    os.symlink(outside, root / "tree" / "out")
    delete_path(root, "tree")
    assert (outside / "secret.txt").read_text() == "host secret"


def test_symlink_loop_is_an_error(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    with pytest.raises(OSError, match="symbolic links"):
        read_file(root, "a")


def test_nul_byte_refused(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    with pytest.raises(sandstorm.WorkspaceError, match="NUL"):
        write_file(root, "a\0b", b"", owner())


def test_swapped_directory_race_never_escapes(layout: tuple[Path, Path]) -> None:
    """A thread flips a directory with a symlink to outside while the host writes."""
    root, outside = layout
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            try:
                os.mkdir(root / "d")
                os.rmdir(root / "d")
                os.symlink(outside, root / "d")
                os.unlink(root / "d")
            except OSError:
                pass

    thread = threading.Thread(target=flipper)
    thread.start()
    try:
        for _ in range(300):
            with contextlib.suppress(sandstorm.WorkspaceError, OSError):
                write_file(root, "d/pwned", b"x", owner())
            with contextlib.suppress(sandstorm.WorkspaceError, OSError):
                delete_path(root, "d/pwned")
    finally:
        stop.set()
        thread.join()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# ------------------------------------------------------------------ ownership


@needs_root
def test_created_entries_are_owned_by_the_sandbox(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "x/y/z.txt", b"data", SANDBOX)
    make_dirs(root, "m/n", SANDBOX)
    for rel in ("x", "x/y", "x/y/z.txt", "m", "m/n"):
        st = (root / rel).lstat()
        assert (st.st_uid, st.st_gid) == SANDBOX, rel


@needs_root
def test_owner_none_keeps_host_uid(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    write_file(root, "f", b"", None)
    assert (root / "f").stat().st_uid == os.geteuid()


# ------------------------------------------------------------------ TreeWriter


def test_tree_writer_refuses_bad_entries(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    with TreeWriter(root, owner()) as w:
        w.symlink("link", str(outside))
        for bad in ("../x", "/abs", "a/../../x", "link/secret.txt", "link/new"):
            with pytest.raises(sandstorm.WorkspaceError):
                w.mkdir(bad, 0o755)
        with pytest.raises(sandstorm.WorkspaceError, match="not a directory"):
            w.symlink("link/x", "y")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert os.readlink(root / "link") == str(outside)


def test_open_dir(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    os.symlink(str(outside), root / "out")
    fd = open_dir(root, "new/dir", create=True, owner=owner())
    try:
        assert os.path.samestat(os.fstat(fd), (root / "new" / "dir").stat())
    finally:
        os.close(fd)
    root_fd = open_dir(root, ".")
    try:
        assert os.path.samestat(os.fstat(root_fd), root.stat())
    finally:
        os.close(root_fd)
    with pytest.raises(FileNotFoundError):
        open_dir(root, "missing")
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        open_dir(root, "out")
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        open_dir(root, "out/sub", create=True, owner=owner())
    write_file(root, "file", b"", owner())
    with pytest.raises(NotADirectoryError):
        open_dir(root, "file")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
