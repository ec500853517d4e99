"""Escape suite, host operations: what the host does *on* sandbox content must stay safe.

Issue 10, findings 1-3 and attacks of the same classes: git on a hostile repository runs
nothing on the host; the disk limit is the kernel's (preallocation, unlinked files, deep
trees, inodes, sparse files); trees no walk can handle (deeper than the recursion limit,
than PATH_MAX, than the open-file limit) break no host operation; symlink swaps racing
snapshots and the file API never lead the host outside the workspace. Real engine only.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandstorm
from sandstorm import TerminationReason
from sandstorm.local import LocalProvider, _disk

IMAGES = _disk.unavailable() is None
needs_images = pytest.mark.skipif(not IMAGES, reason=f"no disk images: {_disk.unavailable()}")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
GIT_ENV = (
    "export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a "
    "GIT_COMMITTER_EMAIL=a@b HOME=/tmp\n"
)
FALLOCATE = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]\n"
    "def keep_size(fd, size):\n"
    "    rc = libc.fallocate(fd, 1, 0, size)\n"  # FALLOC_FL_KEEP_SIZE
    "    return 0 if rc == 0 else ctypes.get_errno()\n"
)


def impl(provider: sandstorm.SyncProvider) -> LocalProvider:
    local = provider.async_provider
    assert isinstance(local, LocalProvider)
    return local


def files_of(provider: sandstorm.SyncProvider, ws: sandstorm.Workspace) -> Path:
    return impl(provider)._store.files(ws.id)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host directory anyone could write (0777) and a secret file in it."""
    path = Path(tempfile.mkdtemp(prefix="sandstorm-hostops-"))
    os.chmod(path, 0o777)
    (path / "hostsecret").write_text("HOST-SECRET")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sh(provider: sandstorm.SyncProvider, ws: sandstorm.Workspace, script: str) -> str:
    result = provider.run_in_workspace(ws, script, language="shell", timeout=60)
    assert result.exit_code == 0, result.stderr[-2000:]
    return result.stdout


def our_mounts(root: Path) -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [line for line in text.splitlines() if str(root) in line]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A provider root that is emptied however the test ends (mounts, deep trees)."""
    root = tmp_path / "state"
    try:
        yield root
    finally:
        for line in reversed(our_mounts(root)):
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)  # any depth


# ------------------------------------------------------------------ finding 1: git


@needs_git
def test_git_status_reproducer_runs_nothing_on_host(
    lp: sandstorm.SyncProvider, host_dir: Path
) -> None:
    """Issue 10 finding 1: a submodule's core.fsmonitor must not run on the host."""
    ws = lp.create_workspace()
    marker = host_dir / "pwned"
    sh(
        lp,
        ws,
        "set -e\n" + GIT_ENV + "git init -q sub; echo x>sub/f; git -C sub add f; "
        "git -C sub commit -qm i\n"
        "git init -q outer; echo y>outer/g; git -C outer add g; git -C outer commit -qm i\n"
        "git -C outer update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub\n"
        f"mv sub outer/sub; printf '#!/bin/sh\\nid >{marker}; id > ../../hook.ran; exit 1\\n'"
        " >outer/sub/.git/h; chmod +x outer/sub/.git/h\n"
        "git -C outer/sub config core.fsmonitor .git/h\n",
    )
    status = lp.git_status(ws, "outer")
    assert status.commit is not None
    assert not marker.exists(), "the repository's hook ran on the host"
    ran = files_of(lp, ws) / "hook.ran"
    if ran.exists():  # whatever ran, ran as the sandbox's code, never as root
        assert "uid=0(" not in ran.read_text()
    lp.delete_workspace(ws)


