"""The Daytona provider against the official ``daytona`` SDK, on one emulator instance.

Usage: ``uv run python benchmarks/daytona_vs_sdk.py [--quick] [--only p2,p3,p4] [-n RUNS]``

- **P2** one-shot ``provider.run("print(1)")`` (create -> run -> delete, no warm pool)
  against the SDK's ``create()`` -> ``sandbox.process.code_run("print(1)")`` ->
  ``delete()``. Target: provider median <= 0.5x the SDK's.
- **P3** the same provider ``run`` served from a warm pool against the same SDK baseline.
  Each timed run starts once the pool has refilled (a real warm hit); the background
  refill still competes for the server, as it would in production. Target <= 0.2x.
- **P4** ``concurrency`` (256) runs at once, through the async provider and through the
  official ``AsyncDaytona``, each client in its own fresh process: throughput (runs/s)
  and that process's peak RSS (``ru_maxrss``, ``VmHWM``). Target: provider >= 2x the
  SDK's throughput.

The emulator runs in its own process (``sandstorm-daytona emulator``), so no client
shares its interpreter. Rounds alternate between the two clients so that load changes on
the machine hit both alike. Every result is checked (stdout ``1``), and at the end the
emulator must hold no sandbox. Results: ``benchmarks/results/daytona_vs_sdk.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench
from _bench import Check, Row

CODE = "print(1)"


# ---------------------------------------------------------------------- P2 / P3


class _Creations:
    """Counts workspaces created (the warm pool's refills included), via a sandstorm hook."""

    def __init__(self) -> None:
        from sandstorm import hookimpl

        self.count = 0
        self.changed = threading.Condition()

        class Plugin:
            @hookimpl
            def sandstorm_workspace_created(inner, provider: Any, workspace: Any) -> None:
                with self.changed:
                    self.count += 1
                    self.changed.notify_all()

        self.plugin = Plugin()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


def _sdk_once(daytona: Any) -> float:
    started = time.perf_counter()
    sandbox = daytona.create()
    try:
        result = sandbox.process.code_run(CODE)
    finally:
        daytona.delete(sandbox)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.result.strip() != "1":
        raise AssertionError(f"SDK code_run gave {result!r}")
    return elapsed


def _provider_once(provider: Any) -> float:
    started = time.perf_counter()
    result = provider.run(CODE)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.stdout != "1\n":
        raise AssertionError(f"provider run gave {result!r}")
    return elapsed


def _floor(daytona: Any, runs: int) -> Row:
    """One ``code_run`` on a sandbox that already exists: the server's own cost of a run.

    No client can serve a one-shot run in less than the server needs to execute it, so
    this row bounds every achievable ratio from below.
    """
    sandbox = daytona.create()
    samples = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            sandbox.process.code_run(CODE)
            samples.append(time.perf_counter() - started)
    finally:
        daytona.delete(sandbox)
    row = Row("reference: SDK process.code_run alone on an existing sandbox", samples)
    row.extra["client_cpu_ms_per_run"] = float("nan")
    return row


def _interleaved(
    runs: int, warmup: int, one: Any, other: Any, before_one: Any = None
) -> tuple[list[float], list[float], float, float]:
    """Alternate ``one()`` and ``other()``; samples and client CPU seconds per call of each."""
    for _ in range(warmup):
        if before_one:
            before_one()
        one()
        other()
    first: list[float] = []
    second: list[float] = []
    cpu_first = cpu_second = 0.0
    for index in range(runs):
        order = ((0, one), (1, other)) if index % 2 == 0 else ((1, other), (0, one))
        for which, call in order:
            if which == 0 and before_one:
                before_one()
            cpu = time.process_time()
            elapsed = call()
            spent = time.process_time() - cpu
            if which == 0:
                first.append(elapsed)
                cpu_first += spent
            else:
                second.append(elapsed)
                cpu_second += spent
    return first, second, cpu_first / runs, cpu_second / runs


def p2(emu: _bench.Emulator, runs: int) -> dict[str, Any]:
    """Cold one-shot run vs SDK create -> code_run -> delete."""
    import sandstorm

    daytona = _bench.sdk_client(emu.api_url, emu.api_key)
    with sandstorm.get_provider("daytona", api_key=emu.api_key, api_url=emu.api_url) as provider:
        prov, sdk, prov_cpu, sdk_cpu = _interleaved(
            runs, 3, lambda: _provider_once(provider), lambda: _sdk_once(daytona)
        )
    base = Row("official SDK: create -> process.code_run -> delete", sdk, baseline=True)
    row = Row("provider.run (create -> run -> delete, no pool)", prov)
    base.extra["client_cpu_ms_per_run"] = sdk_cpu * 1e3
    row.extra["client_cpu_ms_per_run"] = prov_cpu * 1e3
    floor = _floor(daytona, runs)
    return _section("P2", "P2 one-shot run vs the official SDK (sync)", [base, row, floor], 0.5)


def p3(emu: _bench.Emulator, runs: int, pool: int) -> dict[str, Any]:
    """Warm-pool run vs SDK create -> code_run -> delete."""
    import sandstorm

    counter = _Creations()
    manager = sandstorm.plugin_manager()
    manager.register(counter.plugin, name="bench-creations")
    daytona = _bench.sdk_client(emu.api_url, emu.api_key)
    done = {"runs": 0}
    misses = {"n": 0}

    def refilled() -> None:
        # every run so far took one workspace; the pool holds `pool` more once refilled
        if not counter.wait_for(done["runs"] + pool, 30):
            misses["n"] += 1

    def warm_run() -> float:
        elapsed = _provider_once(provider)
        done["runs"] += 1
        return elapsed

    try:
        with sandstorm.get_provider(
            "daytona", api_key=emu.api_key, api_url=emu.api_url, warm_pool_size=pool
        ) as provider:
            provider.run(CODE)  # the first run fills the pool
            done["runs"] = 1
            prov, sdk, prov_cpu, sdk_cpu = _interleaved(
                runs, 2, warm_run, lambda: _sdk_once(daytona), before_one=refilled
            )
    finally:
        manager.unregister(name="bench-creations")
    base = Row("official SDK: create -> process.code_run -> delete", sdk, baseline=True)
    row = Row(f"provider.run from a warm pool (size {pool})", prov)
    base.extra["client_cpu_ms_per_run"] = sdk_cpu * 1e3
    row.extra["client_cpu_ms_per_run"] = prov_cpu * 1e3
    row.extra["pool_not_refilled_in_30s"] = misses["n"]
    floor = _floor(daytona, runs)
    return _section("P3", "P3 warm-pool run vs the official SDK (sync)", [base, row, floor], 0.2)


def _section(key: str, title: str, rows: list[Row], target: float) -> dict[str, Any]:
    base, row = rows[0], rows[1]
    text = _bench.table(title, rows, base)
    cpu = "; ".join(
        f"{r.label.split(':')[0]}: {r.extra['client_cpu_ms_per_run']:.1f}" for r in rows[:2]
    )
    text += f"\n\nclient CPU ms per run: {cpu}"
    check = Check(f"{key} provider/SDK median", row.median / base.median, target, "<=")
    print(text + "\n\n- " + check.text() + "\n", flush=True)
    return {
        "title": title,
        "rows": [_bench.row_json(r, base) for r in rows],
        "check": _bench.check_json(check),
        "table": text,
    }


# ---------------------------------------------------------------------- P4


def _peak_rss_kib() -> dict[str, int]:
    figures = {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                name, value = line.split(":", 1)
                figures[f"{name}_kib"] = int(value.split()[0])
    except OSError:
        pass
    return figures


async def _provider_burst(url: str, key: str, concurrency: int) -> tuple[list[float], int]:
    import sandstorm

    provider = sandstorm.get_async_provider("daytona", api_key=key, api_url=url)
    latencies: list[float] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            result = await provider.run(CODE)
        except Exception as exc:
            failures += 1
            print(f"provider run failed: {exc!r}", file=sys.stderr)
            return
        latencies.append(time.perf_counter() - started)
        if result.stdout != "1\n":
            failures += 1

    async with provider:
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies, failures


async def _sdk_burst(url: str, key: str, concurrency: int) -> tuple[list[float], int]:
    _bench.quiet_sdk_warnings()
    from daytona import AsyncDaytona, DaytonaConfig

    latencies: list[float] = []
    failures = 0
    async with AsyncDaytona(DaytonaConfig(api_key=key, api_url=url, target="us")) as daytona:

        async def one() -> None:
            nonlocal failures
            started = time.perf_counter()
            try:
                sandbox = await daytona.create()
                try:
                    result = await sandbox.process.code_run(CODE)
                finally:
                    await daytona.delete(sandbox)
            except Exception as exc:
                failures += 1
                print(f"SDK run failed: {exc!r}", file=sys.stderr)
                return
            latencies.append(time.perf_counter() - started)
            if result.result.strip() != "1":
                failures += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies, failures


def p4_client(which: str, url: str, key: str, concurrency: int) -> None:
    """Child process: one burst of ``concurrency`` runs; prints a JSON line."""
    burst = _provider_burst if which == "provider" else _sdk_burst
    # each client's own imports happen before the idle figure, so the burst's cost shows
    if which == "provider":
        import sandstorm  # noqa: F401
        from sandstorm_daytona import DaytonaProvider  # noqa: F401
    else:
        _bench.quiet_sdk_warnings()
        from daytona import AsyncDaytona, DaytonaConfig  # noqa: F401
    idle = _peak_rss_kib()
    cpu = time.process_time()
    started = time.perf_counter()
    latencies, failures = asyncio.run(burst(url, key, concurrency))
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "client": which,
                "concurrency": concurrency,
                "wall_s": wall,
                "cpu_s": time.process_time() - cpu,
                "ok": len(latencies),
                "failures": failures,
                "throughput_per_s": len(latencies) / wall,
                "latencies_s": latencies,
                "rss_after_import_kib": idle,
                "rss_peak_kib": _peak_rss_kib(),
            }
        ),
        flush=True,
    )


