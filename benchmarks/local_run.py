"""The local provider against starting an unsandboxed interpreter, measured honestly.

Usage: ``uv run python benchmarks/local_run.py [-n RUNS] [--quick] [--levels 1,8,64,256]``

Everything runs in one process and one session, with the provider's **default
configuration** (nothing tuned), and every measurement is interleaved with its
baselines: each round runs every row once, in a fresh random order, with the same pause
before each, so that both sides see the same machine load. The rows:

- latency, one run at a time: ``await run("print(1)")`` (a one-shot run in a fresh
  workspace), ``run_in_workspace`` (an existing one) and the synchronous
  ``get_provider("local").run``, against unsandboxed ``python -I -S -c 'print(1)'``
  (the primary baseline: what the sandbox's python semantics match), the venv's
  interpreter with its ``site`` (``python -c``) and the base interpreter with its
  ``site``; ``javascript`` against ``node -e`` and ``shell`` against ``sh -c``;
  ``create_workspace`` and ``delete_workspace``;
- concurrency: ``N`` simultaneous one-shot runs (``asyncio.gather``) against ``N``
  simultaneous unsandboxed ``python -I -S`` subprocesses, for each ``N`` of
  ``--levels``: throughput, p95 latency, host CPU per run, failures and the host
  memory in use at the peak (above what it was before the batch).

Host CPU is read from a ``cpuacct`` cgroup this script moves itself into (so every
process it starts, the fork server and its sandboxes' supervisors included, is counted)
plus the provider's own ``cpuacct`` cgroups (where the sandboxed code runs). Without a
writable cgroup v1 ``cpuacct`` hierarchy the CPU column shows ``n/a``. A batch counts as
finished when every result is back *and* the provider's background cleanup of it is
done (deleted workspaces unmounted and removed, blank workspaces made again).

Results go to ``benchmarks/results/local_run.json`` with the load average at the start
and end (the machine may be shared: compare ratios from the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench

import sandstorm
from sandstorm.local import LocalProvider

PYTHON_BASE = os.path.realpath(sys.executable)
"""The base interpreter (the venv's ``python`` resolved): what the fork server runs."""
PYTHON_VENV = sys.executable
NODE = shutil.which("node")
SH = shutil.which("sh") or "/bin/sh"
_CPUACCT = Path("/sys/fs/cgroup/cpuacct")


# ---------------------------------------------------------------------- host CPU


class CpuMeter:
    """CPU time of this process tree plus the provider's sandboxes (cgroup v1 cpuacct)."""

    def __init__(self) -> None:
        self.own: Path | None = None
        self.extra: list[Path] = []
        with contextlib.suppress(OSError):
            if (_CPUACCT / "cpuacct.usage").exists():
                path = _CPUACCT / f"bench-local-run-{os.getpid()}"
                path.mkdir()
                (path / "cgroup.procs").write_text(str(os.getpid()))
                self.own = path

    @property
    def available(self) -> bool:
        return self.own is not None

    def watch(self, provider: LocalProvider) -> None:
        """Also count the provider's own cgroups (its sandboxes' code runs there)."""
        engine = provider._engine  # the benchmark reads the engine's cgroup paths
        if engine is None:
            return
        for base in engine.cgroups.bases():
            path = Path(base)
            # the provider makes its cgroups below the process's own: usually below ours,
            # which counts them already (cpuacct.usage is hierarchical)
            if _CPUACCT in path.parents and (self.own is None or self.own not in path.parents):
                self.extra.append(path)

    def seconds(self) -> float:
        if self.own is None:
            return float("nan")
        total = 0
        for path in (self.own, *self.extra):
            with contextlib.suppress(OSError):
                total += int((path / "cpuacct.usage").read_text())
        return total / 1e9

    def close(self) -> None:
        if self.own is None:
            return
        with contextlib.suppress(OSError):
            (_CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(100):
            try:
                self.own.rmdir()
                break
            except OSError:
                time.sleep(0.05)  # children that were just reaped are still leaving


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Sample the host's memory in use every 5 ms; yields [peak above the start, bytes]."""

    def in_use() -> int:
        info = {
            line.split(":")[0]: int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.split(":")[0] in ("MemTotal", "MemAvailable")
        }
        return info["MemTotal"] - info["MemAvailable"]

    start = in_use()
    result = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result[0] = max(result[0], in_use() - start)
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------- latency


async def _settle(provider: LocalProvider) -> None:
    """Wait for the provider's background work (deletions, blank workspaces)."""
    while provider._sandstorm_cleanups:
        await asyncio.gather(*provider._sandstorm_cleanups, return_exceptions=True)


def _subprocess(argv: list[str]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        # blocking on purpose: the plainest way to start a process, no event loop in between
        done = subprocess.run(argv, capture_output=True, check=False)  # noqa: ASYNC221
        if done.returncode != 0 or done.stdout.strip() != b"1":
            raise RuntimeError(f"{argv[0]} failed: {done!r}")

    return call


Rows = list[_bench.Row]


async def latency(args: argparse.Namespace, provider: LocalProvider) -> tuple[Rows, Rows, Rows]:
    """Every row once per round, in random order, each after the same pause.

    Returns the python rows, the other languages' rows and the lifecycle rows.
    """
    sync = sandstorm.get_provider("local", root=args.root_sync)
    workspace = await provider.create_workspace()
    state: dict[str, Any] = {"made": None}

    async def one_shot() -> None:
        result = await provider.run("print(1)")
        assert result.stdout == "1\n", result

    async def in_workspace() -> None:
        result = await provider.run("print(1)", workspace_id=workspace.id)
        assert result.stdout == "1\n", result

    async def sync_one_shot() -> None:
        # the blocking API refuses to run inside an event loop: called from a thread
        result = await asyncio.to_thread(sync.run, "print(1)")
        assert result.stdout == "1\n", result

    async def node_run() -> None:
        result = await provider.run("console.log(1)", language="javascript")
        assert result.stdout == "1\n", result

    async def shell_run() -> None:
        result = await provider.run("echo 1", language="shell")
        assert result.stdout == "1\n", result

    async def create() -> None:
        state["made"] = await provider.create_workspace()

    async def delete() -> None:
        made, state["made"] = state["made"], None
        if made is not None:
            await provider.delete_workspace(made)

    rows: list[tuple[str, Callable[[], Awaitable[None]], bool]] = [
        ("unsandboxed python -I -S -c 'print(1)' (primary baseline)", _subprocess(
            [PYTHON_BASE, "-I", "-S", "-c", "print(1)"]), True),
        ("unsandboxed venv python -c 'print(1)' (with site)", _subprocess(
            [PYTHON_VENV, "-c", "print(1)"]), False),
        ("unsandboxed base python -c 'print(1)' (with site)", _subprocess(
            [PYTHON_BASE, "-c", "print(1)"]), False),
        ('await run("print(1)"), default config (one-shot)', one_shot, False),
        ('await run("print(1)", workspace_id=ws) (in a workspace)', in_workspace, False),
        ('get_provider("local").run("print(1)") (sync, from a thread)', sync_one_shot, False),
    ]  # fmt: skip
    lang_rows: list[tuple[str, Callable[[], Awaitable[None]], bool]] = [
        ("unsandboxed sh -c 'echo 1'", _subprocess([SH, "-c", "echo 1"]), True),
        ('await run("echo 1", language="shell")', shell_run, False),
    ]
    if NODE:
        node_base = _subprocess([NODE, "-e", "console.log(1)"])
        lang_rows += [
            ("unsandboxed node -e 'console.log(1)'", node_base, True),
            ('await run("console.log(1)", language="javascript")', node_run, False),
        ]
    life_rows: list[tuple[str, Callable[[], Awaitable[None]], bool]] = [
        ("create_workspace()", create, False),
        ("delete_workspace(ws)", delete, False),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _, _ in rows + lang_rows + life_rows}
    calls = rows + lang_rows
    try:
        for round_ in range(args.runs + 3):
            order = calls[:]
            random.shuffle(order)
            # create then delete, in that order, as one step anywhere in the round
            steps: list[list[tuple[str, Callable[[], Awaitable[None]], bool]]] = [
                [row] for row in order
            ]
            steps.insert(random.randrange(len(steps) + 1), life_rows)
            for step in steps:
                await asyncio.sleep(args.pause)
                for label, call, _ in step:
                    started = time.perf_counter()
                    await call()
                    if round_ >= 3:  # the first rounds warm up
                        samples[label].append(time.perf_counter() - started)
    finally:
        await provider.delete_workspace(workspace)
        await asyncio.to_thread(sync.close)
    python, languages, lifecycle = (
        [_bench.Row(label, samples[label], baseline=is_base) for label, _, is_base in group]
        for group in (rows, lang_rows, life_rows)
    )
    return python, languages, lifecycle


# ---------------------------------------------------------------------- concurrency


async def _batch_sandboxed(provider: LocalProvider, n: int) -> tuple[list[float], int]:
    async def one() -> float:
        started = time.perf_counter()
        result = await provider.run("print(1)")
        if result.stdout != "1\n" or result.exit_code != 0:
            raise RuntimeError(f"bad result: {result!r}")
        return time.perf_counter() - started

    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    await _settle(provider)
    good = [o for o in outcomes if isinstance(o, float)]
    for o in outcomes:
        if not isinstance(o, float):
            print(f"  sandboxed run failed: {o!r}", file=sys.stderr)
    return good, n - len(good)


async def _batch_plain(n: int) -> tuple[list[float], int]:
    async def one() -> float:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            PYTHON_BASE, "-I", "-S", "-c", "print(1)", stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or out != b"1\n":
            raise RuntimeError(f"exit {proc.returncode}: {out!r}")
        return time.perf_counter() - started

    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    good = [o for o in outcomes if isinstance(o, float)]
    return good, n - len(good)


async def concurrency(
    args: argparse.Namespace, provider: LocalProvider, meter: CpuMeter
) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    for n in args.levels:
        rounds = max(1, min(40, args.concurrency_runs // n))
        stats: dict[str, dict[str, Any]] = {
            side: {"latencies": [], "wall": 0.0, "cpu": 0.0, "failed": 0, "memory": 0}
            for side in ("sandboxed", "unsandboxed")
        }
        for _ in range(rounds):
            sides = ["sandboxed", "unsandboxed"]
            random.shuffle(sides)
            for side in sides:
                await asyncio.sleep(0.2 if n >= 64 else args.pause)
                cpu0, self0 = meter.seconds(), _self_cpu()
                with peak_memory() as peak:
                    started = time.perf_counter()
                    if side == "sandboxed":
                        lat, failed = await _batch_sandboxed(provider, n)
                    else:
                        lat, failed = await _batch_plain(n)
                    wall = time.perf_counter() - started
                entry = stats[side]
                entry["latencies"] += lat
                entry["wall"] += wall
                entry["failed"] += failed
                entry["memory"] = max(entry["memory"], peak[0])
                entry["cpu"] += (meter.seconds() - cpu0) if meter.available else 0.0
                entry["self_cpu"] = entry.get("self_cpu", 0.0) + _self_cpu() - self0
        total = rounds * n
        row: dict[str, Any] = {"n": n, "rounds": rounds}
        for side, entry in stats.items():
            lat = entry["latencies"] or [float("nan")]
            row[side] = {
                "throughput": total / entry["wall"],
                "p50_ms": statistics.median(lat) * 1e3,
                "p95_ms": _bench.percentile(lat, 0.95) * 1e3,
                "cpu_ms_per_run": entry["cpu"] / total * 1e3 if meter.available else None,
                "this_process_cpu_ms_per_run": entry["self_cpu"] / total * 1e3,
                "failed": entry["failed"],
                "peak_memory_mib": entry["memory"] / 2**20,
            }
        row["throughput_ratio"] = row["sandboxed"]["throughput"] / row["unsandboxed"]["throughput"]
        table.append(row)
        print(_concurrency_line(row), flush=True)
    return table


def cgroup_move_ms(rounds: int = 7, idle: float = 0.05) -> float | None:
    """Median ms to move a process into another cgroup after ``idle`` s without a move.

    What every sandboxed run pays once to join its cgroups: about an RCU grace period
    (4-15 ms) on a default kernel, well under 1 ms where ``favordynmods`` is in effect
    (docs/local.md, "Host tuning"). None where no cgroup hierarchy is writable.
    """
    from sandstorm.local._cgroups import _mounts

    found = _mounts()
    parent = found.v2 or next(iter(found.v1.values()), None)
    if parent is None or os.geteuid() != 0:
        return None
    target = parent / f"sandstorm-bench-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    times = []
    try:
        target.mkdir()
        for _ in range(rounds):
            time.sleep(idle)
            started = time.perf_counter()
            (target / "cgroup.procs").write_text(str(child.pid))
            times.append((time.perf_counter() - started) * 1e3)
            time.sleep(idle)
            (parent / "cgroup.procs").write_text(str(child.pid))
    except OSError:
        return None
    finally:
        child.kill()
        child.wait()
        with contextlib.suppress(OSError):
            target.rmdir()
    return statistics.median(times)


def _host_line(move_ms: float | None) -> str:
    if move_ms is None:
        return "host: cgroup moves not measured (needs root and a writable cgroup hierarchy)"
    kind = (
        "the kernel skips the RCU wait (favordynmods in effect)"
        if move_ms < 1.0
        else "each run waits about an RCU grace period to join its cgroups"
    )
    return f"host: a cgroup move after 50 ms idle takes {move_ms:.2f} ms (median): {kind}"


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _concurrency_header() -> str:
    return (
        "|    N | side        | runs/s | ratio | p50 ms | p95 ms | CPU ms/run | failed "
        "| peak mem MiB |\n"
        "|-----:|-------------|-------:|------:|-------:|-------:|-----------:|-------:"
        "|-------------:|"
    )


def _concurrency_line(row: dict[str, Any]) -> str:
    lines = []
    for side in ("sandboxed", "unsandboxed"):
        s = row[side]
        cpu = f"{s['cpu_ms_per_run']:.2f}" if s["cpu_ms_per_run"] is not None else "n/a"
        ratio = f"{row['throughput_ratio']:.2f}x" if side == "sandboxed" else ""
        lines.append(
            f"| {row['n']:>4} | {side:<11} | {s['throughput']:>6.1f} | {ratio:>5} "
            f"| {s['p50_ms']:>6.1f} | {s['p95_ms']:>6.1f} | {cpu:>10} | {s['failed']:>6} "
            f"| {s['peak_memory_mib']:>12.0f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=60, help="rounds of the latency table")
    parser.add_argument("--quick", action="store_true", help="short version (a smoke test)")
    parser.add_argument("--levels", default="1,8,64,256", help="simultaneous runs to measure")
    parser.add_argument(
        "--concurrency-runs",
        type=int,
        default=256,
        help="runs per concurrency level (at least one batch of N, at most 40 batches)",
    )
    parser.add_argument("--pause", type=float, default=0.005, help="seconds before each call")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 15)
        args.concurrency_runs = min(args.concurrency_runs, 64)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    machine_before = _bench.machine()
    meter = CpuMeter()
    try:
        with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as root_sync:
            args.root_sync = root_sync
            return asyncio.run(_main(args, root, meter, machine_before))
    finally:
        meter.close()


async def _main(
    args: argparse.Namespace, root: str, meter: CpuMeter, machine_before: dict[str, Any]
) -> int:
    move_ms = cgroup_move_ms()
    provider = sandstorm.get_async_provider("local", root=root)
    assert isinstance(provider, LocalProvider)
    async with provider:
        report = provider.isolation_report()
        meter.watch(provider)
        print(f"interpreter: {PYTHON_BASE}; load average at start: {machine_before['loadavg']}")
        print("isolation active: " + ", ".join(sorted(report.active)))
        print(_host_line(move_ms))
        print(f"rounds: {args.runs}, in random order, {args.pause * 1e3:g} ms before each call\n")
        python_rows, lang_rows, life_rows = await latency(args, provider)
        base = python_rows[0]
        rows = python_rows + lang_rows + life_rows
        print(_bench.table("python: p50/p95 against python -I -S (ratio = p50 / its p50)",
                           python_rows, base))  # fmt: skip
        print()
        print(_language_table(lang_rows))
        print()
        print(_bench.table("workspace lifecycle", life_rows))
        print("\n### concurrency: N simultaneous one-shot runs vs N unsandboxed python -I -S\n")
        print(_concurrency_header(), flush=True)
        table = await concurrency(args, provider, meter)
    machine_after = _bench.machine()
    print(f"\nload average at end: {machine_after['loadavg']}")
    checks = _checks(rows, table)
    print("\n" + _bench.report_checks(checks))
    _bench.write_result(
        "local_run",
        {
            "load_before": machine_before["loadavg"],
            "cgroup_move_ms": move_ms,
            "host": _host_line(move_ms),
            "rows": [_bench.row_json(r, base if r in python_rows else None) for r in rows],
            "concurrency": table,
            "checks": [_bench.check_json(c) for c in checks],
        },
    )
    return 0


def _language_table(rows: list[_bench.Row]) -> str:
    """Each sandboxed language row against the unsandboxed row just before it."""
    lines = [
        "### other languages: p50/p95 against the unsandboxed command",
        "",
        f"| {'measurement':<52} | {'n':>4} | {'median ms':>10} | {'p95 ms':>9} | {'ratio':>7} |",
        f"|{'-' * 54}|{'-' * 6}|{'-' * 12}|{'-' * 11}|{'-' * 9}|",
    ]
    base: _bench.Row | None = None
    for r in rows:
        if r.baseline:
            base = r
        ratio = f"{r.median / base.median:6.2f}x" if base is not None else "      -"
        lines.append(
            f"| {r.label:<52} | {len(r.samples):>4} | {r.median * 1e3:>10.2f} "
            f"| {r.p95 * 1e3:>9.2f} | {ratio:>7} |"
        )
    return "\n".join(lines)


def _checks(rows: list[_bench.Row], table: list[dict[str, Any]]) -> list[_bench.Check]:
    by = {r.label: r for r in rows}
    base = rows[0].median
    one_shot = next(r for r in rows if "(one-shot)" in r.label and "await" in r.label)
    in_ws = next(r for r in rows if "(in a workspace)" in r.label)
    checks = [
        _bench.Check("P1 one-shot run p50 / python -I -S p50", one_shot.median / base, 1.0, "<="),
        _bench.Check("P1 in-workspace run p50 / python -I -S p50", in_ws.median / base, 0.8, "<="),
        _bench.Check(
            "P1 create_workspace p50", by["create_workspace()"].median * 1e3, 20, "<=", "ms"
        ),
        _bench.Check(
            "P1 delete_workspace p50", by["delete_workspace(ws)"].median * 1e3, 20, "<=", "ms"
        ),
    ]
    for row in table:
        if row["n"] == 64:
            ratio = row["throughput_ratio"]
            checks.append(_bench.Check("P1 64 simultaneous: throughput ratio", ratio, 1.5, ">="))
        if row["n"] == 256:
            failed = row["sandboxed"]["failed"]
            checks.append(_bench.Check("P1 256 simultaneous: failed runs", failed, 0, "<=", ""))
    return checks


if __name__ == "__main__":
    sys.exit(main())
