"""Run every benchmark and the chaos run, one after the other, and print each table.

Usage: ``uv run python benchmarks/run_all.py [--quick] [--skip p1,p4,chaos,...]``

P1 (``local_run.py``), P2-P4 (``daytona_vs_sdk.py``, once at 0 ms and once at 40 ms per
request, with the table of requests per operation), P5 (``import_time.py``) and R1/R2/R4
(``chaos.py``) each run in their own process; each writes its JSON to
``benchmarks/results/``. ``--quick`` runs the short versions (a smoke test); without it the
full versions (docs/benchmarks.md quotes the measured durations of both). A summary
of every figure against its target closes the output and goes to
``benchmarks/results/summary.json`` (``summary_quick.json`` with ``--quick``), with the
wall time of each part and of the whole run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench

HERE = Path(__file__).resolve().parent


def _run(name: str, command: list[str]) -> tuple[int, str, float]:
    print(f"\n## {name}: {' '.join(Path(c).name if c.endswith('.py') else c for c in command)}\n")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return process.wait(), "".join(lines), time.perf_counter() - started


def _p1_checks() -> list[dict[str, Any]]:
    """P1's checks, from the JSON ``local_run.py`` writes."""
    result = _bench.RESULTS / "local_run.json"
    if not result.exists():
        return []
    checks: list[dict[str, Any]] = json.loads(result.read_text())["checks"]
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short versions")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to skip: p1,p2,p3,p4,requests,p5,chaos",
    )
    parser.add_argument(
        "--latencies",
        default="0,40",
        metavar="MS,MS",
        help="per-request latencies (ms) P2-P4 run at (default 0,40)",
    )
    args = parser.parse_args(argv)
    skip = {part.strip().lower() for part in args.skip.split(",") if part.strip()}
    quick = ["--quick"] if args.quick else []
    python = _bench.PYTHON
    print(f"machine: {json.dumps(_bench.machine())}")
    started = time.perf_counter()
    failures: list[str] = []
    checks: list[dict[str, Any]] = []
    durations: dict[str, float] = {}

    if "p1" not in skip:
        code, _, durations["p1"] = _run("P1", [python, str(HERE / "local_run.py"), *quick])
        if code:
            failures.append(f"P1 exited {code}")
        else:
            checks += _p1_checks()
    parts = [p for p in ("p2", "p3", "p4") if p not in skip]
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    for index, latency in enumerate(latencies):
        wanted = parts + (["requests"] if index == 0 and "requests" not in skip else [])
        if not wanted:
            continue
        name = f"P2-P4 at {latency:g} ms"
        command = [python, str(HERE / "daytona_vs_sdk.py"), "--only", ",".join(wanted)]
        code, _, durations[name] = _run(name, [*command, "--latency", f"{latency:g}", *quick])
        if code:
            failures.append(f"daytona_vs_sdk.py --latency {latency:g} exited {code}")
        suffix = f"_{latency:g}ms" if latency > 0 else ""
        result = _bench.RESULTS / f"daytona_vs_sdk{suffix}.json"
        if result.exists():
            sections = json.loads(result.read_text())["sections"]
            for p in parts:
                if p not in sections:
                    continue
                for check in sections[p].get("checks", [sections[p]["check"]]):
                    checks.append({**check, "name": f"{check['name']} at {latency:g} ms"})
    if "p5" not in skip:
        code, _, durations["p5"] = _run("P5", [python, str(HERE / "import_time.py"), *quick])
        if code:
            failures.append(f"import_time.py exited {code}")
        checks.append(json.loads((_bench.RESULTS / "import_time.json").read_text())["check"])
    if "chaos" not in skip:
        code, _, durations["chaos"] = _run("R1, R2, R4", [python, str(HERE / "chaos.py"), *quick])
        data = json.loads((_bench.RESULTS / "chaos.json").read_text())
        for key in ("r1", "r2", "r4"):
            if key in data:
                checks.append(
                    {"name": f"{key.upper()} (see its table)", "met": data[key]["passed"]}
                )

    print("\n## Summary\n")
    for check in checks:
        if "value" in check:
            verdict = "MET" if check["met"] else "MISSED"
            print(
                f"- {check['name']}: {check['value']:.3g}{check['unit']} "
                f"(target {check['op']} {check['target']:g}{check['unit']}) {verdict}"
            )
        else:
            print(f"- {check['name']}: {'MET' if check['met'] else 'MISSED'}")
    for failure in failures:
        print(f"- ERROR: {failure}")
    # the short and the full run keep separate summaries: docs/benchmarks.md quotes both
    # durations (scripts/gen_benchmarks.py reads them)
    _bench.write_result(
        "summary_quick" if args.quick else "summary",
        {
            "quick": args.quick,
            "checks": checks,
            "errors": failures,
            "seconds": durations,
            "total_seconds": round(time.perf_counter() - started, 1),
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
