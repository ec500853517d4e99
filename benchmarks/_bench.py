"""Shared helpers of the benchmark scripts: statistics, tables, JSON results, the emulator.

Not a public module: the scripts in this directory import it by file (they put their own
directory on ``sys.path``, as ``python benchmarks/x.py`` does anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYTHON = sys.executable
"""The venv's interpreter as invoked (not resolved: resolving leaves the venv)."""


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Row:
    """One line of a table: a named measurement and its samples (seconds, or any unit)."""

    label: str
    samples: list[float]
    unit: str = "ms"
    scale: float = 1e3
    baseline: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 0.95)


@dataclass
class Check:
    """A figure against its target, e.g. ``ratio 0.42 <= 0.5``."""

    name: str
    value: float
    target: float
    op: str  # "<=" or ">="
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value <= self.target if self.op == "<=" else self.value >= self.target

    def text(self) -> str:
        verdict = "MET" if self.met else "MISSED"
        target = f"{self.op} {self.target:g}{self.unit}"
        return f"{self.name}: {self.value:.3g}{self.unit} (target {target}) {verdict}"


def table(title: str, rows: list[Row], baseline: Row | None = None) -> str:
    """A Markdown table: median, p95 and the median's ratio to ``baseline``."""
    base = baseline.median if baseline is not None else None
    width = max(len(r.label) for r in rows)
    unit = rows[0].unit
    lines = [
        f"### {title}",
        "",
        f"| {'measurement':<{width}} | {'n':>4} | {'median ' + unit:>10} | {'p95 ' + unit:>9} "
        f"| {'ratio':>7} |",
        f"|{'-' * (width + 2)}|{'-' * 6}|{'-' * 12}|{'-' * 11}|{'-' * 9}|",
    ]
    for r in rows:
        ratio = f"{r.median / base:6.2f}x" if base else "      -"
        lines.append(
            f"| {r.label:<{width}} | {len(r.samples):>4} | {r.median * r.scale:>10.2f} "
            f"| {r.p95 * r.scale:>9.2f} | {ratio:>7} |"
        )
    return "\n".join(lines)


def row_json(row: Row, baseline: Row | None) -> dict[str, Any]:
    """A row as JSON-ready data (values in the row's unit)."""
    return {
        "label": row.label,
        "unit": row.unit,
        "n": len(row.samples),
        "median": row.median * row.scale,
        "p95": row.p95 * row.scale,
        "min": min(row.samples) * row.scale,
        "max": max(row.samples) * row.scale,
        "ratio_to_baseline": (row.median / baseline.median) if baseline else None,
        "baseline": row.baseline,
        **row.extra,
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "loadavg": [round(x, 2) for x in load],
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (the latest run) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def quiet_sdk_warnings() -> None:
    """The official SDK warns about deprecated options on construction; not our concern."""
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", UserWarning)


# ---------------------------------------------------------------------- the emulator


@dataclass(frozen=True)
class Emulator:
    """An emulator served by its own process (so it never shares a GIL with a client)."""

    api_url: str
    api_key: str
    pid: int


@contextlib.contextmanager
def emulator_process(*extra: str, startup_timeout: float = 60.0) -> Iterator[Emulator]:
    """Start ``sandstorm-daytona emulator`` on a free loopback port; stop it on exit.

    Its output (uvicorn's access log) goes to a temporary file, so a full pipe can never
    stall the server. The emulator deletes every workspace it created when it stops.
    """
    key = f"bench_{secrets.token_hex(12)}"
    with tempfile.TemporaryFile("w+") as log:
        command = [PYTHON, "-m", "sandstorm_daytona._cli", "emulator", "--host", "127.0.0.1"]
        process = subprocess.Popen(
            [*command, "--api-key", key, *extra],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        try:
            url = None
            deadline = time.monotonic() + startup_timeout
            while url is None and time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                match = re.match(r"DAYTONA_API_URL=(\S+)", line)
                if match:
                    url = match.group(1)
            if url is None:
                process.kill()
                process.wait()
                log.seek(0)
                raise RuntimeError(f"the emulator did not start: {log.read()[-2000:]}")
            drain = threading.Thread(target=process.stdout.read, daemon=True)
            drain.start()
            yield Emulator(api_url=url, api_key=key, pid=process.pid)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()


def live_sandboxes(api_url: str, api_key: str) -> list[dict[str, Any]]:
    """Every sandbox the key's organisation still holds, read over the plain API."""
    import httpx

    found: list[dict[str, Any]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as client:
        cursor: str | None = None
        while True:
            params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            reply = client.get(f"{api_url}/sandbox", params=params)
            reply.raise_for_status()
            body = reply.json()
            items = body if isinstance(body, list) else body.get("items", [])
            found += [s for s in items if s.get("state") not in ("destroyed", "destroying")]
            cursor = None if isinstance(body, list) else body.get("nextCursor")
            if not cursor:
                return found


def sdk_client(api_url: str, api_key: str) -> Any:
    """The official synchronous ``daytona`` client for the emulator."""
    quiet_sdk_warnings()
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=api_key, api_url=api_url, target="us"))


def report_checks(checks: list[Check]) -> str:
    """The checks as lines of text."""
    return "\n".join(f"- {c.text()}" for c in checks)


def check_json(check: Check) -> dict[str, Any]:
    """A check as JSON-ready data."""
    return {
        "name": check.name,
        "value": check.value,
        "target": check.target,
        "op": check.op,
        "unit": check.unit,
        "met": check.met,
    }


def wait_idle(emu: Emulator, timeout: float = 30.0) -> int:
    """Wait until the emulator holds no sandbox (or ``timeout``); the number still held."""
    deadline = time.monotonic() + timeout
    while True:
        left = len(live_sandboxes(emu.api_url, emu.api_key))
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