@needs_git
def test_git_config_knobs_run_only_inside_the_sandbox(
    lp: sandstorm.SyncProvider, host_dir: Path
) -> None:
    """Filter drivers, includeIf, pager, external diff, ssh command: never on the host.

    A filter driver is the repository's own business and does run: in the sandbox's
    namespaces, which the test compares with the host's.
    """
    ws = lp.create_workspace()
    host = {k: host_dir / k for k in ("fsmonitor", "pager", "diff", "ssh", "filter")}
    sh(
        lp,
        ws,
        "set -e\n" + GIT_ENV + "git init -q r; cd r; echo a > a; git add a; git commit -qm i\n"
        f"printf '[core]\\n\\tfsmonitor = \"id > {host['fsmonitor']}\"\\n' > ../inc.cfg\n"
        "cat >> .git/config <<EOF\n"
        '[includeIf "gitdir:**"]\n\tpath = ../../inc.cfg\n'
        f'[core]\n\tpager = "id > {host["pager"]}; cat"\n'
        f'\tsshCommand = "id > {host["ssh"]}"\n'
        f'[diff]\n\texternal = "id > {host["diff"]}"\n'
        '[filter "x"]\n'
        f'\tclean = "id > {host["filter"]} 2>/dev/null; '
        '(readlink /proc/self/ns/mnt; readlink /proc/self/ns/net; hostname) > ../filter.ran; cat"\n'
        "EOF\n"
        "echo '* filter=x' > .gitattributes; echo b > a\n",  # same size: git must hash it
    )
    status = lp.git_status(ws, "r")
    assert {"a", ".gitattributes"} <= {f.path for f in status.files}
    assert [p.name for p in host.values() if p.exists()] == []
    ran = (files_of(lp, ws) / "filter.ran").read_text().split()
    assert ran[0] != os.readlink("/proc/self/ns/mnt")
    assert ran[1] != os.readlink("/proc/self/ns/net")
    assert ran[2] == "sandbox"
    lp.delete_workspace(ws)


@needs_git
def test_git_clone_of_a_hostile_local_source(lp: sandstorm.SyncProvider, host_dir: Path) -> None:
    """A local source repository's own config (upload-pack hooks) cannot reach the host."""
    source = host_dir / "src.git"
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "init", "-q", "--bare", str(source)], check=True, env=env)
    with (source / "config").open("a") as fh:
        fh.write(
            f'[uploadpack]\n\tpackObjectsHook = "id > {host_dir / "hook"}; false"\n'
            f'[core]\n\tfsmonitor = "id > {host_dir / "fsm"}"\n'
        )
    ws = lp.create_workspace()
    lp.git_clone(ws, str(source), path="copy")  # an empty repository clones fine
    assert (files_of(lp, ws) / "copy" / ".git").is_dir()
    assert not (host_dir / "hook").exists()
    assert not (host_dir / "fsm").exists()
    lp.delete_workspace(ws)


# ------------------------------------------------------------------ finding 2: disk


@needs_images
def test_disk_keep_size_preallocation_on_unlinked_file(lp: sandstorm.SyncProvider) -> None:
    """Issue 10 finding 2: fallocate(KEEP_SIZE) of 2 GiB on an unlinked file, disk=8."""
    ws = lp.create_workspace(disk=8)
    image = impl(lp)._store.image(ws.id)
    result = lp.run_in_workspace(
        ws,
        FALLOCATE + "fd = os.open('x', os.O_RDWR | os.O_CREAT, 0o600)\nos.unlink('x')\n"
        "print(keep_size(fd, 2 << 30))\n",
    )
    assert result.stdout.strip() in {str(errno.ENOSPC), str(errno.EDQUOT)}
    assert os.stat(image).st_blocks * 512 <= (8 + 1) << 20
    # nothing stays behind once the file is closed
    assert lp.get_workspace_metrics(ws).disk_used_bytes < 1 << 20
    lp.delete_workspace(ws)


@needs_images
def test_disk_keep_size_in_persistent_workspace(lp: sandstorm.SyncProvider) -> None:
    """A visible 1 GiB KEEP_SIZE allocation fails; the workspace never holds more than 8 MiB."""
    ws = lp.create_workspace(disk=8)
    result = lp.run_in_workspace(
        ws, FALLOCATE + "fd = os.open('big', os.O_RDWR | os.O_CREAT, 0o600)\n"
        "print(keep_size(fd, 1 << 30))\n"
    )  # fmt: skip
    assert result.stdout.strip() in {str(errno.ENOSPC), str(errno.EDQUOT)}
    assert lp.get_workspace_metrics(ws).disk_used_bytes <= (8 + 1) << 20
    again = lp.run_in_workspace(ws, "import os\nprint(os.stat('big').st_blocks * 512 <= 9 << 20)")
    assert again.stdout.strip() == "True"
    lp.delete_workspace(ws)


