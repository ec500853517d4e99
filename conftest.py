"""Every code block of ``docs/*.md`` and the READMEs, executed by the test suite (Sybil).

- ```` ```python ```` blocks run as scripts, in order, one namespace per page. A line
  ending in ``# -> TEXT`` is a checked expectation: after ``print(...)`` the printed text
  must be ``TEXT`` (trailing newlines aside), the comment at the end of the line or alone on
  the next one; after an expression its ``repr()`` must be ``TEXT`` (``...`` matches
  anything, as in doctest). Blocks starting with ``>>>`` are doctests.
- ```` ```bash ```` / ```` ```console ```` blocks are syntax-checked with ``bash -n``
  (the commands of a console block are its ``$ `` lines); ``toml``, ``yaml`` and ``json``
  blocks must parse. ``text`` blocks (and plain fences) are prose.
- ``<!-- skip: next "why" -->`` (or plain ``<!-- skip: next -->``) above a block skips it,
  visibly in the source, and the run reports it skipped. Keep those rare.

Each page gets a private ``local`` state directory (``SANDSTORM_LOCAL_ROOT``); a Daytona
page (``docs/daytona*.md``, sandstorm-daytona's README) also gets an emulator on
loopback and ``DAYTONA_API_URL`` / ``DAYTONA_API_KEY`` pointing at it, so its blocks read
as they would for the real service. After a page, every provider its blocks left open
is closed and the page must have left no workspace (local) and no sandbox (emulator).
The run ends with a count of the blocks executed.

The run also loads ``tests/leakcheck.py``: it fails a run that leaves a process behind.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib.util
import io
import json
import shutil
import subprocess
import tempfile
import tokenize
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sybil import Example, Sybil
from sybil.evaluators.doctest import DocTestEvaluator
from sybil.evaluators.python import PythonEvaluator, pad
from sybil.integration.pytest import SybilItem
from sybil.parsers.abstract import AbstractCodeBlockParser, DocTestStringParser
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent
LEAKCHECK = ROOT / "tests" / "leakcheck.py"
ARROW = "# ->"
DOC_PATTERNS = ["docs/*.md", "README.md"]
DAYTONA_PAGES = ["docs/daytona*.md", "sandstorm-daytona/README.md"]


# ----------------------------------------------------------------- leaked processes


def pytest_configure(config: pytest.Config) -> None:
    spec = importlib.util.spec_from_file_location("sandstorm_leakcheck", LEAKCHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config.pluginmanager.register(module, "sandstorm-leakcheck")


# ----------------------------------------------------------------- python blocks


class ExpectationError(AssertionError):
    """A ``# -> TEXT`` expectation that did not hold."""


def _matches(expected: str, actual: str) -> bool:
    return expected == actual or (
        "..." in expected and doctest._ellipsis_match(expected, actual)  # type: ignore[attr-defined]
    )


def _check_print(line: int, expected: str, *args: Any, **kwargs: Any) -> None:
    buffer = io.StringIO()
    print(*args, **{**kwargs, "file": buffer})
    print(buffer.getvalue(), end="")  # the reader's script prints it too
    actual = buffer.getvalue().rstrip("\n")
    if not _matches(expected, actual):
        raise ExpectationError(f"line {line}: printed {actual!r}, the text says {expected!r}")


def _check_value(line: int, expected: str, value: Any) -> None:
    actual = repr(value)
    if not _matches(expected, actual):
        raise ExpectationError(f"line {line}: the value is {actual}, the text says {expected}")


def arrow_source(source: str, first_line: int = 1) -> str:
    """``source`` with each ``# -> TEXT`` line turned into a checked call (same line count)."""
    arrows: dict[int, tuple[int, str]] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.string.startswith(ARROW):
            arrows[token.start[0]] = (token.start[1], token.string[len(ARROW) :].strip())
    if not arrows:
        return source
    lines = source.splitlines(keepends=True)
    for number, (column, expected) in arrows.items():
        text = lines[number - 1]
        code = text[:column].rstrip()
        if not code.strip() and number > 1:  # `# -> TEXT` alone: about the line above
            lines[number - 1] = "\n"
            number -= 1  # noqa: PLW2901
            code = lines[number - 1].rstrip()
        stripped = code.lstrip()
        indent = code[: len(code) - len(stripped)]
        where = first_line + number - 1
        try:
            tree = ast.parse(stripped, mode="eval")
        except SyntaxError:
            raise ExpectationError(
                f"line {where}: `# ->` must follow a one-line expression or print() call, "
                f"not {stripped!r}"
            ) from None
        call = tree.body
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "print"
        ):
            arguments = stripped[len("print(") : -1]
            checked = f"__doc_print__({where}, {expected!r}, {arguments})"
        else:
            checked = f"__doc_value__({where}, {expected!r}, ({stripped}))"
        lines[number - 1] = f"{indent}{checked}\n"
    return "".join(lines)


