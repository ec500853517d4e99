"""Shared fixtures for the kit's own tests.

The kit is tested the way adapters use it: pytester runs pytest in a subprocess, in a
scratch directory that holds an honest host-subprocess provider (``hostprovider.py``)
registered under the name ``host``. Subprocess runs (``runpytest_subprocess``) go
through ``reaper.py``, which kills whatever a broken provider left running.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import sandstorm._registry

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
HOST_PROVIDER = HERE / "hostprovider.py"
sys.path.insert(0, str(HERE))
import reaper  # noqa: E402


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester whose ``runpytest_subprocess`` runs under the reaper (nothing outlives it)."""
    pytester._getpytestargs = lambda: tuple(reaper.command(sys.executable, "-mpytest"))  # type: ignore[method-assign]
    return pytester


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the kit's long tests (marked ``slow`` one by one) first in the session.

    First the single minute-long runs (whole contract against local, the third-party venv),
    then the mutant lane's items (seconds each). Under pytest-xdist (``scripts/dev.py test``
    runs ``-n 3 --dist load``) the first items are dealt out to the workers in turn, so
    these overlap each other and the rest of the suite instead of queueing up at its end.
    In one process only the order changes.
    """

    def rank(item: pytest.Item) -> int:
        own = any(mark.name == "slow" for mark in item.own_markers)
        if not (own and HERE in Path(str(item.path)).parents):
            return 2
        return 1 if hasattr(item, "callspec") else 0  # parametrized: one of many short ones

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run of the slow mutant lane, its score: how many mutants the kit caught."""
    lane = "test_kit_mutants.py::test_every_mutant_fails_the_kit["
    outcomes: dict[str, bool] = {}
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            if lane in getattr(report, "nodeid", ""):
                outcomes[report.nodeid] = outcomes.get(report.nodeid, True) and key == "passed"
    if outcomes:
        caught, total = sum(outcomes.values()), len(outcomes)
        terminalreporter.write_line(
            f"kit mutation score: {caught}/{total} ({100 * caught // total} %)"
        )


@pytest.fixture(autouse=True)
def _few_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested runs use the few-examples profile, chosen without touching global state.

    (``--hypothesis-profile`` would load the profile process-wide, and nested runs may run
    in this process.)
    """
    monkeypatch.setenv("SANDSTORM_HYPOTHESIS_PROFILE", "sandstorm-live")


@pytest.fixture
def kit_dir(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> pytest.Pytester:
    """A pytester directory holding the host provider module, registered as ``host``.

    Nested runs may run in this process, so the in-process registry is swapped for a
    private one while the test runs.
    """
    monkeypatch.setattr(sandstorm._registry, "_registered", {})
    (pytester.path / "hostprovider.py").write_text(HOST_PROVIDER.read_text())
    monkeypatch.setenv("SSTK_HOST_ROOT", str(tmp_path_factory.mktemp("host-root")))
    pytester.makeconftest(
        """
        import sandstorm
        sandstorm.register_provider("host", "hostprovider:HostProvider")
        """
    )
    return pytester
