"""Chaos: the Daytona provider against an emulator that fails on purpose.

Usage: ``uv run python benchmarks/chaos.py [--quick] [--only r1,r2,r4] [--runs N] ...``

- **R1** ``runs`` (1,000) one-shot ``provider.run`` calls, ``concurrency`` at a time,
  against an emulator injecting faults into 10 % of all requests (:data:`FAULT_PLAN`:
  503 and 502/504 statuses, 429 with ``Retry-After``, connections dropped before and after
  the server acted, added latency). Every run must succeed (with its own output) or
  raise a ``SandstormError`` subclass; >= 99 % must succeed; no run may pass its deadline
  (:func:`run_deadline`); the emulator must hold no sandbox afterwards.
- **R2** runs cancelled at random points: half by ``asyncio`` cancellation, half by a
  real SIGINT delivered to the main thread while it waits in the blocking facade
  (``KeyboardInterrupt``). The emulator must hold no sandbox afterwards.
- **R4** hypothesis over random API keys, with every logger at DEBUG: the key never
  appears in a log line, a repr, an exception's text (with its chain) or an audit event,
  through successful runs, injected faults, timeouts, failing code, a wrong key and a
  bad configuration.

The emulator runs in this process (uvicorn in a thread, on a loopback socket) so that
what it holds can be read from its state directly, past any injected fault. The same
functions back the short version in ``sandstorm-daytona/tests/chaos/``. Results:
``benchmarks/results/chaos.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import re
import secrets
import signal
import statistics
import string
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sandstorm
from sandstorm import SandstormError
from sandstorm_daytona import DaytonaConfig, DaytonaProvider, RetryPolicy
from sandstorm_daytona.emulator import (
    EmulatorConfig,
    FaultRule,
    Faults,
    RunningEmulator,
    running_emulator,
)

FAULT_PLAN: tuple[FaultRule, ...] = (
    FaultRule(path="*", kind=503, rate=0.02),
    FaultRule(path="*", kind=502, rate=0.005),
    FaultRule(path="*", kind=504, rate=0.005, when="after"),
    FaultRule(path="*", kind=429, rate=0.025, retry_after=1),
    FaultRule(path="*", kind="drop", rate=0.015),
    FaultRule(path="*", kind="drop", rate=0.005, when="after"),
    FaultRule(path="*", kind="latency", rate=0.025, latency=0.3),
)
"""10 % of requests, every route: each rule draws independently (seeded)."""

RETRY = RetryPolicy(attempts=5, initial_backoff=0.05, max_backoff=1.0, jitter=0.05, deadline=10.0)
REQUEST_TIMEOUT = 10.0
RUN_TIMEOUT = 10.0


def run_deadline() -> float:
    """Seconds a chaos run may take: its code timeout, one retry budget, one request timeout."""
    return RUN_TIMEOUT + RETRY.deadline + REQUEST_TIMEOUT


def provider_for(emu: RunningEmulator, key: str | None = None, **values: Any) -> DaytonaProvider:
    """The async provider against ``emu`` with the chaos retry policy."""
    config = DaytonaConfig.load(
        {
            "api_key": key or emu.api_key,
            "api_url": emu.api_url,
            "retry": RETRY,
            "request_timeout": REQUEST_TIMEOUT,
            **values,
        },
        environ={},
    )
    return DaytonaProvider(config)


def live_sandboxes(emu: RunningEmulator) -> list[str]:
    """Ids of the sandboxes the emulator still holds, read from its state (no HTTP)."""
    return [
        record.id
        for record in list(emu.emulator.sandboxes.values())
        if record.state not in ("destroyed", "destroying")
    ]


def _emulator(key: str, faults: tuple[FaultRule, ...] = (), seed: int = 0) -> Any:
    config = EmulatorConfig(api_keys={key: "org-chaos"}, faults=Faults(seed=seed, rules=faults))
    return running_emulator(config)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _describe(exc: BaseException) -> str:
    """The error's type and first line, ids replaced so that alike errors count together."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {_UUID.sub('<id>', text)[:140]}"


