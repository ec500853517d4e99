"""Latency of ``run("print(1)")`` on the local provider against a bare interpreter start.

Usage: ``uv run python benchmarks/local_run.py [-n RUNS]``. Both measurements use the
same interpreter (``sys.executable`` resolved) in the same process and session. The
provider runs with every isolation layer its probe finds (namespaces, uid drop,
Landlock, seccomp, cgroups); the table shows median, p95 and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import sandstorm
from sandstorm.local import LocalProvider


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=100, help="runs per measurement")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size (0 = off)")
    args = parser.parse_args()
    python = os.path.realpath(sys.executable)

    baseline: list[float] = []
    for _ in range(5):
        subprocess.run([python, "-c", "print(1)"], capture_output=True, check=True)
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", "print(1)"], capture_output=True, check=True)
        baseline.append(time.perf_counter() - started)

    local: list[float] = []
    with (
        tempfile.TemporaryDirectory() as root,
        sandstorm.get_provider("local", root=root, warm_pool_size=args.pool) as provider,
    ):
        impl = provider.async_provider
        assert isinstance(impl, LocalProvider)
        report = impl.isolation_report()
        for _ in range(5):
            provider.run("print(1)")
        for _ in range(args.runs):
            started = time.perf_counter()
            result = provider.run("print(1)")
            local.append(time.perf_counter() - started)
            assert result.stdout == "1\n", result
            time.sleep(0.005)  # let the pool refill, as between real requests

    async def async_runs() -> tuple[list[float], list[float]]:
        one_shot: list[float] = []
        in_workspace: list[float] = []
        with tempfile.TemporaryDirectory() as root:
            provider = sandstorm.get_async_provider("local", root=root, warm_pool_size=args.pool)
            async with provider:
                workspace = await provider.create_workspace()
                for _ in range(5):
                    await provider.run("print(1)")
                    await provider.run_in_workspace(workspace, "print(1)")
                for _ in range(args.runs):
                    started = time.perf_counter()
                    await provider.run("print(1)")
                    one_shot.append(time.perf_counter() - started)
                    await asyncio.sleep(0.005)
                    started = time.perf_counter()
                    await provider.run_in_workspace(workspace, "print(1)")
                    in_workspace.append(time.perf_counter() - started)
                    await asyncio.sleep(0.005)
                await provider.delete_workspace(workspace)
        return one_shot, in_workspace

    async_one_shot, async_in_workspace = asyncio.run(async_runs())
    rows = [
        (f"bare subprocess.run([{os.path.basename(python)}, '-c', 'print(1)'])", baseline),
        (f'local provider run("print(1)"), warm pool {args.pool}', local),
        (f'async provider: await run("print(1)"), warm pool {args.pool}', async_one_shot),
        ('async provider: await run_in_workspace(ws, "print(1)")', async_in_workspace),
    ]
    base_p50 = statistics.median(baseline)
    print(f"runs per row: {args.runs}; interpreter: {python}")
    print("isolation active: " + ", ".join(sorted(report.active)))
    print()
    print(f"| {'measurement':<60} | {'p50 ms':>7} | {'p95 ms':>7} | {'p50 ratio':>9} |")
    print(f"|{'-' * 62}|{'-' * 9}|{'-' * 9}|{'-' * 11}|")
    for label, samples in rows:
        p50 = statistics.median(samples)
        p95 = _percentile(samples, 0.95)
        print(f"| {label:<60} | {p50 * 1e3:7.2f} | {p95 * 1e3:7.2f} | {p50 / base_p50:8.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
