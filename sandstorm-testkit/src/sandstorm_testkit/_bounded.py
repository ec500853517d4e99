"""Every provider call of a contract test runs on a worker thread, watched by a deadline.

A contract test's async fixtures and the test itself run on an event loop in a worker
thread that belongs to that one test; pytest's own thread only waits, with a deadline, for
each piece to finish. A provider that blocks its event loop, makes a blocking call, or
never returns fails that one test with a clear message when the deadline passes; the
blocked thread is abandoned (it is a daemon thread) and the session goes on to its report.
Synchronous contract tests (the blocking facade) run in a worker thread the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import pytest

from ._marks import is_contract_item

__all__ = ["DEFAULT_TEST_TIMEOUT", "TestLoop", "deadline_of", "loop_for"]

T = TypeVar("T")

DEFAULT_TEST_TIMEOUT = 300.0
"""Seconds each phase (setup, call, teardown) of one contract test may take."""

_LOOP_KEY: pytest.StashKey[TestLoop] = pytest.StashKey()
_PHASE_KEY: pytest.StashKey[tuple[str, float]] = pytest.StashKey()


class TestLoop:
    """An event loop in a daemon thread, owned by one test; calls into it are bounded."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.wedged: str | None = None
        self.providers: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="sandstorm-testkit-loop", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], what: str, deadline: float) -> T:
        """Run ``coro`` on the loop; fail the test if it is not done by ``deadline``."""
        if self.wedged is not None:
            coro.close()
            pytest.fail(
                f"{what}: skipped, the test's event loop is still blocked by {self.wedged}",
                pytrace=False,
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return self._wait(future, what, deadline)

    def run_sync(self, func: Callable[[], T], what: str, deadline: float) -> T:
        """Run blocking ``func`` in a new daemon thread; fail the test past ``deadline``."""
        if self.wedged is not None:
            pytest.fail(
                f"{what}: skipped, the test is still blocked by {self.wedged}", pytrace=False
            )
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def target() -> None:
            try:
                future.set_result(func())
            except BaseException as exc:  # handed to pytest's thread
                future.set_exception(exc)

        threading.Thread(target=target, name="sandstorm-testkit-sync", daemon=True).start()
        return self._wait(future, what, deadline)

    def _wait(self, future: concurrent.futures.Future[T], what: str, deadline: float) -> T:
        try:
            return future.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.wedged = what
            self._abandon()
            pytest.fail(
                f"{what} did not finish within {self.budget:g} s: the provider hung (a call "
                "that never returns, an ignored timeout, a blocked event loop or a blocking "
                "call). The kit stopped waiting and abandoned the test's event-loop thread; "
                "raise --sandstorm-timeout if the provider is only slow",
                pytrace=False,
            )

    def _abandon(self) -> None:
        from sandstorm import _exits

        # A hung provider cannot clean up at exit either: do not let it hold up the exit.
        with _exits._lock:
            for provider in self.providers:
                _exits._holding.discard(provider)
                _exits._providers.discard(provider)

    def close(self) -> None:
        """Cancel what is left and stop the loop (unless it is blocked: then abandon it)."""
        if self.wedged is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)  # stops it if it is not blocked
            return

        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        future = asyncio.run_coroutine_threadsafe(finish(), self._loop)
        try:
            future.result(30)
        except concurrent.futures.TimeoutError:
            self.wedged = "closing the test's event loop"
            self._abandon()
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self._loop.close()


def loop_for(item: pytest.Item) -> TestLoop:
    """The test's loop, started on first use."""
    loop = item.stash.get(_LOOP_KEY, None)
    if loop is None:
        from ._settings import SETTINGS_KEY

        loop = TestLoop(item.config.stash[SETTINGS_KEY].test_timeout)
        item.stash[_LOOP_KEY] = loop
    return loop


def _deadline(item: pytest.Item) -> tuple[str, float]:
    return item.stash.get(_PHASE_KEY, ("call", time.monotonic() + DEFAULT_TEST_TIMEOUT))


def deadline_of(item: pytest.Item) -> float:
    """When the test's current phase runs out of time (``time.monotonic()`` clock)."""
    return _deadline(item)[1]


def _phase(item: pytest.Item, phase: str) -> None:
    from ._settings import SETTINGS_KEY

    budget = item.config.stash[SETTINGS_KEY].test_timeout
    item.stash[_PHASE_KEY] = (phase, time.monotonic() + budget)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    _phase(item, "setup")
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    _phase(item, "call")
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    _phase(item, "teardown")
    try:
        return (yield)
    finally:
        loop = item.stash.get(_LOOP_KEY, None)
        if loop is not None:
            loop.close()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, object, object]:
    """Run the contract tests' function-scoped async fixtures on the test's bounded loop."""
    func = fixturedef.func
    item = request.node
    if (
        not (inspect.isasyncgenfunction(func) or inspect.iscoroutinefunction(func))
        or fixturedef.scope != "function"
        or not isinstance(item, pytest.Item)
        or not is_contract_item(item)
    ):
        return (yield)
    original_argnames = fixturedef.argnames
    has_request = "request" in original_argnames
    name = fixturedef.argname

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        req = kwargs["request"] if has_request else kwargs.pop("request")
        local = func
        if req.instance is not None and inspect.ismethod(func):
            local = func.__func__.__get__(req.instance)
        loop = loop_for(item)
        if inspect.isasyncgenfunction(func):
            return _asyncgen_fixture(loop, item, name, local(*args, **kwargs))
        phase, deadline = _deadline(item)
        return loop.run(local(*args, **kwargs), f"fixture {name!r} ({phase})", deadline)

    if inspect.isasyncgenfunction(func):

        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            yield from wrapper(*args, **kwargs)

        fixturedef.func = gen_wrapper
    else:
        fixturedef.func = wrapper
    if not has_request:
        fixturedef.argnames += ("request",)
    try:
        return (yield)
    finally:
        fixturedef.func = func
        fixturedef.argnames = original_argnames


def _asyncgen_fixture(loop: TestLoop, item: pytest.Item, name: str, agen: Any) -> Any:
    phase, deadline = _deadline(item)
    value = loop.run(agen.__anext__(), f"fixture {name!r} ({phase})", deadline)
    yield value
    if loop.wedged is not None:
        return  # the test already failed for it; its loop cannot run the teardown
    phase, deadline = _deadline(item)

    async def finish() -> None:
        with contextlib.suppress(StopAsyncIteration):
            await agen.__anext__()
            raise RuntimeError(f"async fixture {name!r} yielded more than once")

    loop.run(finish(), f"fixture {name!r} (teardown)", deadline)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a contract test on its bounded loop (async) or in a bounded thread (sync)."""
    if not is_contract_item(pyfuncitem):
        return None
    funcargs = pyfuncitem.funcargs
    testargs = {arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
    func = pyfuncitem.obj
    inner = getattr(getattr(func, "hypothesis", None), "inner_test", func)
    deadline = deadline_of(pyfuncitem)
    what = f"{pyfuncitem.name}"
    loop = loop_for(pyfuncitem)
    if inspect.iscoroutinefunction(func):
        loop.run(func(**testargs), what, deadline)
    elif inspect.iscoroutinefunction(inner):
        raise pytest.UsageError(f"{what}: async hypothesis tests are not supported by the kit")
    else:
        loop.run_sync(lambda: func(**testargs), what, deadline)
    return True
