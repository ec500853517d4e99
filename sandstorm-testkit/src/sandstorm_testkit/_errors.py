"""Error mapping: unknown ids, bad language, bad config and bad arguments raise typed errors."""

from __future__ import annotations

import pytest

from sandstorm import (
    AsyncProvider,
    ProviderConfigError,
    SandstormError,
    WorkspaceNotFound,
)

from ._base import AsyncContract
from ._helpers import show

__all__ = ["ErrorContract"]

MISSING = "sstk-no-such-workspace-0000"


class ErrorContract(AsyncContract):
    """Failures surface as the documented :class:`sandstorm.SandstormError` subclasses."""

    async def test_unknown_workspace(self, provider: AsyncProvider) -> None:
        for call in (
            lambda: provider.get_workspace(MISSING),
            lambda: provider.run_in_workspace(MISSING, "print(1)"),
            lambda: provider.run("print(1)", workspace_id=MISSING),
            lambda: provider.delete_workspace(MISSING),
        ):
            with pytest.raises(WorkspaceNotFound) as caught:
                await call()
            assert isinstance(caught.value, SandstormError | LookupError)
            assert MISSING in str(caught.value)
            assert caught.value.workspace_id == MISSING, (
                "WorkspaceNotFound(workspace_id, provider): the first argument is the bare id, "
                f"got {caught.value.workspace_id!r}"
            )

    async def test_unknown_language(self, provider: AsyncProvider) -> None:
        with pytest.raises(ProviderConfigError, match="cobol"):
            await provider.run("DISPLAY 'HI'.", language="cobol")

    @pytest.mark.parametrize("timeout", [0, -1])
    async def test_bad_timeout(self, provider: AsyncProvider, timeout: float) -> None:
        with pytest.raises(ProviderConfigError):
            await provider.run("print(1)", timeout=timeout)

    async def test_bad_env(self, provider: AsyncProvider) -> None:
        with pytest.raises(ProviderConfigError):
            await provider.run("print(1)", env={"A=B": "x"})
        with pytest.raises(ProviderConfigError):
            await provider.run("print(1)", env={"NUL": "a\0b"})

    async def test_bad_config(self, provider: AsyncProvider) -> None:
        with pytest.raises(ProviderConfigError, match="sstk_not_a_field"):
            type(provider).from_config(sstk_not_a_field=1)
        with pytest.raises(ProviderConfigError, match="default_timeout"):
            type(provider).from_config(default_timeout=-5)

    async def test_syntax_error_is_a_result(self, provider: AsyncProvider) -> None:
        result = await provider.run("def broken(:\n")
        assert result.exit_code != 0, show(result)
        assert "SyntaxError" in result.stderr, show(result)
