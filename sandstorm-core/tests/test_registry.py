"""Finding providers by name."""

from __future__ import annotations

import pytest

import sandstorm
from sandstorm import ProviderLoadError, ProviderNotFound


def test_unknown_name_lists_installed_providers() -> None:
    with pytest.raises(ProviderNotFound) as info:
        sandstorm.get_provider("nope")
    assert isinstance(info.value, LookupError)
    assert "local" in info.value.installed
    assert "'nope'" in str(info.value)
    assert "local" in str(info.value)


def test_default_name_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDSTORM_PROVIDER", "nope-from-env")
    with pytest.raises(ProviderNotFound, match="nope-from-env"):
        sandstorm.get_async_provider()
    monkeypatch.delenv("SANDSTORM_PROVIDER")
    assert sandstorm.default_provider_name() == "local"


def test_local_is_registered_through_the_entry_point_group() -> None:
    entries = {entry.name: entry for entry in sandstorm.installed_providers()}
    assert entries["local"].package == "sandstorm-core"
    assert entries["local"].target == "sandstorm.local:LocalProvider"
    assert sandstorm.load_provider_class("local").name == "local"


def test_capabilities_are_readable_without_an_instance() -> None:
    cls = sandstorm.load_provider_class("local")
    info = cls.info()
    assert info.name == "local"
    assert (info.package, info.version) == ("sandstorm-core", sandstorm.__version__)
    assert "python" in info.languages
    assert all(isinstance(cap, sandstorm.Capability) for cap in cls.capabilities)


def test_in_process_registration_and_broken_targets() -> None:
    sandstorm.register_provider("broken-import", "sandstorm_no_such_module:Provider")
    with pytest.raises(ProviderLoadError, match="sandstorm_no_such_module"):
        sandstorm.get_provider("broken-import")
    sandstorm.register_provider("not-a-provider", "os.path:join")
    with pytest.raises(ProviderLoadError, match="not an AsyncProvider subclass"):
        sandstorm.get_provider("not-a-provider")


def test_providers_command_gives_a_one_line_load_failure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from sandstorm import _cli, _registry

    monkeypatch.setattr(_registry, "_registered", {})
    sandstorm.register_provider("broken-one-line", "sandstorm_no_such_module_2:Provider")
    assert _cli._providers(argparse.Namespace(json=False)) == 0
    line = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("broken-one-line")
    )
    assert "cannot load: " in line
    assert "Traceback" not in line
    assert len(line) < 250