@needs_images
def test_disk_path_max_deep_tree_is_counted(lp: sandstorm.SyncProvider) -> None:
    """Files below a path longer than PATH_MAX count like any other (and are deleted)."""
    ws = lp.create_workspace(disk=8)
    result = lp.run_in_workspace(
        ws,
        "import os\nfor _ in range(20): os.mkdir('d' * 250); os.chdir('d' * 250)\n"
        "n = 0\ntry:\n"
        "    while True:\n"
        "        with open(f'f{n}', 'wb') as f: f.write(b'x' * (1 << 20))\n"
        "        n += 1\n"
        "except OSError as exc:\n    print(n, exc.errno)\n",
        timeout=60,
    )
    written, err = (int(v) for v in result.stdout.split())
    assert err in (errno.ENOSPC, errno.EDQUOT)
    assert written <= 8
    used = lp.get_workspace_metrics(ws).disk_used_bytes
    assert written << 20 <= used <= (8 + 1) << 20
    files = files_of(lp, ws)
    lp.delete_workspace(ws)
    assert not files.parent.exists()


@needs_images
def test_disk_inode_exhaustion_stays_in_its_workspace(
    lp: sandstorm.SyncProvider, local_root: Path
) -> None:
    """Millions of empty files are bounded by the workspace's own inodes."""
    host_inodes = os.statvfs(local_root).f_ffree
    ws = lp.create_workspace(disk=8)
    result = lp.run_in_workspace(
        ws,
        "import os\nn = 0\ntry:\n"
        "    while n < 1_000_000:\n        open(f'e{n}', 'w').close(); n += 1\n"
        "except OSError as exc:\n    print(n, exc.errno)\n",
        timeout=60,
    )
    count, err = (int(v) for v in result.stdout.split())
    assert err == errno.ENOSPC
    assert count < 4096
    assert os.statvfs(local_root).f_ffree > host_inodes - 1000
    other = lp.create_workspace(disk=8)
    assert sh(lp, other, "touch a b c && ls | wc -l").strip() == "3"
    assert len(lp.list_files(ws)) == count
    lp.delete_workspace(ws)
    lp.delete_workspace(other)


