"""The official SDK's code interpreter, session input and preview links on the emulator."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from daytona import AsyncDaytona, DaytonaConfig, DaytonaTimeoutError

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A


def _client(emu: RunningEmulator) -> AsyncDaytona:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return AsyncDaytona(DaytonaConfig(api_key=KEY_A, api_url=emu.api_url, target="us"))


def test_sdk_code_interpreter(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                ci = s.code_interpreter
                seen: list[str] = []
                first = await ci.run_code(
                    "x = 41\nprint('set')", on_stdout=lambda m: seen.append(m.output)
                )
                assert first.stdout == "set\n"
                assert "".join(seen) == "set\n"
                second = await ci.run_code("print(x + 1)")
                assert (second.stdout, second.error) == ("42\n", None)
                ctx = await ci.create_context()
                assert ctx.language == "python"
                isolated = await ci.run_code("print(x)", context=ctx)
                assert isolated.error is not None
                assert isolated.error.name == "NameError"
                assert "NameError" in isolated.error.traceback
                await ci.run_code("y = 'ctx'", context=ctx)
                assert (await ci.run_code("print(y)", context=ctx)).stdout == "ctx\n"
                env = await ci.run_code(
                    "import os\nprint(os.environ['DEMO'])", context=ctx, envs={"DEMO": "yes"}
                )
                assert env.stdout == "yes\n"
                assert ctx.id in {c.id for c in await ci.list_contexts()}
                with pytest.raises(DaytonaTimeoutError):
                    await ci.run_code("import time\ntime.sleep(30)", context=ctx, timeout=1)
                assert (await ci.run_code("print(y)", context=ctx)).stdout == "ctx\n"
                await ci.delete_context(ctx)
                assert ctx.id not in {c.id for c in await ci.list_contexts()}
            finally:
                await d.delete(s)

    asyncio.run(main())
