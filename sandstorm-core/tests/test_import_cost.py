"""What a cold start imports: ``import sandstorm`` and a built-in provider stay light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sandstorm

HEAVY = ("pydantic", "asyncio", "pluggy", "stevedore", "httpx", "importlib.metadata")


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    # no settings from the environment: those make get_provider validate (pydantic) at once
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDSTORM_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_sandstorm_pulls_in_nothing_heavy() -> None:
    assert _imported_after("import sandstorm") == set()


def test_error_classes_need_no_heavy_import() -> None:
    assert (
        _imported_after("import sandstorm; sandstorm.SandstormError; sandstorm.Capability") == set()
    )


def test_builtin_provider_without_settings_imports_nothing_heavy() -> None:
    # built on first use: no entry points, plugins, pydantic, asyncio or engine at all
    assert _imported_after("import sandstorm; sandstorm.get_provider('local')") == set()


def test_settings_are_still_validated_by_get_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(sandstorm.ProviderConfigError, match="pids_limit"):
        sandstorm.get_provider("local", pids_limit=1)
    monkeypatch.setenv("SANDSTORM_LOCAL_PIDS_LIMIT", "1")
    with pytest.raises(sandstorm.ProviderConfigError, match="SANDSTORM_LOCAL_PIDS_LIMIT"):
        sandstorm.get_provider("local")


def test_every_local_setting_reads_a_prefixed_variable() -> None:
    # get_provider defers building only when no SANDSTORM_LOCAL_* variable is set
    from sandstorm.local import LocalConfig

    for field in LocalConfig.model_fields:
        names = LocalConfig.env_names(field)
        assert names, field
        assert all(n.startswith("SANDSTORM_LOCAL_") for n in names), (field, names)


def test_a_provider_built_on_first_use_is_the_one_get_provider_saw(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sandstorm.local import LocalConfig, LocalProvider

    for key in [k for k in os.environ if k.startswith("SANDSTORM_LOCAL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "then"))
    with sandstorm.get_provider("local") as provider:
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "later"))  # read at the call
        assert isinstance(provider.async_provider, LocalProvider)
        assert provider.async_provider is provider.async_provider
        assert provider.config == LocalConfig.load({"root": tmp_path / "then/sandstorm/local"})


def test_lazy_names_resolve_to_their_definitions() -> None:
    import sandstorm
    from sandstorm import _models, _sync

    assert sandstorm.RunResult is _models.RunResult
    assert sandstorm.SyncProvider is _sync.SyncProvider
    assert set(dir(sandstorm)) >= set(sandstorm.__all__)
    for name in sandstorm.__all__:
        assert getattr(sandstorm, name) is not None


def test_import_and_cli_parser_leave_the_mcp_sdk_alone() -> None:
    probe = (
        "import sandstorm, sandstorm._cli, sys, json\n"
        "sandstorm._cli._parser()\n"
        "print(json.dumps(sorted(m for m in ('mcp', 'mcp_types', 'uvicorn', 'starlette')"
        " if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []
