"""A disk limit the kernel enforces: one sparse ext4 image per workspace, loop-mounted.

A workspace's ``files/`` directory is the mount point of ``disk.img``, a sparse file
formatted as ext4 (no journal, no reserved blocks) whose free space is the workspace's
disk limit (at most 1 MiB more). Everything the code stores counts, because the
filesystem is full when it is full: preallocation (``fallocate``, ``FALLOC_FL_KEEP_SIZE``
included), files unlinked but still open, trees deeper than ``PATH_MAX``, inodes. The
host gives the image at most its size (blocks freed inside are given back: ``discard``).

The image makes the host's work on a workspace cheap and content-blind: usage is one
``statfs``; deletion is unmount, detach, unlink, with no walk of what the code made.

Loop devices are attached with ``LO_FLAGS_AUTOCLEAR``: the kernel detaches one when its
last mount goes away, so an unmounted image never leaves a device behind. An image that
is still attached (a crash left it mounted, or another provider on the same root uses
it) is mounted from its existing device, never attached twice: two superblocks over one
file would corrupt it.

Needs root, ``/dev/loop-control`` and ``mkfs.ext4``; :func:`unavailable` says why not.
Every function blocks.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "attached_device",
    "mount",
    "create_image",
    "is_mount_point",
    "is_mounted",
    "mount_image",
    "mounted_below",
    "share",
    "FULL",
    "NEARLY_FULL",
    "unavailable",
    "unmount",
    "unshare",
    "usage",
]

_LOOP_CTL_ADD = 0x4C80
_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LOOP_SET_FD = 0x4C00
_LOOP_SET_STATUS64 = 0x4C04
_LOOP_GET_STATUS64 = 0x4C05
_LO_FLAGS_AUTOCLEAR = 4
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOATIME = 1024
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
_MOUNT_OPTIONS = b"discard,noinit_itable,errors=remount-ro"
_BLOCK = 4096
_SLACK = 1 << 20
"""How far the free space of a fresh image may exceed the limit."""
NEARLY_FULL = 2 << 20
"""Free space below which a filled image refuses writes (delayed-allocation reservations)."""
FULL = 512 << 10
"""An image with less free space than this is full (ext4 refuses writes with a few
hundred KiB still shown free); a fresh image has at least ``limit + FULL`` free."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_OCTAL = re.compile(rb"\\([0-7]{3})")
_MAX_TEMPLATES = 8
_TEMPLATES: dict[int, tuple[int, tuple[tuple[int, bytes], ...]]] = {}
"""Freshly formatted images (size, written blocks) per limit, to copy from."""
_SIZES: dict[int, int] = {}
"""Image size that gives ``limit`` bytes of free space, per limit (found once per process)."""


def _mkfs() -> str | None:
    return shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:/usr/bin:/bin")


