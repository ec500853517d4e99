"""The official async ``daytona`` SDK (AsyncDaytona) against the emulator."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    DaytonaAuthenticationError,
    DaytonaConfig,
    DaytonaNotFoundError,
    SessionExecuteRequest,
)

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A


def _client(emu: RunningEmulator, key: str = KEY_A) -> AsyncDaytona:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return AsyncDaytona(DaytonaConfig(api_key=key, api_url=emu.api_url, target="us"))


def test_emulator_async_protocol_script(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                assert s.state == "started"
                run = await s.process.code_run("print(6*7)")
                assert (run.exit_code, run.result) == (0, "42\n")
                execd = await s.process.exec("echo hi")
                assert execd.result == "hi\n"
                payload = bytes(range(256)) * 16
                await s.fs.upload_file(payload, "a.bin")
                assert await s.fs.download_file("a.bin") == payload
                again = await d.get(s.id)
                assert again.labels["code-toolbox-language"] == "python"
            finally:
                await d.delete(s)
            with pytest.raises(DaytonaNotFoundError):
                await d.get(s.id)

    asyncio.run(main())


def test_emulator_async_sessions_lifecycle_and_snapshot(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create(CreateSandboxFromSnapshotParams(labels={"suite": "async"}))
            child = None
            try:
                await s.process.create_session("a")
                r = await s.process.execute_session_command(
                    "a", SessionExecuteRequest(command="echo one; echo two >&2; exit 5")
                )
                assert (r.stdout, r.stderr, r.exit_code) == ("one\n", "two\n", 5)
                bg = await s.process.execute_session_command(
                    "a", SessionExecuteRequest(command="sleep 0.3; echo late", run_async=True)
                )
                out: list[str] = []
                err: list[str] = []
                await s.process.get_session_command_logs_async(
                    "a", bg.cmd_id, out.append, err.append
                )
                assert "".join(out) == "late\n"
                await s.fs.upload_file(b"snap me", "f.txt")
                await s.create_snapshot("snap-async")
                child = await d.create(CreateSandboxFromSnapshotParams(snapshot="snap-async"))
                assert await child.fs.download_file("f.txt") == b"snap me"
                await s.stop()
                assert s.state == "stopped"
                await s.start()
                assert s.state == "started"
                assert await s.fs.download_file("f.txt") == b"snap me"
                found = [x.id async for x in d.list()]
                assert s.id in found
            finally:
                await d.delete(s)
                if child is not None:
                    await d.delete(child)
                    await d.snapshot.delete(await d.snapshot.get("snap-async"))

    asyncio.run(main())


def test_emulator_async_wrong_key_is_authentication_error(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu, "not-a-key") as d:
            with pytest.raises(DaytonaAuthenticationError):
                await d.create()

    asyncio.run(main())
