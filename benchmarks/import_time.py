"""P5: cold ``import sandstorm`` + ``get_provider("local")`` against ``python -c pass``.

Usage: ``uv run python benchmarks/import_time.py [--quick] [-n RUNS] [--profile] [--no-bytecode]``

Both commands run with the venv's interpreter as the venv invokes it (``sys.executable``,
not resolved through its symlink, which would leave the venv), in fresh processes,
alternating, many times; the table shows median, p95 and the added milliseconds. Targets:
at most +80 ms at the median, and ``import sandstorm`` alone at most +40 ms. ``--profile``
also prints the slowest imports of one run (``python -X importtime``).

Python's bytecode cache is on, as on a user's machine (an installed wheel has its ``.pyc``
files; an editable checkout writes them on first import), even where the environment sets
``PYTHONDONTWRITEBYTECODE``: the warm-up runs write them. ``--no-bytecode`` keeps the
environment's setting, so every start compiles whatever has no cached bytecode yet.
Results: ``benchmarks/results/import_time.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench
from _bench import Check, Row

BASELINE = "pass"
SUBJECT = "import sandstorm; sandstorm.get_provider('local')"
IMPORT_ONLY = "import sandstorm"
FLOOR = "import asyncio; from pydantic import BaseModel"
"""What building the provider imports from other packages (its config is a pydantic
model, the provider async): ``get_provider('local')`` without settings builds it on first
use, so a cold start no longer pays this; the row shows what that saves."""


def _time(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([_bench.PYTHON, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def import_profile(env: dict[str, str], top: int = 15) -> list[tuple[str, float, float]]:
    """(module, self ms, cumulative ms) of the slowest imports, from ``-X importtime``."""
    reply = subprocess.run(
        [_bench.PYTHON, "-X", "importtime", "-c", SUBJECT],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in reply.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((match.group(4), int(match.group(1)) / 1e3, int(match.group(2)) / 1e3))
    return sorted(rows, key=lambda r: -r[2])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("-n", "--runs", type=int, default=None, help="runs per command")
    parser.add_argument("--profile", action="store_true", help="print the slowest imports")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE from the environment (sources compiled every start)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (15 if args.quick else 60)
    with tempfile.TemporaryDirectory(prefix="sandstorm-p5-") as home:
        # a private state dir, so no earlier run's files make this one cheaper or dearer
        env = {**os.environ, "XDG_CACHE_HOME": home, "XDG_STATE_HOME": home}
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(3):
            _time(BASELINE, env)
            _time(SUBJECT, env)
        base: list[float] = []
        subject: list[float] = []
        floor: list[float] = []
        import_only: list[float] = []
        for index in range(runs):
            trio = [
                (base, BASELINE),
                (subject, SUBJECT),
                (import_only, IMPORT_ONLY),
                (floor, FLOOR),
            ]
            for samples, code in trio if index % 2 == 0 else trio[::-1]:
                samples.append(_time(code, env))
        profile = import_profile(env)
    rows = [
        Row(f"python -c {BASELINE!r}", base, baseline=True),
        Row(f"python -c {SUBJECT!r}", subject),
        Row(f"python -c {IMPORT_ONLY!r}", import_only),
        Row(f"python -c {FLOOR!r} (reference)", floor),
    ]
    added = rows[1].median - rows[0].median
    added_import = rows[2].median - rows[0].median
    text = _bench.table("P5 cold import + get_provider('local')", rows, rows[0])
    text += f"\n\nadded at the median: {added * 1e3:.1f} ms (interpreter: {_bench.PYTHON})"
    text += f"\nbytecode cache: {'as the environment sets it' if args.no_bytecode else 'on'}"
    text += (
        f"\nreference row (what building the provider at once imports from others): "
        f"{(rows[3].median - rows[0].median) * 1e3:.1f} ms"
    )
    check = Check("P5 added cold-start time", added * 1e3, 80, "<=", unit=" ms")
    check_import = Check("P5 added by import sandstorm", added_import * 1e3, 40, "<=", unit=" ms")
    print(text + "\n\n- " + check.text() + "\n- " + check_import.text() + "\n")
    if args.profile or not check.met:
        print("slowest imports (cumulative ms, self ms), one run of python -X importtime:")
        for name, own, total in profile:
            print(f"  {total:8.1f} {own:8.1f}  {name}")
    path = _bench.write_result(
        "import_time",
        {
            "quick": args.quick,
            "runs": runs,
            "bytecode": not args.no_bytecode,
            "rows": [_bench.row_json(r, rows[0]) for r in rows],
            "added_ms": added * 1e3,
            "added_import_ms": added_import * 1e3,
            "check": _bench.check_json(check),
            "check_import": _bench.check_json(check_import),
            "import_profile": [
                {"module": n, "self_ms": s, "cumulative_ms": c} for n, s, c in profile
            ],
            "table": text,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
