"""What a cold start imports: ``import sandstorm`` and a built-in provider stay light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "asyncio", "pluggy", "stevedore", "httpx", "importlib.metadata")


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_sandstorm_pulls_in_nothing_heavy() -> None:
    assert _imported_after("import sandstorm") == set()


def test_error_classes_need_no_heavy_import() -> None:
    assert (
        _imported_after("import sandstorm; sandstorm.SandstormError; sandstorm.Capability") == set()
    )


def test_builtin_provider_loads_without_entry_points_or_plugins() -> None:
    loaded = _imported_after("import sandstorm; sandstorm.get_provider('local')")
    assert not loaded & {"pluggy", "stevedore", "httpx"}, loaded


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
