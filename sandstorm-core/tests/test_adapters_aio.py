"""sandstorm.adapters.shielded: cleanup a cancelled caller cannot interrupt."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sandstorm.adapters import shielded


async def _value_returned_when_not_cancelled() -> None:
    async def cleanup() -> str:
        await asyncio.sleep(0)
        return "partial output"

    assert await shielded(cleanup()) == "partial output"


async def _failure_raised_when_not_cancelled() -> None:
    async def cleanup() -> None:
        raise OSError("could not delete")

    with pytest.raises(OSError, match="could not delete"):
        await shielded(cleanup())


async def _cancelled_caller_waits_for_the_cleanup_then_is_cancelled() -> None:
    finished = asyncio.Event()

    async def cleanup() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    caller = asyncio.ensure_future(shielded(cleanup()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set()


async def _cleanup_failure_never_replaces_the_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def cleanup() -> None:
        await asyncio.sleep(0.05)
        raise OSError("could not delete")

    caller = asyncio.ensure_future(shielded(cleanup()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with (
        caplog.at_level(logging.WARNING, logger="sandstorm"),
        pytest.raises(asyncio.CancelledError),
    ):
        await caller
    assert "could not delete" in caplog.text


def test_value_returned_when_not_cancelled() -> None:
    asyncio.run(_value_returned_when_not_cancelled())


def test_failure_raised_when_not_cancelled() -> None:
    asyncio.run(_failure_raised_when_not_cancelled())


def test_cancelled_caller_waits_for_the_cleanup_then_is_cancelled() -> None:
    asyncio.run(_cancelled_caller_waits_for_the_cleanup_then_is_cancelled())


def test_cleanup_failure_never_replaces_the_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(_cleanup_failure_never_replaces_the_cancellation(caplog))