# ---------------------------------------------------------------------- R1


@dataclass
class R1Result:
    """What R1 saw."""

    runs: int
    ok: int = 0
    sandstorm_errors: Counter[str] = field(default_factory=Counter)
    other_errors: Counter[str] = field(default_factory=Counter)
    wrong_output: int = 0
    over_deadline: int = 0
    durations: list[float] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    deadline: float = 0.0
    wall: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.ok / self.runs if self.runs else 0.0

    @property
    def passed(self) -> bool:
        return (
            not self.other_errors
            and not self.wrong_output
            and self.success_rate >= 0.99
            and not self.over_deadline
            and not self.left_behind
        )


async def _r1(runs: int, concurrency: int, seed: int) -> R1Result:
    key = f"chaos_{secrets.token_hex(16)}"
    result = R1Result(runs=runs, deadline=run_deadline())
    with _emulator(key, FAULT_PLAN, seed) as emu:
        started = time.perf_counter()
        provider = provider_for(emu)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(runs):
            queue.put_nowait(index)

        async def one(index: int) -> None:
            began = time.perf_counter()
            try:
                async with asyncio.timeout(result.deadline):
                    reply = await provider.run(f"print({index})", timeout=RUN_TIMEOUT)
            except TimeoutError as exc:
                if isinstance(exc, SandstormError):  # ExecutionTimeout is a TimeoutError too
                    result.sandstorm_errors[_describe(exc)] += 1
                else:
                    result.over_deadline += 1
            except SandstormError as exc:
                result.sandstorm_errors[_describe(exc)] += 1
            except Exception as exc:
                result.other_errors[_describe(exc)] += 1
            else:
                if reply.exit_code == 0 and reply.stdout == f"{index}\n":
                    result.ok += 1
                else:
                    result.wrong_output += 1
            result.durations.append(time.perf_counter() - began)

        async def worker() -> None:
            while not queue.empty():
                await one(queue.get_nowait())

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            await provider.aclose()
        result.wall = time.perf_counter() - started
        result.left_behind = live_sandboxes(emu)
    return result


def r1(runs: int = 1000, concurrency: int = 8, seed: int = 7) -> R1Result:
    """R1: ``runs`` runs against 10 % injected faults."""
    return asyncio.run(_r1(runs, concurrency, seed))


# ---------------------------------------------------------------------- R2

SLOW_CODE = "import time; time.sleep(0.15); print(1)"


@dataclass
class R2Result:
    """What R2 saw."""

    async_runs: int
    sync_runs: int
    cancelled: int = 0
    interrupted: int = 0
    finished_first: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    typical_run: float = 0.0
    left_behind: list[str] = field(default_factory=list)
    sync_skipped: str = ""

    @property
    def passed(self) -> bool:
        return not self.left_behind and not self.errors


