"""One-shot runs against the Daytona emulator over a real loopback socket."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable

import pytest

import sandstorm
from sandstorm import ExecutionTimeout, OutputChunk, ProviderConfigError
from sandstorm_daytona import DaytonaConfig, DaytonaProvider
from sandstorm_daytona._command import INLINE_LIMIT

from .conftest import live_sandboxes
from .shells import SHELLS

pytestmark = pytest.mark.anyio

SHELL_MATRIX = SHELLS


async def test_seed_readme_run(provider: DaytonaProvider) -> None:
    assert await provider.is_available() is True
    result = await provider.run(
        'print("Hello from Daytona!")', language="python", cpu=2, memory=1024, timeout=30
    )
    assert result.stdout == "Hello from Daytona!\n"
    assert result.ok
    assert result.provider == "daytona"


async def test_stdout_and_stderr_stay_apart(provider: DaytonaProvider) -> None:
    code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(4)"
    result = await provider.run(code)
    assert (result.stdout, result.stderr, result.exit_code) == ("to out\n", "to err\n", 4)
    # cost of the run at Daytona's default size (1 vCPU, 1 GiB, 3 GiB) and shipped rates
    rates = provider.config.pricing
    per_second = rates.cpu_per_second + rates.memory_gib_per_second + 3 * rates.disk_gib_per_second
    assert result.cost == pytest.approx(result.duration * per_second)


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("python", "print(sum(range(10)))", "45\n"),
        ("javascript", "console.log([1,2,3].map(x => x * 2).join(','))", "2,4,6\n"),
        ("shell", "echo $((6 * 7)); printf '%s\\n' \"it's\"", "42\nit's\n"),
    ],
)
async def test_languages(
    provider: DaytonaProvider, language: str, code: str, expected: str
) -> None:
    if language == "javascript" and shutil.which("node") is None:
        pytest.skip("node is not installed on this machine")
    result = await provider.run(code, language=language)
    assert (result.stdout, result.exit_code) == (expected, 0), result


async def test_typescript(provider: DaytonaProvider) -> None:
    if shutil.which("ts-node") is None:
        pytest.skip("ts-node is not installed on this machine (real Daytona images ship it)")
    result = await provider.run("const x: number = 41; console.log(x + 1)", language="typescript")
    assert result.stdout == "42\n"


async def test_unknown_language_is_refused(provider: DaytonaProvider) -> None:
    with pytest.raises(ProviderConfigError, match="ruby"):
        await provider.run("puts 1", language="ruby")


async def test_env_stdin_and_unicode(provider: DaytonaProvider) -> None:
    code = "import os, sys\nprint(os.environ['GREETING'], sys.stdin.read().upper())"
    result = await provider.run(code, env={"GREETING": "héllo 'x' $y"}, stdin="ünïcode")
    assert result.stdout == "héllo 'x' $y ÜNÏCODE\n"


async def test_large_code_goes_through_an_upload(provider: DaytonaProvider) -> None:
    filler = "# " + "x" * 78 + "\n"
    code = filler * (INLINE_LIMIT // len(filler) + 10) + "print('big')"
    result = await provider.run(code)
    assert result.stdout == "big\n"


async def test_timeout_raises_with_partial_output_and_cleans_up(
    provider: DaytonaProvider, emulator: object
) -> None:
    code = "import time\nprint('before', flush=True)\ntime.sleep(30)\nprint('after')"
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await provider.run(code, timeout=1)
    assert time.monotonic() - started < 10
    assert info.value.stdout == "before\n"
    assert isinstance(info.value, TimeoutError)
    await provider._deletes.wait()  # the delete runs behind the error
    assert live_sandboxes(emulator) == []


async def test_cancelled_run_deletes_its_sandbox(
    provider: DaytonaProvider, emulator: object
) -> None:
    running = asyncio.Event()
    task = asyncio.ensure_future(
        provider.run(
            "import time\nprint('running', flush=True)\ntime.sleep(30)",
            timeout=60,
            on_stdout=lambda text: running.set(),
        )
    )
    await asyncio.wait_for(running.wait(), 20)  # the code is executing in the sandbox
    assert len(live_sandboxes(emulator)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await provider._deletes.wait()  # the delete runs behind the cancellation
    assert live_sandboxes(emulator) == []


async def test_failed_git_clone_deletes_the_sandbox(
    provider: DaytonaProvider, emulator: object
) -> None:
    with pytest.raises(sandstorm.SandstormError):
        await provider.run("print(1)", git_repo="file:///nonexistent/repo.git")
    await provider._deletes.wait()  # the delete runs behind the error
    assert live_sandboxes(emulator) == []


@pytest.mark.parametrize("mode", ["websocket", "poll"])
async def test_streaming_delivers_output_while_running(
    emulator: object, config_for: Callable[..., DaytonaConfig], mode: str
) -> None:
    config = config_for(
        emulator.api_url,  # type: ignore[attr-defined]
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        streaming=mode,
    )
    code = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print('out', i, flush=True)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n"
        "    time.sleep(0.4)\n"
    )
    async with DaytonaProvider(config) as provider:
        stream = provider.stream(code)
        seen: list[tuple[OutputChunk, float]] = []
        async for chunk in stream:
            seen.append((chunk, time.monotonic()))
    assert stream.result is not None
    assert stream.result.stdout == "out 0\nout 1\nout 2\n"
    assert stream.result.stderr == "err 0\nerr 1\nerr 2\n"
    out = "".join(c.text for c, _ in seen if c.stream == "stdout")
    err = "".join(c.text for c, _ in seen if c.stream == "stderr")
    assert (out, err) == (stream.result.stdout, stream.result.stderr)
    so_far = ""
    arrived: dict[str, float] = {}
    for chunk, at in seen:
        if chunk.stream == "stdout":
            so_far += chunk.text
            for line in ("out 0\n", "out 2\n"):
                if line in so_far:
                    arrived.setdefault(line, at)
    first, last = arrived["out 0\n"], arrived["out 2\n"]
    assert last - first >= 0.5, "output arrived only at the end"
    assert live_sandboxes(emulator) == []


async def test_output_past_the_cap_is_flagged(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    config = config_for(
        emulator.api_url,  # type: ignore[attr-defined]
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        max_output_bytes=1 << 20,
    )
    flood = "import sys\nfor _ in range(3):\n    sys.stdout.write('x' * (1 << 20))\nprint('end')"
    async with DaytonaProvider(config) as provider:
        result = await provider.run(flood, timeout=60)
        small = await provider.run("print('y' * 1000)")
    assert result.stdout_truncated
    assert result.stdout == "x" * (1 << 20)
    assert not result.stderr_truncated
    assert not small.stdout_truncated
    assert small.stdout == "y" * 1000 + "\n"


async def test_warm_pool_serves_runs(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    config = config_for(
        emulator.api_url,  # type: ignore[attr-defined]
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        warm_pool_size=1,
    )
    async with DaytonaProvider(config) as provider:
        first = await provider.run("print(1)")
        assert provider._sandstorm_pool is not None
        await provider._sandstorm_pool.fill(
            provider._sandstorm_spec(
                template=None, persistent=False, resources=sandstorm.Resources(), network=None
            )
        )
        second = await provider.run("print(2)")
        assert (first.stdout, second.stdout) == ("1\n", "2\n")
        assert first.workspace_id != second.workspace_id
    assert live_sandboxes(emulator) == []


def test_sync_facade(emulator: object) -> None:
    with sandstorm.get_provider(
        "daytona",
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        api_url=emulator.api_url,  # type: ignore[attr-defined]
    ) as provider:
        result = provider.run("print('sync')")
    assert result.stdout == "sync\n"
    assert live_sandboxes(emulator) == []


def test_ctrl_c_in_the_sync_facade_deletes_the_sandbox(emulator: object) -> None:
    import signal
    import threading

    main = threading.main_thread().ident
    assert threading.get_ident() == main, "needs the main thread (signals)"
    fired = threading.Event()

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 20
        while not live_sandboxes(emulator) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # let it reach the exec
        fired.set()
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)

    with sandstorm.get_provider(
        "daytona",
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        api_url=emulator.api_url,  # type: ignore[attr-defined]
    ) as provider:
        thread = threading.Thread(target=interrupt_when_running, daemon=True)
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            provider.run("import time; time.sleep(30)", timeout=60)
        thread.join(5)
    assert fired.is_set()
    assert live_sandboxes(emulator) == []


async def test_exact_bytes_come_back_through_the_relabelling_daemon(
    provider: DaytonaProvider,
) -> None:
    """The emulator relabels lines like the daemon (a newline after an unterminated last
    line, NULs dropped by bash and dash); the run wrapper's framing keeps the code's bytes."""
    code = (
        "import sys\nsys.stdout.write('a\\0b\\x01\\x01\\x01\\r\\nno newline')\n"
        "sys.stderr.write('e\\0')"
    )
    chunks: list[str] = []
    result = await provider.run(code, on_stdout=chunks.append)
    assert (result.stdout, result.stderr) == ("a\0b\x01\x01\x01\r\nno newline", "e\0")
    assert "".join(chunks) == result.stdout
