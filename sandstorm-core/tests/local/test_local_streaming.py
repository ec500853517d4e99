"""Streaming: output reaches callbacks while the code runs, decoded, never mid-character."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import sandstorm


def test_callbacks_receive_output_while_running(lp: sandstorm.SyncProvider) -> None:
    events: list[tuple[float, str, str]] = []
    code = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "print('warn', file=sys.stderr, flush=True)\n"
        "time.sleep(0.6)\n"
        "print('second', flush=True)\n"
    )
    started = time.monotonic()
    result = lp.run(
        code,
        on_stdout=lambda t: events.append((time.monotonic() - started, "out", t)),
        on_stderr=lambda t: events.append((time.monotonic() - started, "err", t)),
    )
    finished = time.monotonic() - started
    assert "".join(t for _, s, t in events if s == "out") == result.stdout == "first\nsecond\n"
    assert "".join(t for _, s, t in events if s == "err") == result.stderr == "warn\n"
    first_at = next(at for at, _, t in events if "first" in t)
    assert first_at < finished - 0.4, "the first line arrived only at the end"


def test_multibyte_characters_are_never_split(lp: sandstorm.SyncProvider) -> None:
    chunks: list[str] = []
    code = (
        "import os, time\n"
        "data = 'é✓🎉'.encode()\n"
        "for i in range(len(data)):\n"
        "    os.write(1, data[i:i+1]); time.sleep(0.02)\n"
    )
    result = lp.run(code, on_stdout=chunks.append)
    assert "".join(chunks) == result.stdout == "é✓🎉"
    assert all("\ufffd" not in chunk for chunk in chunks)
    assert len(chunks) >= 3


def test_invalid_utf8_is_replaced_not_fatal(lp: sandstorm.SyncProvider) -> None:
    chunks: list[str] = []
    result = lp.run("import os; os.write(1, b'a\\xffb')", on_stdout=chunks.append)
    assert result.stdout == "a\ufffdb"
    assert "".join(chunks) == "a\ufffdb"


def test_shell_streams_too(lp: sandstorm.SyncProvider) -> None:
    chunks: list[str] = []
    result = lp.run(
        "for i in 1 2 3; do echo $i; sleep 0.05; done", language="shell", on_stdout=chunks.append
    )
    assert "".join(chunks) == result.stdout == "1\n2\n3\n"
    assert len(chunks) == 3


def test_async_iterator_form(local_root: Path) -> None:
    async def main() -> tuple[list[sandstorm.OutputChunk], sandstorm.RunResult | None]:
        provider = sandstorm.get_async_provider("local", root=str(local_root / "stream"))
        async with provider:
            stream = provider.stream("import sys\nprint('a')\nprint('b', file=sys.stderr)")
            chunks = [chunk async for chunk in stream]
            return chunks, stream.result

    chunks, result = asyncio.run(main())
    assert result is not None
    assert result.stdout == "a\n"
    # python runs unbuffered (as `python -u`): print's text and newline may come apart
    joined = {
        name: "".join(c.text for c in chunks if c.stream == name) for name in ("stdout", "stderr")
    }
    assert joined == {"stdout": "a\n", "stderr": "b\n"}


def test_a_failing_callback_stops_the_run(lp: sandstorm.SyncProvider) -> None:
    def explode(text: str) -> None:
        raise RuntimeError("consumer broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="consumer broke"):
        lp.run("import time\nprint('x', flush=True)\ntime.sleep(20)", on_stdout=explode)
    assert time.monotonic() - started < 5
