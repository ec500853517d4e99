#!/usr/bin/env python3
"""Write the generated parts of docs/benchmarks.md from the result files.

    uv run python scripts/gen_benchmarks.py          # rewrite docs/benchmarks.md
    uv run python scripts/gen_benchmarks.py --check  # exit 1 if it is stale (CI)

The figures come from ``benchmarks/results/*.json``, which ``benchmarks/run_all.py``
writes (run the full size, then ``--quick``: each keeps its own summary). The page holds
regions between ``<!-- begin generated: NAME -->`` and ``<!-- end generated: NAME -->``;
only those are rewritten, the prose around them is the page's own.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET = ROOT / "docs" / "benchmarks.md"
REGION = re.compile(
    r"(<!-- begin generated: (?P<name>[\w-]+) .*?-->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end generated: (?P=name) -->)",
    re.DOTALL,
)


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/run_all.py (see docs/benchmarks.md)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _machine(data: dict[str, Any]) -> str:
    machine = data["machine"]
    load = machine.get("loadavg") or [0.0]
    return (
        f"{machine['nproc']} vCPU {machine['cpu']}, Linux {machine['kernel']}, "
        f"{machine['implementation']} {machine['python']}; load average {load[0]:g} at the end"
    )


def reproduce() -> str:
    """The commands, with how long the recorded runs took."""
    full, quick = _load("summary"), _load("summary_quick")
    lines = [
        "```bash",
        f"uv run python benchmarks/run_all.py            # everything, full size "
        f"(the recorded run: {_minutes(full['total_seconds'])})",
        f"uv run python benchmarks/run_all.py --quick    # the short versions "
        f"(the recorded run: {_minutes(quick['total_seconds'])})",
        "uv run python benchmarks/run_all.py --skip p1,p4   # leave parts out",
        "uv run python benchmarks/run_all.py --latencies 0,40,100   # P2-P4 at other latencies",
        "```",
        "",
        "Both durations are those of the runs recorded in `benchmarks/results/` "
        f"(`summary.json`, {full['at']}, load average {full['machine']['loadavg'][0]:g} at "
        f"the end; `summary_quick.json`, {quick['at']}, load average "
        f"{quick['machine']['loadavg'][0]:g}) on {quick['machine']['nproc']} cores: a loaded "
        "machine stretches them. Per part (full / quick): "
        + ", ".join(
            f"{part} {_minutes(full['seconds'][part])} / {_minutes(quick['seconds'][part])}"
            for part in full["seconds"]
            if part in quick["seconds"]
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _check(check: dict[str, Any]) -> str:
    verdict = "MET" if check["met"] else "MISSED"
    if "value" not in check:
        return f"- {check['name']}: {verdict}"
    return (
        f"- {check['name']}: {check['value']:.3g}{check['unit']} "
        f"(target {check['op']} {check['target']:g}{check['unit']}) {verdict}"
        f"{check.get('note', '')}"
    )


def _with_latest_p5(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's checks; P5's from ``import_time.json``, with ``import sandstorm``'s.

    ``import_time.py`` run on its own after the full run (it writes the same file
    ``run_all.py`` reads) replaces the summary's P5 line, which then says when it ran.
    """
    if not (RESULTS / "import_time.json").exists():
        return list(summary["checks"])
    p5 = _load("import_time")
    note = ""
    if p5["at"] > summary["at"]:
        load = (p5["machine"].get("loadavg") or [0.0])[0]
        note = f" (`import_time.py` re-run alone, {p5['at']}, load average {load:g})"
    checks: list[dict[str, Any]] = []
    for check in summary["checks"]:
        if check["name"] == p5["check"]["name"]:
            checks += [{**c, "note": note} for c in (p5["check"], p5.get("check_import")) if c]
        else:
            checks.append(check)
    return checks


def _demote(table: str) -> str:
    """A result file's Markdown table, its heading one level down (under ``###``)."""
    return re.sub(r"^### ", "#### ", table.strip(), flags=re.MULTILINE) + "\n"


def _p1_table(data: dict[str, Any]) -> str:
    lines = [
        "#### P1 the `local` provider against unsandboxed interpreters",
        "",
        *(
            [
                data["host"][0].upper()
                + data["host"][1:]
                + " ([Host tuning](local.md#host-tuning-cgroup_favordynmods)).",
                "",
            ]
            if data.get("host")
            else []
        ),
        "| measurement | n | p50 ms | p95 ms | ratio to its baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        ratio = row.get("ratio_to_baseline")
        lines.append(
            f"| {row['label']} | {row['n']} | {row['median']:.2f} | {row['p95']:.2f} | "
            + (f"{ratio:.2f}x |" if ratio is not None else "|")
        )
    lines += [
        "",
        "| N at once | sandboxed runs/s | unsandboxed runs/s | ratio | failed |",
        "|---:|---:|---:|---:|---:|",
    ]
    for level in data["concurrency"]:
        boxed, bare = level["sandboxed"], level["unsandboxed"]
        lines.append(
            f"| {level['n']} | {boxed['throughput']:.1f} | {bare['throughput']:.1f} | "
            f"{boxed['throughput'] / bare['throughput']:.2f}x | {boxed['failed']} |"
        )
    return "\n".join(lines) + "\n"


def latest() -> str:
    """Every figure against its target, then every table, from the full run's files."""
    summary = _load("summary")
    parts = [
        f"Taken with `uv run python benchmarks/run_all.py` (full size), finished "
        f"{summary['at']}, on {_machine(summary)}. On a shared machine absolute times are "
        "inflated and noisy; the interleaved ratios are the figures to read.",
        "",
        "### Every figure against its target",
        "",
        *(_check(check) for check in _with_latest_p5(summary)),
        *(f"- ERROR: {error}" for error in summary["errors"]),
        "",
        "### Tables",
        "",
    ]
    tables: list[str] = []
    local = RESULTS / "local_run.json"
    if local.exists():
        tables.append(_p1_table(_load("local_run")))
    for name in ("daytona_vs_sdk", "daytona_vs_sdk_40ms"):
        if (RESULTS / f"{name}.json").exists():
            for section in _load(name)["sections"].values():
                tables.append(_demote(section["table"]))
    if (RESULTS / "import_time.json").exists():
        tables.append(_demote(_load("import_time")["table"]))
    if (RESULTS / "chaos.json").exists():
        chaos = _load("chaos")
        tables += [_demote(chaos[key]["table"]) for key in ("r1", "r2", "r4") if key in chaos]
    return "\n".join(parts) + "\n" + "\n".join(tables)


GENERATORS = {"reproduce": reproduce, "latest": latest}


def render(text: str) -> str:
    """``text`` with every generated region rewritten."""
    seen: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise SystemExit(f"docs/benchmarks.md: unknown generated region {name!r}")
        seen.add(name)
        return match.group(1) + GENERATORS[name]() + match.group(4)

    out = REGION.sub(fill, text)
    if missing := set(GENERATORS) - seen:
        raise SystemExit(f"docs/benchmarks.md lacks the generated regions {sorted(missing)}")
    return out


def main(argv: list[str]) -> int:
    """Rewrite docs/benchmarks.md, or with ``--check`` report whether it is stale."""
    text = TARGET.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(
                "docs/benchmarks.md is stale against benchmarks/results/: "
                "run `uv run python scripts/gen_benchmarks.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
