"""Blank workspaces made ahead: never listed, never reused, gone at close, crash-safe."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local import LocalProvider, _disk

IMAGES = _disk.unavailable() is None
pytestmark = pytest.mark.skipif(not IMAGES, reason=f"no disk images: {_disk.unavailable()}")


def _spares(root: Path) -> list[Path]:
    spare = root / "workspaces" / ".spare"
    return sorted(spare.iterdir()) if spare.is_dir() else []


def _mounts_below(root: Path) -> list[str]:
    base = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(base)]


async def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_spares_are_ready_unlisted_fresh_and_removed_at_close(tmp_path: Path) -> None:
    async def main() -> None:
        provider = sandstorm.get_async_provider("local", root=str(tmp_path), spare_workspaces=2)
        assert isinstance(provider, LocalProvider)
        async with provider:
            store = provider._store  # how many spares of a size are ready: the store knows
            first = await provider.create_workspace(disk=64)
            await _wait_for(lambda: store.spare_count(64 << 20) == 2)
            await _wait_for(lambda: store.spare_count(provider.config.disk_limit << 20) == 2)
            spares = _spares(tmp_path)
            assert len(spares) == 4
            assert all(_disk.is_mounted(path / "files") for path in spares)
            # never listed, never shown as a workspace
            assert [ws.id for ws in await provider.list_workspaces()] == [first.id]
            await provider.write_file(first, "secret.txt", b"from the first workspace")
            assert (await provider.run("print(1)", workspace_id=first.id)).stdout == "1\n"

            # the next workspace of that size is a spare renamed into place, empty
            second = await provider.create_workspace(disk=64)
            assert store.spare_count(64 << 20) <= 1  # one was taken (a refill may follow)
            assert len(set(_spares(tmp_path)) - set(spares)) <= 1
            result = await provider.run(
                "import os; print(sorted(os.listdir('.')))", workspace_id=second.id
            )
            assert result.stdout == "[]\n", result
            # its disk limit is the one asked for (the image holds 64 MiB, not more), and
            # the code sees that image, not the directory below it
            files = tmp_path / "workspaces" / second.id / "files"
            used, free = _disk.usage(files)
            assert 64 << 20 <= used + free <= (64 << 20) + (2 << 20)
            code = (
                "import os; st = os.statvfs('.'); open('mark', 'w').write('x'); "
                "print(st.f_blocks * st.f_frsize)"
            )
            inside = await provider.run(code, workspace_id=second.id)
            assert int(inside.stdout) == os.statvfs(files).f_blocks * os.statvfs(files).f_frsize
            assert (files / "mark").read_text() == "x"
            # a deleted workspace's image is never made a spare again
            await provider.delete_workspace(first)
            await provider.delete_workspace(second)
            await _wait_for(lambda: store.spare_count(64 << 20) == 2)
            assert not {first.id, second.id} & {p.name for p in _spares(tmp_path)}
        assert _spares(tmp_path) == []
        assert _mounts_below(tmp_path) == []

    asyncio.run(main())


def test_spares_of_a_dead_process_are_removed_at_start(tmp_path: Path) -> None:
    """A crash leaves mounted spares: the next provider on the root unmounts them."""
    spare = tmp_path / "workspaces" / ".spare" / f"{2**22 + 1}.deadbeef"
    (spare / "files").mkdir(parents=True)
    _disk.create_image(spare / "disk.img", 16 << 20)
    _disk.mount_image(spare / "disk.img", spare / "files", fresh=True)
    try:
        with sandstorm.get_provider("local", root=str(tmp_path), spare_workspaces=0) as p:
            p.is_available()
            assert not spare.exists()
        assert _mounts_below(tmp_path) == []
    finally:
        if _disk.is_mounted(spare / "files"):
            _disk.unmount(spare / "files", lazy=True)


def test_no_spares_when_turned_off(tmp_path: Path) -> None:
    with sandstorm.get_provider("local", root=str(tmp_path), spare_workspaces=0) as provider:
        workspace = provider.create_workspace(disk=32)
        assert provider.run("print(1)", workspace_id=workspace.id).stdout == "1\n"
        assert _spares(tmp_path) == []
        provider.delete_workspace(workspace)
    assert os.listdir(tmp_path / "workspaces") in ([], [".trash"])
