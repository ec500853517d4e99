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