def _spawn_client(which: str, emu: _bench.Emulator, concurrency: int) -> dict[str, Any]:
    command = [_bench.PYTHON, __file__, "--p4-client", which, emu.api_url, emu.api_key]
    reply = subprocess.run(
        [*command, "--concurrency", str(concurrency)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if reply.returncode != 0 or not reply.stdout.strip():
        raise RuntimeError(f"P4 {which} client failed ({reply.returncode}): {reply.stderr[-3000:]}")
    errors = [line for line in reply.stderr.splitlines() if "failed" in line]
    data: dict[str, Any] = json.loads(reply.stdout.strip().splitlines()[-1])
    data["errors_sample"] = errors[:5]
    return data


def p4(emu: _bench.Emulator, concurrency: int, rounds: int) -> dict[str, Any]:
    """Throughput and peak RSS of ``concurrency`` concurrent runs, per client process."""
    results: dict[str, list[dict[str, Any]]] = {"sdk": [], "provider": []}
    for index in range(rounds):
        order = ("sdk", "provider") if index % 2 == 0 else ("provider", "sdk")
        for which in order:
            results[which].append(_spawn_client(which, emu, concurrency))
            _bench.wait_idle(emu)
    rows = []
    summary: dict[str, Any] = {}
    for which, label in (
        ("sdk", "official AsyncDaytona: create -> code_run -> delete"),
        ("provider", "async provider.run (no pool)"),
    ):
        runs = results[which]
        throughput = [r["throughput_per_s"] for r in runs]
        rss = [r["rss_peak_kib"].get("VmHWM_kib", r["rss_peak_kib"]["ru_maxrss_kib"]) for r in runs]
        idle = [r["rss_after_import_kib"].get("VmRSS_kib", 0) for r in runs]
        latencies = [x for r in runs for x in r["latencies_s"]]
        summary[which] = {
            "throughput_per_s": throughput,
            "peak_rss_mib": [x / 1024 for x in rss],
            "rss_after_import_mib": [x / 1024 for x in idle],
            "client_cpu_s": [r["cpu_s"] for r in runs],
            "wall_s": [r["wall_s"] for r in runs],
            "failures": sum(r["failures"] for r in runs),
            "errors_sample": [e for r in runs for e in r["errors_sample"]][:5],
        }
        row = Row(label, latencies or [0.0], baseline=which == "sdk")
        rows.append((which, row))
    import statistics

    thr = {k: statistics.median(v["throughput_per_s"]) for k, v in summary.items()}
    rss = {k: statistics.median(v["peak_rss_mib"]) for k, v in summary.items()}
    idle_rss = {k: statistics.median(v["rss_after_import_mib"]) for k, v in summary.items()}
    cpu = {k: statistics.median(v["client_cpu_s"]) for k, v in summary.items()}
    width = max(len(r.label) for _, r in rows)
    lines = [
        f"### P4 {concurrency} concurrent runs, each client in its own process "
        f"({rounds} round(s), medians)",
        "",
        f"| {'client':<{width}} | runs/s | ratio | latency median ms | latency p95 ms "
        "| peak RSS MiB | RSS after import MiB | client CPU s | failures |",
        f"|{'-' * (width + 2)}|--------|-------|-------------------|----------------"
        "|--------------|----------------------|--------------|----------|",
    ]
    for which, row in rows:
        lines.append(
            f"| {row.label:<{width}} | {thr[which]:6.1f} | {thr[which] / thr['sdk']:4.2f}x "
            f"| {row.median * 1e3:17.0f} | {row.p95 * 1e3:14.0f} | {rss[which]:12.1f} "
            f"| {idle_rss[which]:20.1f} | {cpu[which]:12.2f} | {summary[which]['failures']:8d} |"
        )
    text = "\n".join(lines)
    check = Check("P4 provider/SDK throughput", thr["provider"] / thr["sdk"], 2.0, ">=")
    rss_ratio = rss["provider"] / rss["sdk"]
    text += f"\n\npeak RSS provider/SDK: {rss_ratio:.2f}x"
    print(text + "\n\n- " + check.text() + "\n", flush=True)
    return {
        "title": f"P4 {concurrency} concurrent async runs",
        "concurrency": concurrency,
        "rounds": rounds,
        "summary": summary,
        "rows": [_bench.row_json(r, rows[0][1]) for _, r in rows],
        "throughput_ratio": thr["provider"] / thr["sdk"],
        "peak_rss_ratio": rss_ratio,
        "check": _bench.check_json(check),
        "table": text,
    }


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    parser.add_argument("--only", default="p2,p3,p4", help="comma-separated: p2,p3,p4")
    parser.add_argument("-n", "--runs", type=int, default=None, help="timed runs per row")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size for P3")
    parser.add_argument("--concurrency", type=int, default=None, help="P4 concurrent runs")
    parser.add_argument("--rounds", type=int, default=None, help="P4 bursts per client")
    parser.add_argument(
        "--p4-client", nargs=3, metavar=("WHICH", "URL", "KEY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.p4_client:
        which, url, key = args.p4_client
        p4_client(which, url, key, args.concurrency or 256)
        return 0
    runs = args.runs or (10 if args.quick else 60)
    concurrency = args.concurrency or (64 if args.quick else 256)
    rounds = args.rounds or (1 if args.quick else 2)
    wanted = {part.strip().lower() for part in args.only.split(",") if part.strip()}
    print(
        f"python {sys.version.split()[0]} at {_bench.PYTHON}; {os.cpu_count()} CPUs; "
        f"load {os.getloadavg()[0]:.2f}\n",
        flush=True,
    )
    sections: dict[str, Any] = {}
    with _bench.emulator_process() as emu:
        if "p2" in wanted:
            sections["p2"] = p2(emu, runs)
            _bench.wait_idle(emu)
        if "p3" in wanted:
            sections["p3"] = p3(emu, runs, args.pool)
            _bench.wait_idle(emu)
        if "p4" in wanted:
            sections["p4"] = p4(emu, concurrency, rounds)
        left = _bench.live_sandboxes(emu.api_url, emu.api_key)
    print(f"sandboxes left on the emulator afterwards: {len(left)}")
    path = _bench.write_result(
        "daytona_vs_sdk",
        {"quick": args.quick, "runs": runs, "sections": sections, "left_behind": len(left)},
    )
    print(f"results: {path}")
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