async def _typical(provider: DaytonaProvider) -> float:
    samples = []
    for _ in range(3):
        began = time.perf_counter()
        await provider.run(SLOW_CODE)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def _r2_async(emu: RunningEmulator, runs: int, rng: random.Random, out: R2Result) -> None:
    provider = provider_for(emu)
    try:
        out.typical_run = await _typical(provider)

        async def worker(count: int) -> None:
            for _ in range(count):
                task = asyncio.create_task(provider.run(SLOW_CODE))
                await asyncio.sleep(rng.uniform(0, 1.2 * out.typical_run))
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    out.cancelled += 1
                except SandstormError as exc:
                    out.errors[_describe(exc)] += 1
                else:
                    out.finished_first += 1

        share = [runs // 4 + (1 if i < runs % 4 else 0) for i in range(4)]
        await asyncio.gather(*(worker(n) for n in share))
    finally:
        await provider.aclose()


def _r2_sync(emu: RunningEmulator, runs: int, rng: random.Random, out: R2Result) -> None:
    """A real SIGINT to the main thread while it blocks in ``SyncProvider.run``."""
    if threading.current_thread() is not threading.main_thread():
        out.sync_skipped = "not on the main thread: SIGINT cannot be aimed at it"
        return
    main = threading.main_thread().ident
    assert main is not None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    provider = sandstorm.SyncProvider(provider_for(emu))
    typical = out.typical_run or 0.3
    try:
        for _ in range(runs):
            lock = threading.Lock()
            inside = threading.Event()

            def fire(lock: threading.Lock = lock, inside: threading.Event = inside) -> None:
                with lock:
                    if inside.is_set():
                        signal.pthread_kill(main, signal.SIGINT)

            timer = threading.Timer(rng.uniform(0, 1.2 * typical), fire)
            try:
                try:
                    with lock:
                        inside.set()
                    timer.start()
                    provider.run(SLOW_CODE)
                finally:
                    with lock:
                        inside.clear()
                    timer.cancel()
                    timer.join()
                out.finished_first += 1
            except KeyboardInterrupt:
                out.interrupted += 1
            except SandstormError as exc:
                out.errors[_describe(exc)] += 1
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            provider.close()
        signal.signal(signal.SIGINT, previous)


def r2(async_runs: int = 100, sync_runs: int = 100, seed: int = 11) -> R2Result:
    """R2: runs cancelled at random points (asyncio, then SIGINT in the sync facade)."""
    rng = random.Random(seed)
    out = R2Result(async_runs=async_runs, sync_runs=sync_runs)
    key = f"chaos_{secrets.token_hex(16)}"
    with _emulator(key) as emu:
        asyncio.run(_r2_async(emu, async_runs, rng, out))
        _r2_sync(emu, sync_runs, rng, out)
        out.left_behind = live_sandboxes(emu)
    return out


# ---------------------------------------------------------------------- R4

R4_FAULTS: tuple[FaultRule, ...] = (
    FaultRule(path="*", kind=503, rate=0.1),
    FaultRule(path="*", kind=429, rate=0.1, retry_after=0),
    FaultRule(path="*", kind="drop", rate=0.05),
    FaultRule(path="*", kind=500, rate=0.03),
)
"""Heavier than R1: R4 wants the error paths (retry logs, mapped errors) exercised."""


class _Capture(logging.Handler):
    """Keeps every formatted record (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record))


@contextlib.contextmanager
def _debug_logging() -> Iterator[_Capture]:
    capture = _Capture()
    names = ["", "httpx", "httpcore", "sandstorm", "sandstorm.daytona", "sandstorm.pool"]
    names += ["uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "hpack", "tenacity"]
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.disabled, list(logger.handlers)))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if name.startswith("uvicorn"):  # its own handlers would print the access log
            logger.handlers = []
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger, level, disabled, handlers in saved:
            logger.removeHandler(capture)
            logger.handlers = handlers
            logger.setLevel(level)
            logger.disabled = disabled


class _AuditTap:
    """A sandstorm plugin keeping every audit event as JSON text."""

    def __init__(self) -> None:
        self.events: list[str] = []

        class Plugin:
            @sandstorm.hookimpl
            def sandstorm_audit(inner, event: Any) -> None:
                self.events.append(event.model_dump_json())
                self.events.append(repr(event))

        self.plugin = Plugin()


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def _r4_one(key: str, wrong_key: str) -> dict[str, list[str]]:
    """Drive every path once with ``key``; return the texts produced, by source."""
    texts: dict[str, list[str]] = {"repr": [], "exception": [], "log": [], "audit": []}
    tap = _AuditTap()
    manager = sandstorm.plugin_manager()
    manager.register(tap.plugin, name="chaos-audit-tap")
    try:
        with (
            _emulator(key, R4_FAULTS, seed=random.randrange(1 << 30)) as emu,
            _debug_logging() as log,
        ):
            provider = provider_for(emu, key)
            texts["repr"] += [repr(provider), str(provider), repr(provider.config)]
            texts["repr"] += [str(provider.config), provider.config.model_dump_json()]
            texts["repr"] += [repr(provider.config.model_dump())]
            sync = sandstorm.SyncProvider(provider)
            texts["repr"] += [repr(sync)]
            calls = [
                lambda: provider.run("print(1)"),
                lambda: provider.run("import sys; print('x', file=sys.stderr); sys.exit(3)"),
                lambda: provider.run("import time; time.sleep(5)", timeout=0.5),
                lambda: provider.run("echo $0", language="shell"),
                provider.create_workspace,
                provider.list_workspaces,
            ]
            for call in calls:
                try:
                    value = await call()
                except Exception as exc:
                    texts["exception"].append(_exception_text(exc))
                else:
                    texts["repr"] += [repr(value), str(value)]
                    if isinstance(value, sandstorm.Workspace):
                        with contextlib.suppress(SandstormError):
                            await provider.delete_workspace(value)
            await provider.aclose()
            wrong = provider_for(emu, wrong_key)
            try:
                await wrong.run("print(1)")
            except Exception as exc:
                texts["exception"].append(_exception_text(exc))
            await wrong.aclose()
            for values in (
                {"api_key": key, "api_url": "ftp://nowhere"},
                {"api_key": key, "request_timeout": -1},
                {"api_key": key, "retry": {"attempts": 0}},
            ):
                try:
                    DaytonaConfig.load(values, environ={})
                except Exception as exc:
                    texts["exception"].append(_exception_text(exc))
            try:
                sandstorm.get_provider("daytona", api_key=key, api_url="not a url")
            except Exception as exc:
                texts["exception"].append(_exception_text(exc))
            texts["log"] = list(log.lines)
    finally:
        manager.unregister(name="chaos-audit-tap")
    texts["audit"] = tap.events
    return texts


@dataclass
class R4Result:
    """What R4 saw."""

    examples: int = 0
    texts_checked: Counter[str] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.examples > 0 and not self.leaks


KEY_ALPHABET = string.ascii_letters + string.digits + "-_.~"


def r4(examples: int = 25) -> R4Result:
    """R4: ``examples`` random keys; none may show up anywhere."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    out = R4Result()
    # Hypothesis also draws string constants it finds in the code; wrapped in two marks, a
    # key can never coincide with a file path or source line that a traceback shows.
    keys = st.text(KEY_ALPHABET, min_size=14, max_size=62).map(lambda text: f"K{text}Z")
    pairs = st.tuples(keys, keys).filter(lambda p: p[0] not in p[1] and p[1] not in p[0])

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(pair=pairs)
    def check(pair: tuple[str, str]) -> None:
        key, wrong_key = pair
        texts = asyncio.run(_r4_one(key, wrong_key))
        out.examples += 1
        for source, items in texts.items():
            out.texts_checked[source] += len(items)
            for text in items:
                for secret in (key, wrong_key):
                    if secret in text:
                        at = text.index(secret)
                        shown = text[max(0, at - 80) : at].replace("\n", " ")
                        out.leaks.append(f"{source}: ...{shown}<KEY>")

    check()
    return out


# ---------------------------------------------------------------------- main


def _r1_table(res: R1Result) -> str:
    durations = sorted(res.durations)
    p99 = durations[min(len(durations) - 1, int(0.99 * len(durations)))] if durations else 0
    lines = [
        "### R1 runs against 10 % injected faults",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| runs | {res.runs} | |",
        f"| succeeded (right output) | {res.ok} ({res.success_rate:.1%}) | >= 99 % |",
        f"| raised a SandstormError | {sum(res.sandstorm_errors.values())} | allowed |",
        f"| raised anything else | {sum(res.other_errors.values())} | 0 |",
        f"| wrong output | {res.wrong_output} | 0 |",
        f"| over the deadline ({res.deadline:g} s) | {res.over_deadline} | 0 |",
        f"| run duration median / p99 / max s | {statistics.median(durations):.2f} / "
        f"{p99:.2f} / {max(durations):.2f} | < {res.deadline:g} |",
        f"| sandboxes left behind | {len(res.left_behind)} | 0 |",
        f"| wall time s | {res.wall:.1f} | |",
    ]
    for name, count in (res.sandstorm_errors + res.other_errors).most_common():
        lines.append(f"| error: {name} | {count} | |")
    return "\n".join(lines)


def _r2_table(res: R2Result) -> str:
    lines = [
        "### R2 runs cancelled at random points",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| asyncio runs / cancelled mid-run | {res.async_runs} / {res.cancelled} | |",
        f"| sync runs / KeyboardInterrupt mid-run | {res.sync_runs} / {res.interrupted} | |",
        f"| finished before the cancel landed | {res.finished_first} | |",
        f"| other errors | {sum(res.errors.values())} | 0 |",
        f"| typical run s (cancel points drawn in [0, 1.2x]) | {res.typical_run:.2f} | |",
        f"| sandboxes left behind | {len(res.left_behind)} | 0 |",
    ]
    if res.sync_skipped:
        lines.append(f"| sync part skipped | {res.sync_skipped} | |")
    return "\n".join(lines)


def _r4_table(res: R4Result) -> str:
    checked = ", ".join(f"{k} {v}" for k, v in sorted(res.texts_checked.items()))
    return "\n".join(
        [
            "### R4 the API key never shows",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| random keys tried (hypothesis) | {res.examples} | |",
            f"| texts checked | {checked} | |",
            f"| texts holding a key | {len(res.leaks)} | 0 |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version")
    parser.add_argument("--only", default="r1,r2,r4", help="comma-separated: r1,r2,r4")
    parser.add_argument("--runs", type=int, default=None, help="R1 runs (1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="R1 runs at once")
    parser.add_argument("--cancels", type=int, default=None, help="R2 runs (200)")
    parser.add_argument("--examples", type=int, default=None, help="R4 keys (25)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    wanted = {part.strip().lower() for part in args.only.split(",") if part.strip()}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bench

    payload: dict[str, Any] = {"quick": args.quick}
    ok = True
    if "r1" in wanted:
        runs = args.runs or (60 if args.quick else 1000)
        res1 = r1(runs, args.concurrency, args.seed)
        text = _r1_table(res1)
        print(text + "\n", flush=True)
        ok &= res1.passed
        payload["r1"] = {
            "runs": res1.runs,
            "ok": res1.ok,
            "success_rate": res1.success_rate,
            "sandstorm_errors": dict(res1.sandstorm_errors),
            "other_errors": dict(res1.other_errors),
            "wrong_output": res1.wrong_output,
            "over_deadline": res1.over_deadline,
            "deadline_s": res1.deadline,
            "duration_median_s": statistics.median(res1.durations),
            "duration_max_s": max(res1.durations),
            "left_behind": res1.left_behind,
            "fault_plan": [rule.model_dump() for rule in FAULT_PLAN],
            "passed": res1.passed,
            "table": text,
        }
    if "r2" in wanted:
        total = args.cancels or (20 if args.quick else 200)
        res2 = r2(total - total // 2, total // 2, args.seed)
        text = _r2_table(res2)
        print(text + "\n", flush=True)
        ok &= res2.passed
        payload["r2"] = {
            "async_runs": res2.async_runs,
            "sync_runs": res2.sync_runs,
            "cancelled": res2.cancelled,
            "interrupted": res2.interrupted,
            "finished_first": res2.finished_first,
            "errors": dict(res2.errors),
            "left_behind": res2.left_behind,
            "passed": res2.passed,
            "table": text,
        }
    if "r4" in wanted:
        res4 = r4(args.examples or (4 if args.quick else 25))
        text = _r4_table(res4)
        print(text + "\n", flush=True)
        for leak in res4.leaks[:20]:
            print(f"  leak: {leak}")
        ok &= res4.passed
        payload["r4"] = {
            "examples": res4.examples,
            "texts_checked": dict(res4.texts_checked),
            "leaks": res4.leaks[:50],
            "passed": res4.passed,
            "table": text,
        }
    path = _bench.write_result("chaos", payload)
    print(f"{'PASSED' if ok else 'FAILED'}; results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
