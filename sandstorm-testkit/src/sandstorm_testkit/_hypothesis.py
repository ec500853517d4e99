"""Hypothesis profiles for the kit's property tests, and the bridge that runs them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

__all__ = [
    "EXPLORE_PROFILE",
    "OFFLINE_PROFILE",
    "LIVE_PROFILE",
    "register_profiles",
    "profile_settings",
    "call",
]

OFFLINE_PROFILE = "sandstorm-offline"
"""Many examples, derandomized (the same examples every run): for a provider on this machine."""
EXPLORE_PROFILE = "sandstorm-explore"
"""More examples, random, with the example database: to hunt for new failures on purpose."""
LIVE_PROFILE = "sandstorm-live"
"""Few examples, derandomized, no example database: for a billable remote service in CI."""

T = TypeVar("T")

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


def register_profiles() -> None:
    """Register the kit's profiles unless the user already registered their own."""
    defaults = {
        OFFLINE_PROFILE: settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            stateful_step_count=15,
            suppress_health_check=_SLOW_OK,
        ),
        EXPLORE_PROFILE: settings(
            max_examples=200,
            deadline=None,
            stateful_step_count=30,
            suppress_health_check=_SLOW_OK,
        ),
        LIVE_PROFILE: settings(
            max_examples=5,
            deadline=None,
            derandomize=True,
            database=None,
            stateful_step_count=6,
            suppress_health_check=_SLOW_OK,
        ),
    }
    for name, value in defaults.items():
        try:
            settings.get_profile(name)
        except InvalidArgument:  # not registered yet
            settings.register_profile(name, value)


def profile_settings(name: str) -> settings:
    """The settings of profile ``name`` (registering the kit's defaults first)."""
    register_profiles()
    return settings.get_profile(name)


def call(func: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
    """From a hypothesis worker thread, run ``func`` on the test's event loop and wait."""
    bound: Callable[[], Coroutine[Any, Any, T]] = partial(func, *args, **kwargs)
    return anyio.from_thread.run(bound)


async def run_in_thread(func: Callable[[], None]) -> None:
    """Run a (blocking) hypothesis test in a worker thread; ``call`` reaches back to the loop.

    The provider stays on the event loop that created it, and hypothesis never sees a
    pytest fixture, so there is no function-scoped-fixture health check to suppress.
    """
    await anyio.to_thread.run_sync(func)
