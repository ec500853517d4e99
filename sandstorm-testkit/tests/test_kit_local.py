"""Acceptance: the whole contract passes against the built-in ``local`` provider.

Every skip must be explained by a capability (or language) ``local`` does not declare.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sandstorm.local import LocalProvider

TEMPLATES = {"sstk-basic": {"setup": ["mkdir -p out"], "description": "kit test template"}}


@pytest.mark.slow
def test_whole_contract_against_local(pytester: pytest.Pytester) -> None:
    config = pytester.path / "local.json"
    settings = {"root": str(pytester.path / "local-state"), "templates": TEMPLATES}
    try:  # the interpreter contract's chart test needs matplotlib in the sandbox
        import matplotlib
    except ImportError:
        pass
    else:
        settings["python_path"] = [str(Path(matplotlib.__file__).parent.parent)]
    config.write_text(json.dumps(settings))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--hypothesis-profile=sandstorm-live",
        "--sandstorm-provider=local",
        f"--sandstorm-config={config}",
        "--sandstorm-report=report.json",
    )
    data = json.loads((pytester.path / "report.json").read_text())
    failed = [t["nodeid"] for t in data["tests"] if t["outcome"] == "failed"]
    assert result.ret == 0, f"failed: {failed}\n" + "\n".join(result.outlines[-40:])
    assert data["provider"] == "local"
    assert data["totals"]["failed"] == 0
    declared = {str(cap) for cap in LocalProvider.capabilities}
    languages = set(LocalProvider.languages)
    assert set(data["declared"]) == declared
    for test in data["tests"]:
        if test["outcome"] != "skipped":
            continue
        reason = test["reason"]
        match = re.fullmatch(r"local (does not declare|declares) (language )?(\w+)(;.*)?", reason)
        assert match, f"{test['nodeid']}: unexplained skip {reason!r}"
        have = languages if match[2] else declared
        assert (match[3] in have) == (match[1] == "declares"), reason
    # each declared capability is exercised, each undeclared one is checked for refusal
    for cap, row in data["matrix"].items():
        if row["declared"] is True:
            assert row["passed"] >= 1, (cap, row)
        if row["declared"] is False:
            assert row["passed"] == 1, (cap, row)
