"""What the command line asked the kit to do: which provider, its config, live or not."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sandstorm
from sandstorm import AsyncProvider

__all__ = ["KitSettings", "load_provider_config", "settings_from_config"]

SETTINGS_KEY: pytest.StashKey[KitSettings] = pytest.StashKey()


@dataclass
class KitSettings:
    """The kit's options, resolved once per pytest session."""

    provider_name: str | None = None
    provider_class: type[AsyncProvider] | None = None
    provider_config: Mapping[str, Any] = field(default_factory=dict)
    live: bool = False
    report: Path | None = None
    hypothesis_profile: str = "sandstorm-offline"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    expected_failures: dict[str, str] = field(default_factory=dict)
    """Deviations of the plain command: test name -> reason (strict expected failures)."""
    test_timeout: float = 300.0
    """Seconds each phase (setup, call, teardown) of a contract test may take."""
    tested: sandstorm.ProviderInfo | None = None
    """The declaration of the provider the contract ran against (for the report)."""

    def provider_factory(self) -> Callable[[], AsyncProvider]:
        """A callable building a new provider from ``--sandstorm-provider``/``--sandstorm-config``.

        Fails the calling test with instructions when no provider was named.
        """
        cls = self.provider_class
        if cls is None:
            pytest.fail(
                "no provider to test: run pytest with --sandstorm-provider=NAME, or override "
                "the `provider_factory` fixture in your contract subclass (or `provider` for "
                "the async contracts and `sync_provider` for SyncFacadeContract)",
                pytrace=False,
            )
        config = dict(self.provider_config)
        return lambda: cls.from_config(**config)


def load_provider_config(path: Path) -> dict[str, Any]:
    """Provider keyword arguments from a JSON or TOML file (a single object/table).

    Raises :class:`pytest.UsageError` saying what is wrong with the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise pytest.UsageError(f"--sandstorm-config: cannot read {path}: {exc}") from None
    try:
        data: object
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise pytest.UsageError(
                f"--sandstorm-config: {path} must end in .json or .toml (provider keyword "
                "arguments as one object/table)"
            )
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"--sandstorm-config: {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise pytest.UsageError(
            f"--sandstorm-config: {path} must hold one object/table of provider keyword "
            f"arguments, not a {type(data).__name__}"
        )
    return data


def settings_from_config(config: pytest.Config) -> KitSettings:
    """Resolve the kit's options; a bad provider name or config is a usage error."""
    name: str | None = config.getoption("sandstorm_provider")
    config_path: str | None = config.getoption("sandstorm_config")
    report: str | None = config.getoption("sandstorm_report")
    live = bool(config.getoption("sandstorm_live"))
    test_timeout = float(config.getoption("sandstorm_timeout"))
    if not test_timeout > 0:
        raise pytest.UsageError("--sandstorm-timeout must be a positive number of seconds")
    settings = KitSettings(
        provider_name=name,
        live=live,
        test_timeout=test_timeout,
        report=Path(report) if report else None,
        hypothesis_profile=_hypothesis_profile(config, live),
    )
    settings.expected_failures = _expected_failures(config)
    if config_path and not name:
        raise pytest.UsageError("--sandstorm-config needs --sandstorm-provider=NAME")
    if name:
        kwargs = load_provider_config(Path(config_path)) if config_path else {}
        try:
            cls = sandstorm.load_provider_class(name)
            cls.config_model.load(kwargs)
        except sandstorm.ProviderError as exc:
            raise pytest.UsageError(f"--sandstorm-provider={name}: {exc}") from None
        settings.provider_class = cls
        settings.provider_config = kwargs
    return settings


def _hypothesis_profile(config: pytest.Config, live: bool) -> str:
    explicit: str | None = None
    try:
        explicit = config.getoption("hypothesis_profile")
    except ValueError:  # hypothesis' pytest plugin is not loaded
        explicit = None
    if explicit:
        return explicit
    from_env = os.environ.get("SANDSTORM_HYPOTHESIS_PROFILE")
    if from_env:
        return from_env
    return "sandstorm-live" if live else "sandstorm-offline"


def _expected_failures(config: pytest.Config) -> dict[str, str]:
    """``--sandstorm-expected-failures=FILE``, else ``[tool.sandstorm-testkit]`` of pyproject."""
    option: str | None = config.getoption("sandstorm_expected_failures")
    if option:
        path = Path(option)
        try:
            text = path.read_text(encoding="utf-8")
            data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise pytest.UsageError(f"--sandstorm-expected-failures: {path}: {exc}") from None
        where = str(path)
        if isinstance(data, dict) and "expected-failures" in data:
            data = data["expected-failures"]
    else:
        pyproject = Path(config.rootpath) / "pyproject.toml"
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        data = table.get("tool", {}).get("sandstorm-testkit", {}).get("expected-failures", {})
        where = f"{pyproject} [tool.sandstorm-testkit]"
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()
    ):
        raise pytest.UsageError(
            f"expected failures in {where} must map test names to non-empty reasons "
            '(e.g. test_workspaces_are_isolated = "no mount namespace")'
        )
    return dict(data)