def _ran(example: Example, kind: str) -> None:
    """Record that the block was really evaluated (a skipped block never gets here)."""
    example._doc_kind = kind  # type: ignore[attr-defined]


class ArrowEvaluator(PythonEvaluator):
    """Runs a python block as a script, checking its ``# -> TEXT`` expectations."""

    def __call__(self, example: Example) -> None:
        __tracebackhide__ = True
        _ran(example, "python")
        line = example.line + example.parsed.line_offset
        source = arrow_source(str(example.parsed), line + 1)
        namespace = example.namespace
        namespace["__file__"] = example.path  # as a script knows its own file
        namespace["__doc_print__"] = _check_print
        namespace["__doc_value__"] = _check_value
        code = compile(pad(source, line), example.path, "exec", flags=self.flags, dont_inherit=True)
        try:
            exec(code, namespace)
        finally:
            namespace.pop("__builtins__", None)
            namespace.pop("__doc_print__", None)
            namespace.pop("__doc_value__", None)


class CountedDocTest(DocTestEvaluator):
    """Sybil's doctest evaluator, counted."""

    def __call__(self, example: Example) -> str:
        _ran(example, "doctest")
        return super().__call__(example)


class PythonBlocks(PythonCodeBlockParser):
    """```` ```python ```` blocks: doctests when they start with ``>>>``, else scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.doctest_parser = DocTestStringParser(CountedDocTest(doctest.ELLIPSIS))
        self.codeblock_parser = CodeBlockParser("python", ArrowEvaluator())


# ----------------------------------------------------------------- other blocks


def _bash_syntax(source: str) -> None:
    done = subprocess.run(
        ["bash", "-n"], input=source, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode:
        raise AssertionError(f"bash -n: {done.stderr.strip()}")


def check_bash(example: Example) -> None:
    """A shell block must be valid bash."""
    _ran(example, "bash")
    _bash_syntax(str(example.parsed))


def check_console(example: Example) -> None:
    """A console block's ``$ `` commands must be valid bash."""
    _ran(example, "console")
    commands = [
        line.removeprefix("$ ")
        for line in str(example.parsed).splitlines()
        if line.startswith("$ ")
    ]
    if not commands:
        raise AssertionError("a console block needs at least one `$ ` command line")
    _bash_syntax("\n".join(commands) + "\n")


def check_data(loads: Any) -> Any:
    """An evaluator: the block must parse with ``loads``."""

    def evaluate(example: Example) -> None:
        _ran(example, "data")
        loads(str(example.parsed))

    return evaluate


def _block(language: str, evaluator: Any) -> AbstractCodeBlockParser:
    return CodeBlockParser(language, evaluator)


PARSERS = [
    SkipParser(),
    PythonBlocks(),
    _block("bash", check_bash),
    _block("console", check_console),
    _block("toml", check_data(tomllib.loads)),
    _block("yaml", check_data(yaml.safe_load)),
    _block("json", check_data(json.loads)),
]
"""What the harness runs; docs/test_docs.py checks no other fenced language is used."""


# ----------------------------------------------------------------- one page's world


def _open_providers(namespace: dict[str, Any]) -> list[Any]:
    import sandstorm

    return [value for value in namespace.values() if isinstance(value, sandstorm.SyncProvider)]


