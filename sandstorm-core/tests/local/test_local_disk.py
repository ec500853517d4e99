"""Workspace disk images on loop devices: attached whatever else holds devices."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandstorm.local import _disk

IMAGES = _disk.unavailable() is None
pytestmark = pytest.mark.skipif(not IMAGES, reason=f"no disk images: {_disk.unavailable()}")

_LOOP_CTL_GET_FREE = 0x4C82


@pytest.fixture
def held_device() -> Iterator[str]:
    """The loop device the kernel offers next, held open exclusively (it refuses to attach)."""
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(100):  # others on the machine may claim the offered one first
            device = f"/dev/loop{fcntl.ioctl(control, _LOOP_CTL_GET_FREE)}"
            try:
                held = os.open(device, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
                break
            except OSError:
                time.sleep(0.01)
        else:
            pytest.fail("no loop device could be held")
    finally:
        os.close(control)
    try:
        yield device
    finally:
        os.close(held)


def test_a_device_that_refuses_is_passed_over(held_device: str, tmp_path: Path) -> None:
    # the kernel keeps offering the held device (it is unbound): attaching must not give
    # up on it ("no free loop device") but go on to another one
    image, files = tmp_path / "disk.img", tmp_path / "files"
    files.mkdir()
    _disk.create_image(image, 16 << 20)
    _disk.mount_image(image, files, fresh=True)
    try:
        device = _disk.attached_device(image)
        assert device is not None
        assert device != held_device
        (files / "data").write_bytes(b"kept")
        assert (files / "data").read_bytes() == b"kept"
    finally:
        assert _disk.unmount(files, attempts=5)
    deadline = time.monotonic() + 5
    while _disk.attached_device(image) is not None:  # auto-cleared after its last mount
        assert time.monotonic() < deadline, "the loop device was never detached"
        time.sleep(0.01)
