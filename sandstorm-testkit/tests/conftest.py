"""Shared fixtures for the kit's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
HOST_PROVIDER = HERE / "hostprovider.py"


@pytest.fixture
def kit_dir(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> pytest.Pytester:
    """A pytester directory holding the host provider module, registered as ``host``."""
    (pytester.path / "hostprovider.py").write_text(HOST_PROVIDER.read_text())
    monkeypatch.setenv("SSTK_HOST_ROOT", str(tmp_path_factory.mktemp("host-root")))
    pytester.makeconftest(
        """
        import sandstorm
        sandstorm.register_provider("host", "hostprovider:HostProvider")
        """
    )
    return pytester
