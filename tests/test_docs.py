"""The doc-test harness itself (conftest.py): it sees every block, and its checks can fail."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^ {0,3}```(\S*)", re.MULTILINE)
EXECUTED = {"python", "bash", "console", "toml", "yaml", "json"}
PROSE = {"", "text"}


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    """The root conftest.py, loaded as a plain module."""
    spec = importlib.util.spec_from_file_location("docs_harness", ROOT / "conftest.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_harness", module)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return sorted(
        [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", *ROOT.glob("sandstorm-*/README.md")]
    )


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_block_has_a_language_the_harness_runs(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    languages = FENCE.findall(text)[::2]  # opening fences (closing ones have no language)
    unknown = sorted(set(languages) - EXECUTED - PROSE)
    assert unknown == [], f"{page.name}: fenced blocks the doc tests would not run: {unknown}"


def test_the_harness_collects_every_page(harness: ModuleType) -> None:
    from sybil import Sybil

    sybils: list[Sybil] = [harness.DOCS, harness.DAYTONA_DOCS]
    for page in pages():
        owners = [sybil for sybil in sybils if sybil.should_parse(page)]
        assert len(owners) == 1, f"{page}: parsed by {len(owners)} harnesses"


def test_arrow_checks_printed_text_and_values(harness: ModuleType) -> None:
    source = harness.arrow_source(
        "x = 6 * 7\nprint(x)   # -> 42\nx + 1   # -> 43\nprint('a', x)\n# -> a ...\n"
    )
    namespace = {"__doc_print__": harness._check_print, "__doc_value__": harness._check_value}
    exec(compile(source, "<doc>", "exec"), namespace)
    assert source.count("\n") == 5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("print(6 * 7)   # -> 41\n", "printed '42', the text says '41'"),
        ("'x'   # -> 'y'\n", "the value is 'x', the text says 'y'"),
        ("x = 1   # -> 1\n", "must follow a one-line expression or print() call"),
    ],
)
def test_a_false_expectation_fails(harness: ModuleType, source: str, message: str) -> None:
    namespace = {"__doc_print__": harness._check_print, "__doc_value__": harness._check_value}
    with pytest.raises(AssertionError, match=re.escape(message)):
        exec(compile(harness.arrow_source(source), "<doc>", "exec"), namespace)


def test_a_page_runs_end_to_end(harness: ModuleType, tmp_path: Path) -> None:
    """Doctests, scripts, skips and data blocks of one page, as the suite runs them."""
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "```python\n>>> 1 + 1\n2\n```\n\n"
        "```python\ntotal = 6 * 7\nprint(total)   # -> 42\n```\n\n"
        '<!-- skip: next "cannot run here" -->\n\n```python\nraise SystemExit(1)\n```\n\n'
        "```toml\n[a]\nb = 1\n```\n\n"
        "```python\nprint(total + 1)   # -> 42\n```\n",
        encoding="utf-8",
    )
    document = harness.DOCS.parse(page)
    outcomes = []
    for example in document:
        try:
            example.evaluate()
        except AssertionError as exc:
            outcomes.append(f"failed: {exc}")
        except Exception as exc:  # unittest.SkipTest from the skip directive
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append(getattr(example, "_doc_kind", "not run"))
    assert outcomes == [
        "doctest",
        "python",
        "not run",  # the skip directive itself
        "SkipTest",
        "data",
        "failed: line 23: printed '43', the text says '42'",  # the page's own line
    ]
