"""Files: the file API checked against code running in the workspace, and vice versa."""

from __future__ import annotations

import os

import pytest

from sandstorm import AsyncProvider, Capability, Workspace, WorkspaceError

from ._base import AsyncContract
from ._helpers import DETERMINISTIC_BYTES_SOURCE, MIB, deterministic_bytes, run_json, sha256, show

__all__ = ["FilesContract"]

SHA_OF = (
    "import hashlib, json, sys\n"
    "def sha(p):\n"
    "    try:\n        return hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
    "    except FileNotFoundError:\n        return None\n"
)


@pytest.mark.requires(Capability.FILES)
class FilesContract(AsyncContract):
    """Binary-safe file transfer, with code in the workspace as the independent oracle."""

    async def _sha_in_code(self, provider: AsyncProvider, ws: Workspace, path: str) -> str | None:
        digest: str | None = await run_json(
            provider, ws, SHA_OF + f"print(json.dumps(sha({path!r})))"
        )
        return digest

    async def test_write_via_api_read_via_code(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        data = bytes(range(256)) * 64 + b"\r\n\x00tail"
        await provider.write_file(workspace, "api.bin", data)
        assert await self._sha_in_code(provider, workspace, "api.bin") == sha256(data)

    async def test_write_via_code_read_via_api(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        result = await provider.run_in_workspace(
            workspace, "open('code.bin', 'wb').write(bytes(range(255, -1, -1)) * 33)"
        )
        assert result.exit_code == 0, show(result)
        assert await provider.read_file(workspace, "code.bin") == bytes(range(255, -1, -1)) * 33

    async def test_text_is_written_as_utf8(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.write_file(workspace, "t.txt", "é 🎉 中\n")
        result = await provider.run_in_workspace(
            workspace, "print(open('t.txt', encoding='utf-8').read() == 'é 🎉 中\\n')"
        )
        assert result.stdout == "True\n", show(result)
        assert await provider.read_file(workspace, "t.txt") == "é 🎉 中\n".encode()

    async def test_ten_mib_round_trip(self, provider: AsyncProvider, workspace: Workspace) -> None:
        size = 10 * MIB
        up = os.urandom(size)
        await provider.write_file(workspace, "big/up.bin", up)
        assert await self._sha_in_code(provider, workspace, "big/up.bin") == sha256(up)
        assert await provider.read_file(workspace, "big/up.bin") == up
        made = await provider.run_in_workspace(
            workspace,
            DETERMINISTIC_BYTES_SOURCE
            + f"open('big/down.bin', 'wb').write(deterministic_bytes({size}, 'sstk'))",
            timeout=120,
        )
        assert made.exit_code == 0, show(made)
        down = await provider.read_file(workspace, "big/down.bin")
        assert len(down) == size
        assert down == deterministic_bytes(size, "sstk")

    async def test_empty_file(self, provider: AsyncProvider, workspace: Workspace) -> None:
        await provider.write_file(workspace, "empty", b"")
        assert await provider.read_file(workspace, "empty") == b""
        result = await provider.run_in_workspace(
            workspace, "import os; print(os.path.getsize('empty'))"
        )
        assert result.stdout == "0\n", show(result)

    async def test_overwrite_replaces_content(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.write_file(workspace, "o.txt", b"a much longer first version")
        await provider.write_file(workspace, "o.txt", b"short")
        assert await provider.read_file(workspace, "o.txt") == b"short"
        # max_size: the exact size is read, one byte less is refused (WorkspaceError)
        assert await provider.read_file(workspace, "o.txt", max_size=5) == b"short"
        with pytest.raises(WorkspaceError, match="over the 4-byte read limit"):
            await provider.read_file(workspace, "o.txt", max_size=4)
        assert await self._sha_in_code(provider, workspace, "o.txt") == sha256(b"short")

    async def test_parent_directories_are_created(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.write_file(workspace, "a/b/c/deep.txt", b"deep")
        result = await provider.run_in_workspace(workspace, "print(open('a/b/c/deep.txt').read())")
        assert result.stdout == "deep\n", show(result)

    async def test_unicode_file_name(self, provider: AsyncProvider, workspace: Workspace) -> None:
        name = "naïve 文件 🎉.txt"
        await provider.write_file(workspace, name, b"x")
        result = await provider.run_in_workspace(workspace, f"print(open({name!r}).read())")
        assert result.stdout == "x\n", show(result)
        assert name in {entry.name for entry in await provider.list_files(workspace, ".")}

    async def test_list_files(self, provider: AsyncProvider, workspace: Workspace) -> None:
        result = await provider.run_in_workspace(
            workspace,
            "import os; os.makedirs('ls/sub'); open('ls/one.txt', 'wb').write(b'12345'); "
            "open('ls/sub/two.txt', 'wb').write(b'')",
        )
        assert result.exit_code == 0, show(result)
        entries = {entry.name: entry for entry in await provider.list_files(workspace, "ls")}
        assert set(entries) == {"one.txt", "sub"}
        assert entries["one.txt"].is_dir is False
        assert entries["one.txt"].size == 5
        assert entries["sub"].is_dir is True
        assert entries["one.txt"].path == "ls/one.txt", (
            "FileInfo.path is the path relative to the workspace root, as the caller would pass "
            f"it back; got {entries['one.txt'].path!r}"
        )
        assert entries["sub"].path.rstrip("/") == "ls/sub", entries["sub"].path
        top = {entry.name: entry for entry in await provider.list_files(workspace, ".")}
        assert top["ls"].path.rstrip("/") in {"ls", "./ls"}, top["ls"].path
        assert entries["one.txt"].modified_at.tzinfo is not None

    async def test_delete_file_and_tree(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.write_file(workspace, "del/x.txt", b"x")
        await provider.write_file(workspace, "del/sub/y.txt", b"y")
        await provider.delete_file(workspace, "del/x.txt")
        with pytest.raises(FileNotFoundError):
            await provider.read_file(workspace, "del/x.txt")
        await provider.delete_file(workspace, "del")
        result = await provider.run_in_workspace(
            workspace, "import os; print(os.path.exists('del'))"
        )
        assert result.stdout == "False\n", show(result)

    async def test_read_missing_file_raises(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        with pytest.raises(FileNotFoundError):
            await provider.read_file(workspace, "no/such/file.txt")

    async def test_delete_missing_file_raises(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        with pytest.raises(FileNotFoundError):
            await provider.delete_file(workspace, "no-such-file.txt")
        await provider.write_file(workspace, "once.txt", b"x")
        await provider.delete_file(workspace, "once.txt")
        with pytest.raises(FileNotFoundError):
            await provider.delete_file(workspace, "once.txt")

    async def test_path_under_a_file_is_not_found(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.write_file(workspace, "plain.txt", b"x")
        with pytest.raises((FileNotFoundError, NotADirectoryError)):
            await provider.read_file(workspace, "plain.txt/below")