class Page:
    """Set-up and tear-down of one page: its state dir, env, and emulator."""

    def __init__(self, daytona: bool) -> None:
        self.daytona = daytona

    def setup(self, namespace: dict[str, Any]) -> None:
        """Give the page a private local state dir (and an emulator), through the env."""
        stack = contextlib.ExitStack()
        namespace["__page__"] = stack
        root = Path(tempfile.mkdtemp(prefix="sandstorm-docs-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("SANDSTORM_LOCAL_ROOT", str(root / "local"))
        patch.delenv("SANDSTORM_PROVIDER", raising=False)
        namespace["__page_root__"] = root / "local"
        if self.daytona:
            from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

            config = EmulatorConfig(api_keys={"docs-key": "docs-org"})
            emu = stack.enter_context(running_emulator(config))
            patch.setenv("DAYTONA_API_URL", emu.api_url)
            patch.setenv("DAYTONA_API_KEY", emu.api_key)
            namespace["__page_emulator__"] = emu

    def teardown(self, namespace: dict[str, Any]) -> None:
        """Close what the page left open; fail if it left a workspace or a sandbox."""
        stack: contextlib.ExitStack = namespace.pop("__page__")
        problems: list[str] = []
        try:
            for provider in _open_providers(namespace):
                provider.close()
            emu = namespace.get("__page_emulator__")
            if emu is not None:
                live = [
                    record.id
                    for record in list(emu.emulator.sandboxes.values())
                    if record.state not in ("destroyed", "destroying")
                ]
                if live:
                    problems.append(f"sandboxes left in the emulator: {live}")
            from sandstorm.local._workspaces import WorkspaceStore

            left = WorkspaceStore.leftovers(namespace["__page_root__"])
            if left:
                problems.append(f"local workspaces left: {left}")
        finally:
            stack.close()
        if problems:
            raise AssertionError("the page's blocks did not clean up: " + "; ".join(problems))


DOCS = Sybil(
    parsers=PARSERS,
    patterns=DOC_PATTERNS,
    excludes=DAYTONA_PAGES,
    setup=Page(daytona=False).setup,
    teardown=Page(daytona=False).teardown,
    name="docs",
)
DAYTONA_DOCS = Sybil(
    parsers=PARSERS,
    patterns=DAYTONA_PAGES,
    setup=Page(daytona=True).setup,
    teardown=Page(daytona=True).teardown,
    name="daytona-docs",
)

pytest_collect_file = (DOCS + DAYTONA_DOCS).pytest()


# ----------------------------------------------------------------- the count


_outcomes: Counter[tuple[str, str]] = Counter()
_COUNTED = "sandstorm doc block"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Count the doc blocks by kind and outcome: run (passed, failed) or skipped."""
    report = yield
    if isinstance(item, SybilItem) and report.skipped and isinstance(report.longrepr, tuple):
        # point the skip at the block, not at unittest's SkipTest machinery
        report.longrepr = (str(item.path), item.example.line, report.longrepr[2])
    if isinstance(item, SybilItem) and report.when == "call":
        kind = getattr(item.example, "_doc_kind", None)
        if kind is not None:
            report.user_properties.append((_COUNTED, (kind, report.outcome)))
        elif item.example.region.evaluator.__class__.__name__ != "Skipper":
            # a skipped block: never evaluated
            report.user_properties.append((_COUNTED, ("block", "skipped")))
    return report


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every doc block ``docs``: ``scripts/dev.py test`` runs them in a pytest run of
    their own, in one process, since a page's blocks share the page's namespace (and
    pytest-xdist's ``xdist_group`` does not hold under pytest 9)."""
    if isinstance(item, SybilItem):
        item.add_marker(pytest.mark.docs)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the counted blocks where the summary is printed (the xdist controller too:
    the workers' reports carry their ``user_properties`` to it)."""
    for name, value in report.user_properties:
        if name == _COUNTED:
            kind, outcome = value
            _outcomes[(str(kind), str(outcome))] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many doc blocks ran, by kind and outcome."""
    if not _outcomes:
        return
    kinds = sorted({kind for kind, outcome in _outcomes if outcome != "skipped"})
    parts = []
    for kind in kinds:
        ran = sum(n for (k, outcome), n in _outcomes.items() if k == kind and outcome != "skipped")
        parts.append(f"{kind} {ran}")
    executed = sum(n for (_, outcome), n in _outcomes.items() if outcome != "skipped")
    failed = sum(n for (_, outcome), n in _outcomes.items() if outcome == "failed")
    skipped = sum(n for (_, outcome), n in _outcomes.items() if outcome == "skipped")
    terminalreporter.write_line(
        f"doc blocks: {executed} executed, {failed} failed, {skipped} skipped "
        f"by `<!-- skip: next -->` ({', '.join(parts)})"
    )
