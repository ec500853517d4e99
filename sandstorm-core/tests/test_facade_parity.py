"""The blocking facade and the sandbox handles say exactly what the async API says.

Every public method of :class:`AsyncProvider` has a blocking twin on
:class:`SyncProvider` with the same parameters (names, kinds, defaults, annotations) and
the matching return type; the same holds between :class:`AsyncSandbox` and
:class:`Sandbox`. A method added or changed on one side only fails here.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sandstorm
from sandstorm import AsyncProvider, AsyncSandbox, Sandbox, SyncProvider

#: async return annotation -> the blocking one (anything else is the same type)
BLOCKING_RETURNS = {
    "OutputStream": "SyncOutputStream",
    "AsyncSandbox": "Sandbox",
    "AsyncProcessHandle": "ProcessHandle",
    "list[AsyncProcessHandle]": "list[ProcessHandle]",
}
#: async-only or sync-only members, with the reason they have no twin
ASYNC_ONLY = {
    "aclose": "the blocking twin is close()",
    "from_config": "a constructor: get_provider() builds the facade",
    "supports": "a class-level query; the facade exposes capabilities and info()",
    "require": "an adapter-side check",
}
SYNC_ONLY = {
    "close": "the twin of aclose()",
}


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and not inspect.isclass(member)
    }


def _params(func: object) -> list[tuple[str, object, object, object]]:
    signature = inspect.signature(func)  # type: ignore[arg-type]
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in signature.parameters.values()
        if p.name != "self"
    ]


def _return(func: object) -> str:
    annotation = inspect.signature(func).return_annotation  # type: ignore[arg-type]
    return str(annotation)


@pytest.mark.parametrize(
    ("async_cls", "sync_cls", "async_only", "sync_only"),
    [
        (AsyncProvider, SyncProvider, ASYNC_ONLY, SYNC_ONLY),
        (AsyncSandbox, Sandbox, {}, {}),
    ],
)
def test_every_method_has_a_twin_with_the_same_signature(
    async_cls: type, sync_cls: type, async_only: dict[str, str], sync_only: dict[str, str]
) -> None:
    async_api = _public(async_cls)
    sync_api = _public(sync_cls)
    assert set(async_api) - set(sync_api) == set(async_only)
    assert set(sync_api) - set(async_api) == set(sync_only)
    for name in sorted(set(async_api) & set(sync_api)):
        assert _params(sync_api[name]) == _params(async_api[name]), name
        expected = BLOCKING_RETURNS.get(_return(async_api[name]), _return(async_api[name]))
        assert _return(sync_api[name]) == expected, name


def test_no_public_method_takes_arbitrary_keywords() -> None:
    for cls in (AsyncProvider, SyncProvider, AsyncSandbox, Sandbox):
        for name, member in _public(cls).items():
            if name == "from_config":  # the provider's config fields, validated by its model
                continue
            kinds = {p.kind for p in inspect.signature(member).parameters.values()}
            assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{cls.__name__}.{name}"


def test_mypy_rejects_a_misspelled_keyword(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            import sandstorm

            provider = sandstorm.get_provider("local")
            provider.run("x", timout=5)
            provider.run("x", timeout=5)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, done.stdout
    assert 'Unexpected keyword argument "timout"' in errors[0]
    assert "snippet.py:5:" in errors[0]


def test_the_sync_facade_is_public() -> None:
    assert sandstorm.SyncProvider is SyncProvider


class _Memory(AsyncProvider):
    """Just enough of a provider to build; its one extra is a coroutine method."""

    name = "memory-extras"

    async def _create_workspace(self, spec: sandstorm.WorkspaceSpec) -> sandstorm.Workspace:
        raise NotImplementedError

    async def _get_workspace(self, workspace_id: str) -> sandstorm.Workspace:
        raise sandstorm.WorkspaceNotFound(workspace_id, self.name)

    async def _list_workspaces(self) -> list[sandstorm.Workspace]:
        return []

    async def _delete_workspace(self, workspace_id: str) -> None:
        raise sandstorm.WorkspaceNotFound(workspace_id, self.name)

    async def _execute(
        self, workspace: sandstorm.Workspace, request: sandstorm.ExecRequest
    ) -> sandstorm.RunResult:
        raise NotImplementedError

    async def greet(self, who: str, *, loud: bool = False) -> str:
        """A provider-specific extra."""
        return f"HI {who}" if loud else f"hi {who}"

    region = "eu"


def test_extras_reach_a_providers_own_methods_blocking() -> None:
    with SyncProvider(_Memory()) as provider:
        assert provider.extras.greet("x") == "hi x"
        assert provider.extras.greet("x", loud=True) == "HI x"
        assert provider.extras.region == "eu"
        assert "greet" in dir(provider.extras)
        with pytest.raises(AttributeError):
            provider.extras._execute  # noqa: B018
        assert provider.config is provider.async_provider.config


def test_a_provider_missing_a_primitive_cannot_be_built() -> None:
    class Half(AsyncProvider):
        name = "half"

        async def _create_workspace(self, spec: sandstorm.WorkspaceSpec) -> sandstorm.Workspace:
            raise NotImplementedError

    with pytest.raises(TypeError) as caught:
        Half()  # type: ignore[abstract]
    message = str(caught.value)
    for primitive in ("_execute", "_get_workspace", "_list_workspaces", "_delete_workspace"):
        assert primitive in message
    assert "_create_workspace" not in message
