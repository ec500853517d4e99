"""LocalConfig: keyword arguments first, then SANDSTORM_LOCAL_* variables; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandstorm
from sandstorm import ProviderConfigError
from sandstorm.local import LocalConfig, default_root


def test_defaults() -> None:
    config = LocalConfig.load({}, environ={})
    assert config.output_cap == 4 << 20
    assert config.root == default_root()
    assert config.require == ()
    assert config.uid_range == (1_000_000, 1_999_999)
    assert config.workspace_path == "/workspace"
    assert config.allow_weaker == ()


def test_default_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_root() == tmp_path / "sandstorm" / "local"
    monkeypatch.setenv("XDG_STATE_HOME", "")  # set but empty: the home directory's
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home/.local/state/sandstorm/local"


def test_environment_fills_gaps() -> None:
    environ = {
        "SANDSTORM_LOCAL_OUTPUT_CAP": "2048",
        "SANDSTORM_LOCAL_REQUIRE": "netns, pidns",
        "SANDSTORM_LOCAL_TEMPLATES": '{"t": {"setup": ["true"]}}',
        "SANDSTORM_LOCAL_ROOT": "/srv/state",
    }
    config = LocalConfig.load({"output_cap": 4096}, environ=environ)
    assert config.output_cap == 4096  # keyword beats environment
    assert config.require == ("netns", "pidns")
    assert config.templates == {"t": {"setup": ["true"]}}
    assert config.root == Path("/srv/state")


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ProviderConfigError, match="require"):
        LocalConfig.load({"require": ["no-such-primitive"]}, environ={})
    with pytest.raises(ProviderConfigError, match="output_cap"):
        LocalConfig.load({"output_cap": 5}, environ={})
    with pytest.raises(ProviderConfigError, match="templates"):
        LocalConfig.load({}, environ={"SANDSTORM_LOCAL_TEMPLATES": "{not json"})


def test_isolation_fields_from_the_environment() -> None:
    environ = {
        "SANDSTORM_LOCAL_ALLOW_WEAKER": "uid_separation, landlock",
        "SANDSTORM_LOCAL_UID_RANGE": "200000,299999",
        "SANDSTORM_LOCAL_WORKSPACE_PATH": "/home/daytona",
        "SANDSTORM_LOCAL_READ_ONLY_BINDS": "/opt/venv, /srv/data/",
    }
    config = LocalConfig.load({}, environ=environ)
    assert config.allow_weaker == ("uid_separation", "landlock")
    assert config.uid_range == (200000, 299999)
    assert config.workspace_path == "/home/daytona"
    assert config.read_only_binds == ("/opt/venv", "/srv/data")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspace_path", "relative"),
        ("workspace_path", "/"),
        ("workspace_path", "/usr/work"),
        ("workspace_path", "/tmp"),
        ("workspace_path", "/a/../b"),
        ("uid_range", (10, 20)),
        ("uid_range", (2000, 1000)),
        ("read_only_binds", ["relative/path"]),
        ("read_only_binds", ["/"]),
        ("allow_weaker", ["no-such-layer"]),
    ],
)
def test_bad_isolation_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ProviderConfigError, match=field):
        LocalConfig.load({field: value}, environ={})


def test_effective_capabilities_are_the_declared_ones_where_the_host_has_everything(
    local: sandstorm.SyncProvider,
) -> None:
    effective = local.effective_capabilities()
    assert effective <= local.capabilities
    report = local.extras.isolation_report()
    has_cgroups = any(name.startswith("cgroup_") for name in report.active)
    assert (sandstorm.Capability.METRICS in effective) == has_cgroups