@needs_images
def test_disk_hard_links_to_outside_files_are_impossible(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace(disk=8)
    result = lp.run_in_workspace(
        ws,
        "import os, sys\nfor src in ('/etc/hostname', sys.executable, '/usr/bin/env'):\n"
        "    try:\n        os.link(src, 'x')\n        print('linked', src)\n"
        "    except OSError as exc:\n        print(exc.errno)\n",
    )
    assert "linked" not in result.stdout
    assert set(result.stdout.split()) <= {str(errno.EXDEV), str(errno.EPERM), str(errno.ENOENT)}
    lp.delete_workspace(ws)


@needs_images
def test_disk_sparse_files_stay_sparse_through_snapshots(lp: sandstorm.SyncProvider) -> None:
    """A sparse 7 MiB file plus 4 MiB of data fits disk=8, and so does its restore."""
    ws = lp.create_workspace(disk=8)
    sh(
        lp,
        ws,
        "truncate -s 7M sparse && printf x | dd of=sparse bs=1 seek=3000000 conv=notrunc "
        "2>/dev/null && head -c 4M /dev/urandom > data",
    )
    snap = lp.snapshot(ws)
    restored = lp.restore(snap)
    out = sh(lp, restored, "stat -c '%s %b' sparse; wc -c < data")
    size, blocks, data = (int(v) for v in out.split())
    assert (size, data) == (7 << 20, 4 << 20)
    assert blocks * 512 <= (1 << 20) + 4096  # the one 1 MiB chunk holding data
    full = lp.run_in_workspace(restored, "open('more', 'wb').write(b'y' * (6 << 20))")
    assert full.exit_code != 0
    assert full.reason is TerminationReason.DISK_LIMIT
    for workspace in (ws, restored):
        lp.delete_workspace(workspace)
    lp.delete_snapshot(snap)


@needs_images
def test_disk_limit_binds_the_host_side_file_api_too(lp: sandstorm.SyncProvider) -> None:
    """Root writing through the file API is held to the image as well (and cleans up)."""
    ws = lp.create_workspace(disk=8)
    with pytest.raises(sandstorm.WorkspaceError, match="disk limit is 8 MiB"):
        lp.write_file(ws, "big", b"x" * (20 << 20))
    assert lp.list_files(ws) == []
    lp.write_file(ws, "small", b"x" * (1 << 20))
    assert lp.get_workspace_metrics(ws).disk_used_bytes <= (8 + 1) << 20
    lp.delete_workspace(ws)


@needs_images
def test_disk_images_leave_no_mount_or_loop_device(state: Path) -> None:
    """Delete, close and a crash (a mount left in trash and one left live) leak nothing."""
    root = state
    with sandstorm.get_provider("local", root=str(root)) as first:
        kept = first.create_workspace(disk=16)
        sh(first, kept, "echo kept > f")
        gone = first.create_workspace(disk=16)
        first.delete_workspace(gone)
        crashed = first.create_workspace(disk=16)
        store = impl(first)._store
        image = store.image(crashed.id)
        trash = store.discard(crashed.id)  # as a crash between rename and purge leaves it
        assert _disk.is_mounted(trash / "files")
    # the crashed workspace's mount survives close (nothing knew of it any more)...
    assert _disk.is_mounted(trash / "files")
    kept_image = root / "workspaces" / kept.id / "disk.img"
    assert _disk.attached_device(kept_image) is None
    # ...and a second crash leaves the kept workspace mounted by a dead process
    _disk.mount_image(kept_image, root / "workspaces" / kept.id / "files")
    with sandstorm.get_provider("local", root=str(root)) as second:
        assert second.read_file(kept, "f") == b"kept\n"
        second.run("pass")  # the engine's start purges the trash
        assert not trash.exists()
        assert _disk.attached_device(image) is None
    assert our_mounts(root) == []
    assert _disk.attached_device(kept_image) is None
    with sandstorm.get_provider("local", root=str(root)) as third:
        assert sh(third, kept, "cat f") == "kept\n"
        third.delete_workspace(kept)
    assert our_mounts(root) == []
    assert not kept_image.exists()


@needs_images
def test_images_mounted_after_prewarm_reach_the_run(lp: sandstorm.SyncProvider) -> None:
    """Pre-built sandboxes predate new workspaces: their mounts must still arrive (slave)."""
    lp.run("pass")
    for _ in range(3):
        ws = lp.create_workspace(disk=16)
        lp.write_file(ws, "hello", b"hi")
        out = lp.run_in_workspace(ws, "import os; print(os.listdir('.'), os.statvfs('.').f_blocks)")
        assert "hello" in out.stdout
        lp.delete_workspace(ws)


@needs_images
def test_image_left_dirty_by_a_host_crash_is_repaired(state: Path) -> None:
    with sandstorm.get_provider("local", root=str(state)) as lp:
        ws = lp.create_workspace(disk=16)
        lp.write_file(ws, "kept", b"kept")
        os.sync()
        image = impl(lp)._store.image(ws.id)
        shutil.copyfile(image, state / "at-power-cut.img")  # mounted: marked not clean
    os.replace(state / "at-power-cut.img", image)
    with sandstorm.get_provider("local", root=str(state)) as lp:
        assert lp.read_file(ws, "kept") == b"kept"
        assert sh(lp, ws, "cat kept") == "kept"
        lp.delete_workspace(ws)


def test_disk_quota_is_in_the_isolation_report(local_impl: LocalProvider) -> None:
    report = local_impl.isolation_report()
    if IMAGES:
        assert "kernel" in report.active["disk_quota"]
        assert "image" in report.limits["disk"]
    else:
        assert "best-effort" in report.unavailable["disk_quota"]


def test_disk_fallback_is_reported_honestly(state: Path) -> None:
    with sandstorm.get_provider("local", root=str(state), disk_images=False) as lp:
        report = impl(lp).isolation_report()
        assert "disk_quota" not in report.active
        assert "best-effort" in report.unavailable["disk_quota"]
        ws = lp.create_workspace(disk=8)
        assert not impl(lp)._store.image(ws.id).exists()
        assert our_mounts(state) == []


# ------------------------------------------------------------------ finding 3: deep trees

DEEP = 3000
"""Past Python's recursion limit and the usual 1024 open files (10,000 works, slower)."""


def _deep(provider: sandstorm.SyncProvider, ws: sandstorm.Workspace, depth: int) -> None:
    result = provider.run_in_workspace(
        ws,
        f"import os\nfor _ in range({depth}): os.mkdir('a'); os.chdir('a')\n"
        "open('leaf', 'w').write('deep')",
        timeout=60,
    )
    assert result.exit_code == 0, result.stderr[-500:]


def test_deep_tree_breaks_no_host_operation(lp: sandstorm.SyncProvider) -> None:
    """Issue 10 finding 3: usage, file API, snapshot, restore and deletion of a deep tree."""
    ws = lp.create_workspace(disk=64)
    _deep(lp, ws, DEEP)
    leaf = "a/" * DEEP + "leaf"
    assert lp.get_workspace_metrics(ws).disk_used_bytes > 0
    assert lp.read_file(ws, leaf) == b"deep"
    lp.write_file(ws, "a/" * DEEP + "new", b"new")
    assert {f.name for f in lp.list_files(ws, "a/" * DEEP)} == {"leaf", "new"}
    snap = lp.snapshot(ws)
    restored = lp.restore(snap)
    assert lp.read_file(restored, leaf) == b"deep"
    lp.delete_file(restored, "a")
    assert lp.list_files(restored) == []
    for workspace in (ws, restored):
        files = files_of(lp, workspace)
        lp.delete_workspace(workspace)
        assert not files.parent.exists()
    lp.delete_snapshot(snap)


def test_path_max_deep_tree_breaks_no_host_operation(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace(disk=16)
    sh(
        lp,
        ws,
        "python3 -c \"import os\nfor _ in range(20): os.mkdir('d'*250); os.chdir('d'*250)\n"
        "open('leaf', 'w').write('far')\"",
    )
    leaf = ("d" * 250 + "/") * 20 + "leaf"
    assert lp.read_file(ws, leaf) == b"far"
    snap = lp.snapshot(ws)
    restored = lp.restore(snap)
    assert lp.read_file(restored, leaf) == b"far"
    for workspace in (ws, restored):
        lp.delete_workspace(workspace)
    lp.delete_snapshot(snap)


def test_deep_tree_without_disk_images_deletion_and_purge(state: Path) -> None:
    """The fallback walks: usage, deletion, and trash purge at the next provider start."""
    root = state
    with sandstorm.get_provider("local", root=str(root), disk_images=False) as lp:
        ws = lp.create_workspace()
        _deep(lp, ws, DEEP)
        assert lp.get_workspace_metrics(ws).disk_used_bytes >= DEEP * 4096
        snap = lp.snapshot(ws)
        restored = lp.restore(snap)
        assert lp.read_file(restored, "a/" * DEEP + "leaf") == b"deep"
        lp.delete_workspace(restored)
        lp.delete_workspace(ws)
        stuck = lp.create_workspace()
        _deep(lp, stuck, DEEP)
        impl(lp)._store.discard(stuck.id)  # a crash right after the rename into trash
    trash = root / "workspaces" / ".trash"
    assert any(trash.iterdir())
    with sandstorm.get_provider("local", root=str(root), disk_images=False) as again:
        again.run("pass")  # starting the engine purges the trash
        assert not [p for p in trash.iterdir() if p.name.startswith(stuck.id)]


def test_many_files_delete_and_snapshot(lp: sandstorm.SyncProvider) -> None:
    """Scaled down from 1e6 (same code path: nothing recursive, one directory open)."""
    ws = lp.create_workspace(disk=256)
    sh(lp, ws, "mkdir m && cd m && seq 1 20000 | xargs touch")
    assert len(lp.list_files(ws, "m")) == 20000
    snap = lp.snapshot(ws)
    with tarfile.open(impl(lp)._snapshot_store().archive_path(snap.id)) as tf:
        assert sum(1 for _ in tf) == 20002
    lp.delete_file(ws, "m")
    assert lp.list_files(ws) == []
    lp.delete_workspace(ws)
    lp.delete_snapshot(snap)


# ------------------------------------------------------------------ races

SWAPPER = """
import os, time
os.mkdir('d'); open('d/f', 'w').write('inside')
end = time.time() + {seconds}
while time.time() < end:
    os.rename('d', 'd.real'); os.symlink({target!r}, 'd')
    os.unlink('d'); os.rename('d.real', 'd')
"""


def _swapping(
    provider: sandstorm.SyncProvider, ws: sandstorm.Workspace, target: str, seconds: float
) -> threading.Thread:
    thread = threading.Thread(
        target=provider.run_in_workspace,
        args=(ws, SWAPPER.format(seconds=seconds, target=target)),
        kwargs={"timeout": 30},
    )
    thread.start()
    time.sleep(0.3)
    return thread


def test_symlink_swaps_racing_snapshots(lp: sandstorm.SyncProvider, host_dir: Path) -> None:
    ws = lp.create_workspace(disk=32)
    thread = _swapping(lp, ws, str(host_dir), 2.0)
    snaps = []
    try:
        while thread.is_alive():
            try:
                snaps.append(lp.snapshot(ws))
            except sandstorm.WorkspaceError:
                continue  # "changed while ...": a refusal, never a detour
    finally:
        thread.join()
    assert snaps
    store = impl(lp)._snapshot_store()
    for snap in snaps:
        with tarfile.open(store.archive_path(snap.id)) as tf:
            for member in tf:
                assert "hostsecret" not in member.name
                if member.isfile():
                    data = tf.extractfile(member)
                    assert data is not None
                    assert b"HOST-SECRET" not in data.read()
    restored = lp.restore(snaps[-1])
    assert "hostsecret" not in sh(lp, restored, "find . -name hostsecret")
    for snap in snaps:
        lp.delete_snapshot(snap)
    lp.delete_workspace(restored)
    lp.delete_workspace(ws)
    assert sorted(p.name for p in host_dir.iterdir()) == ["hostsecret"]


def test_symlink_swaps_racing_the_file_api(lp: sandstorm.SyncProvider, host_dir: Path) -> None:
    ws = lp.create_workspace()
    errors = (sandstorm.WorkspaceError, FileNotFoundError, NotADirectoryError)
    for target in (str(host_dir), "../" * 12 + str(host_dir).lstrip("/")):
        thread = _swapping(lp, ws, target, 1.0)
        try:
            while thread.is_alive():
                for op in (
                    lambda: lp.read_file(ws, "d/hostsecret"),
                    lambda: lp.read_file(ws, "d/f"),
                    lambda: lp.write_file(ws, "d/new", b"x"),
                    lambda: lp.list_files(ws, "d"),
                    lambda: lp.delete_file(ws, "d/hostsecret"),
                ):
                    try:
                        got = op()
                    except errors:
                        continue
                    text = got if isinstance(got, bytes) else str(got).encode()
                    assert b"HOST-SECRET" not in text
                    assert b"hostsecret" not in text
        finally:
            thread.join()
        lp.delete_file(ws, "d")
    assert sorted(p.name for p in host_dir.iterdir()) == ["hostsecret"]
    assert (host_dir / "hostsecret").read_text() == "HOST-SECRET"
    lp.delete_workspace(ws)


def test_archive_from_host_content_is_inert(lp: sandstorm.SyncProvider) -> None:
    """Symlinks to host paths are archived and restored as links, never followed."""
    ws = lp.create_workspace()
    sh(lp, ws, "ln -s /etc/passwd pw && ln -s ../../../../etc up && mkdir d")
    snap = lp.snapshot(ws)
    data = impl(lp)._snapshot_store().archive_path(snap.id).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        kinds = {m.name: m.type for m in tf}
    assert kinds["pw"] == tarfile.SYMTYPE
    assert kinds["up"] == tarfile.SYMTYPE
    restored = lp.restore(snap)
    with pytest.raises(sandstorm.WorkspaceError):
        lp.read_file(restored, "pw")
    for workspace in (ws, restored):
        lp.delete_workspace(workspace)
    lp.delete_snapshot(snap)
