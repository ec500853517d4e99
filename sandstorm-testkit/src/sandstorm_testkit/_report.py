"""``--sandstorm-report``: a capability matrix of the contract run, as JSON and Markdown."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sandstorm import Capability

from ._marks import capabilities_of, is_contract_item
from ._settings import KitSettings

__all__ = ["CapabilityReport", "OUTCOMES"]

OUTCOMES = ("passed", "failed", "skipped", "xfailed")
BASE = "core"
"""Row for contract tests that need no capability."""


class CapabilityReport:
    """Collects contract outcomes per capability and writes them at the end of the session."""

    def __init__(self, settings: KitSettings) -> None:
        assert settings.report is not None
        self.settings = settings
        self.path = settings.report
        self.capabilities: dict[str, list[str]] = {}
        self.outcomes: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if not is_contract_item(item):
                continue
            required, undeclared = capabilities_of(item)
            caps = [str(c) for c in [*required, *undeclared]] or [BASE]
            self.capabilities[item.nodeid] = sorted(set(caps))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        if nodeid not in self.capabilities:
            return
        previous = self.outcomes.get(nodeid)
        if previous == "failed":
            return
        if hasattr(report, "wasxfail") and report.skipped:
            outcome = "xfailed"
            self.reasons[nodeid] = str(report.wasxfail)
        elif report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
            if isinstance(report.longrepr, tuple):
                self.reasons[nodeid] = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        if previous in {"skipped", "xfailed"} and outcome != "failed":
            return
        self.outcomes[nodeid] = outcome

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data = self.build()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.markdown_path.write_text(render_markdown(data), encoding="utf-8")

    @property
    def markdown_path(self) -> Path:
        """Where the Markdown matrix goes: the JSON path with a ``.md`` suffix."""
        if self.path.suffix.lower() == ".md":
            return self.path.with_suffix(".md.md")
        return self.path.with_suffix(".md")

    def build(self) -> dict[str, Any]:
        """The report as plain data."""
        tested = self.settings.tested
        declared = set(tested.capabilities) if tested else set()
        rows: dict[str, Counter[str]] = {BASE: Counter()}
        rows.update({cap.value: Counter() for cap in Capability})
        tests: list[dict[str, Any]] = []
        for nodeid, caps in self.capabilities.items():
            outcome = self.outcomes.get(nodeid, "not run")
            for cap in caps:
                rows.setdefault(cap, Counter())[outcome] += 1
            tests.append(
                {
                    "nodeid": nodeid,
                    "capabilities": caps,
                    "outcome": outcome,
                    **({"reason": self.reasons[nodeid]} if nodeid in self.reasons else {}),
                }
            )
        totals: Counter[str] = Counter(str(t["outcome"]) for t in tests)
        return {
            "provider": tested.name if tested else self.settings.provider_name,
            "package": tested.package if tested else None,
            "version": tested.version if tested else None,
            "declared": sorted(declared),
            "languages": sorted(tested.languages) if tested else [],
            "totals": {key: totals.get(key, 0) for key in OUTCOMES},
            "matrix": {
                cap: {
                    "declared": None if cap == BASE else cap in declared,
                    **{key: counts.get(key, 0) for key in OUTCOMES},
                }
                for cap, counts in rows.items()
            },
            "tests": tests,
        }


def render_markdown(data: dict[str, Any]) -> str:
    """The capability matrix as a Markdown table."""
    lines = [
        f"# Sandstorm conformance: {data['provider']}",
        "",
        f"Declared capabilities: {', '.join(data['declared']) or 'none'}. "
        f"Languages: {', '.join(data['languages']) or 'unknown'}.",
        "",
        "| capability | declared | passed | failed | skipped | xfailed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for cap, row in data["matrix"].items():
        declared = "-" if row["declared"] is None else ("yes" if row["declared"] else "no")
        counts = " | ".join(str(row[key]) for key in OUTCOMES)
        lines.append(f"| {cap} | {declared} | {counts} |")
    totals = data["totals"]
    lines += ["", "Totals: " + ", ".join(f"{totals[k]} {k}" for k in OUTCOMES), ""]
    lines += ["## Tests", "", "| test | outcome | reason |", "|---|---|---|"]
    for test in data["tests"]:
        reason = str(test.get("reason", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{test['nodeid']}` | {test['outcome']} | {reason} |")
    lines.append("")
    return "\n".join(lines)