def unavailable() -> str | None:
    """Why per-workspace images cannot be used here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root (loop devices and mounts); rootless hosts use a usage check instead"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (loop devices are not available)"
    if _mkfs() is None:
        return "mkfs.ext4 is not installed"
    try:
        fd = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open /dev/loop-control: {exc.strerror}"
    os.close(fd)
    return None


def _superblock(image: Path) -> tuple[int, int, int]:
    """(block size, blocks, free blocks) of a freshly made ext4 image."""
    with open(image, "rb") as fh:
        fh.seek(1024)
        raw = fh.read(32)
    _, blocks, _, free, _, _, log_size = struct.unpack("<7I", raw[:28])
    return 1024 << log_size, blocks, free


def _format(image: Path, size: int) -> int:
    """Make ``image`` an empty ext4 of ``size`` bytes; return its free bytes once mounted."""
    with open(image, "wb") as fh:
        fh.truncate(size)
    mkfs = _mkfs()
    if mkfs is None:
        raise OSError(errno.ENOENT, "mkfs.ext4 is not installed")
    options = "lazy_itable_init=1,nodiscard,root_owner=0:0"
    done = subprocess.run(
        [mkfs, "-q", "-F", "-b", str(_BLOCK), "-i", "8192", "-I", "256", "-m", "0",
         "-O", "^has_journal,^resize_inode", "-E", options, str(image)],
        capture_output=True,
        check=False,
        env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin", "LC_ALL": "C"},
    )  # fmt: skip
    if done.returncode != 0:
        raise OSError(errno.EIO, f"mkfs.ext4 failed: {done.stderr.decode(errors='replace')}")
    block, blocks, free = _superblock(image)
    # ext4 keeps min(2%, 4096 blocks) back for its own metadata (s_resv_clusters)
    return (free - min(blocks // 50, 4096)) * block


def _extents(image: Path) -> tuple[int, tuple[tuple[int, bytes], ...]]:
    """The size of sparse file ``image`` and its data (offset, bytes), holes left out."""
    fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        found: list[tuple[int, bytes]] = []
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break  # only a hole is left
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            found.append((start, os.pread(fd, end - start, start)))
            offset = end
        return size, tuple(found)
    finally:
        os.close(fd)


def create_image(image: Path, limit: int) -> None:
    """Make ``image``: a sparse ext4 whose free space is ``limit`` bytes (plus < 1 MiB).

    Its root directory belongs to root: give it to the workspace's owner once mounted.
    The first image of a given limit is formatted (``mkfs.ext4``, twice when the
    size must be found); later ones are copies of its few written blocks (~0.2 MiB),
    which costs a fraction of a millisecond instead of a process start.
    """
    template = _TEMPLATES.get(limit)
    if template is not None:
        size, extents = template
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            for offset, data in extents:
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        return
    size = _SIZES.get(limit, limit + _SLACK)
    for _ in range(6):
        free = _format(image, size)
        if limit + FULL <= free <= limit + _SLACK:
            _SIZES[limit] = size
            if len(_TEMPLATES) >= _MAX_TEMPLATES:
                _TEMPLATES.pop(next(iter(_TEMPLATES)))
            _TEMPLATES[limit] = _extents(image)
            return
        size += -(-(limit + (FULL + _SLACK) // 2 - free) // _BLOCK) * _BLOCK
    raise OSError(errno.EIO, f"could not size a disk image for {limit} bytes")


def _check(image: Path) -> None:
    """Repair an image that was not unmounted cleanly (the host went down while mounted).

    The filesystem has no journal, so ``e2fsck -p`` (the boot-time "preen") fixes what a
    crash can leave; its metadata was only ever written by the kernel.
    """
    with open(image, "rb") as fh:
        fh.seek(1024 + 58)
        (state,) = struct.unpack("<H", fh.read(2))
    if state & 1 and not state & 2:  # valid, no errors: clean
        return
    e2fsck = shutil.which("e2fsck", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if e2fsck is None:
        return  # mounting still works; errors=remount-ro protects what is left
    done = subprocess.run(
        [e2fsck, "-p", str(image)],
        capture_output=True,
        check=False,
        timeout=600,
        env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin", "LC_ALL": "C"},
    )
    if done.returncode >= 4:  # 0-3: clean or fixed
        raise OSError(
            errno.EIO,
            f"the disk image {image} is damaged and e2fsck could not repair it: "
            f"{done.stdout.decode(errors='replace')[-500:]}",
        )


def _loop_config(fd: int) -> bytes:
    # struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
    info = bytearray(232)
    struct.pack_into("<I", info, 52, _LO_FLAGS_AUTOCLEAR)  # lo_flags
    return struct.pack("<II", fd, 0) + bytes(info) + bytes(64)


def _backing(name: str) -> tuple[int, int] | None:
    """(device, inode) of the file loop device ``name`` is attached to; ``None`` if free.

    Asked of the device itself (``LOOP_GET_STATUS64``), so a backing path this process
    cannot reach (another mount namespace, a detached bind) still identifies the file;
    the path in sysfs is the fallback when the device node cannot be opened.
    """
    try:
        backing = Path(f"/sys/block/{name}/loop/backing_file").read_text().rstrip("\n")
    except OSError:
        return None  # not attached
    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        try:
            st = os.stat(backing)
        except OSError:
            return None
        return st.st_dev, st.st_ino
    try:
        info = fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(232))
    except OSError:
        return None  # detached meanwhile
    finally:
        os.close(fd)
    device, inode = struct.unpack_from("<QQ", info)
    return device, inode


def attached_device(image: Path) -> str | None:
    """The loop device that ``image`` is attached to already, if any."""
    try:
        st = os.stat(image)
    except FileNotFoundError:
        return None
    for name in os.listdir("/sys/block"):
        if name.startswith("loop") and _backing(name) == (st.st_dev, st.st_ino):
            return f"/dev/{name}"
    return None


def _attach(image: Path) -> tuple[str, int]:
    """Attach ``image`` to a free loop device (auto-clearing); its path and an open fd.

    The kernel offers the lowest unbound device, which others may claim first (processes
    sharing the machine attach at the same time) or hold open exclusively. A device that
    refused is not tried again: when the kernel offers it anyway, the devices above the
    highest one refused are tried in turn (added when missing).
    """
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            refused: set[int] = set()
            for attempt in range(256):
                number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
                if number in refused:
                    number = max(refused) + 1
                    with contextlib.suppress(FileExistsError):
                        fcntl.ioctl(control, _LOOP_CTL_ADD, number)
                device = f"/dev/loop{number}"
                try:
                    loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    os.mknod(device, 0o600 | 0o060000, os.makedev(7, number))
                    loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(loop, _LOOP_CONFIGURE, _loop_config(backing))
                except OSError as exc:
                    os.close(loop)
                    if exc.errno != errno.EBUSY:
                        raise
                    refused.add(number)  # claimed by someone else meanwhile, or held
                    time.sleep(0.0002 * min(attempt, 10))
                    continue
                return device, loop
        finally:
            os.close(control)
    finally:
        os.close(backing)
    raise OSError(errno.EBUSY, "no free loop device")


def _mount_table() -> Iterator[tuple[str, str]]:
    """(mount point, source) of this process's mounts, with octal escapes decoded."""
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index(b"-")
            point = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
            yield os.fsdecode(point), os.fsdecode(fields[sep + 2])


