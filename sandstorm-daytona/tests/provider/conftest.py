"""Fixtures for the Daytona provider tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sandstorm_daytona import DaytonaConfig, RetryPolicy

SECRET = "dtn_test_secret_key_0123456789"


@pytest.fixture
def secret() -> str:
    """An API key that must never show up anywhere."""
    return SECRET


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries that do not make the suite slow."""
    return RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.01, deadline=5)


@pytest.fixture
def config_for(fast_retry: RetryPolicy) -> Callable[..., DaytonaConfig]:
    """Build a config pointing at a loopback URL."""

    def make(api_url: str = "http://127.0.0.1:9/api", **values: object) -> DaytonaConfig:
        values.setdefault("retry", fast_retry)
        return DaytonaConfig.load({"api_key": SECRET, "api_url": api_url, **values}, environ={})

    return make


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the provider uses asyncio primitives)."""
    return "asyncio"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test in this directory runs under anyio."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.anyio)