def is_mounted(target: Path) -> bool:
    """True when something is mounted at ``target``."""
    try:
        return os.stat(target).st_dev != os.stat(target.parent).st_dev
    except FileNotFoundError:
        return False


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: bytes | None, what: str
) -> None:
    """``mount(2)``; an OSError names ``what`` and the kernel's reason."""
    if _libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        flags,
        data,
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount_image(image: Path, target: Path, *, fresh: bool = False) -> None:
    """Mount ``image`` at ``target`` (an empty directory), reusing an attached device.

    ``fresh``: the image was just made, so no device can hold it yet.
    """
    device = None if fresh else attached_device(image)
    loop = -1
    if device is None:
        if not fresh:
            _check(image)
        device, loop = _attach(image)
    try:
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOATIME
        mount(device, str(target), "ext4", flags, _MOUNT_OPTIONS, f"mounting {image} at {target}")
    finally:
        if loop >= 0:
            os.close(loop)  # auto-clear: the device goes with its last mount


def unmount(target: Path, *, lazy: bool = False, attempts: int = 50) -> bool:
    """Unmount ``target``; ``False`` when it stays busy (``lazy`` detaches it anyway)."""
    path = str(target).encode()
    for attempt in range(attempts):
        if not is_mounted(target):
            return True
        if _libc.umount2(path, _UMOUNT_NOFOLLOW) == 0:
            return True
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            return True  # not a mount point (any more)
        if err != errno.EBUSY:
            raise OSError(err, f"unmounting {target}: {os.strerror(err)}")
        if attempt < attempts - 1:
            time.sleep(0.01)  # killed processes still holding it need a moment
    if lazy:
        with contextlib.suppress(OSError):
            if _libc.umount2(path, _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
                return True
    return False


def usage(target: Path) -> tuple[int, int]:
    """(bytes used, bytes still free for the code) of the filesystem mounted at ``target``."""
    st = os.statvfs(target)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize


_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20


def _mount_points() -> set[str]:
    return {point for point, _ in _mount_table()}


def share(directory: Path) -> bool:
    """Make ``directory`` a shared mount (a bind onto itself when it is not a mount point).

    Images mounted below it later then also reach mount namespaces copied from this one
    before (the sandboxes' ones are its slaves). Returns whether a bind was made.
    """
    path = str(directory.resolve())
    made = False
    if path not in _mount_points():
        # recursive: images already mounted below stay visible through the bind
        mount(path, path, None, _MS_BIND | _MS_REC, None, f"bind-mounting {path}")
        made = True
    mount(None, path, None, _MS_SHARED, None, f"sharing {path}")
    return made


def unshare(directory: Path) -> bool:
    """Undo :func:`share`'s bind of ``directory``; ``False`` while mounts below it remain."""
    path = str(directory.resolve())
    for _ in range(50):
        if path not in _mount_points():
            return True
        if mounted_below(directory):
            return False  # images in use (another provider on the same root)
        if _libc.umount2(path.encode(), _UMOUNT_NOFOLLOW) == 0:
            return True
        time.sleep(0.01)  # sandboxes that were just killed still hold their copies
    # only copies in dying sandboxes can still hold it: detach it from them as well
    return bool(_libc.umount2(path.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0)


def mounted_below(directory: Path) -> list[Path]:
    """Mount points strictly below ``directory`` (deepest first)."""
    base = str(directory.resolve()).rstrip("/") + "/"
    found = [Path(point) for point in _mount_points() if point.startswith(base)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def is_mount_point(directory: Path) -> bool:
    """True when ``directory`` is a mount point of this namespace (binds included)."""
    return str(directory.resolve()) in _mount_points()
