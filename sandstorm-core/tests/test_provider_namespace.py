"""The base class keeps its machinery under a reserved prefix an adapter cannot collide with."""

from __future__ import annotations

import pytest

import sandstorm
from sandstorm import Workspace
from sandstorm._provider import RESERVED_PREFIX


def test_every_base_helper_is_reserved_or_a_primitive() -> None:
    primitives = {
        name
        for name in vars(sandstorm.AsyncProvider)
        if name.startswith("_") and not name.startswith("__")
    }
    helpers = {name for name in primitives if not name.startswith(RESERVED_PREFIX)}
    # What is left outside the reserved prefix is what an adapter writes (or may override).
    assert "_resolve" not in helpers
    assert "_request" not in helpers
    assert "_spec" not in helpers
    assert "_audit" not in helpers
    assert "_own" not in helpers
    assert {"_execute", "_create_workspace", "_read_file", "_restore"} <= helpers


def test_an_adapters_own_underscore_helper_does_not_replace_the_base() -> None:
    class Adapter(sandstorm.AsyncProvider):
        name = "ns-own-helper"

        def _resolve(self, workspace: Workspace, path: str) -> str:  # the adapter's own
            return f"{workspace.id}/{path}"

    assert Adapter._resolve is not sandstorm.AsyncProvider._sandstorm_resolve


def test_an_adapter_overriding_a_reserved_name_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="_sandstorm_resolve") as info:

        class Adapter(sandstorm.AsyncProvider):
            name = "ns-clash"

            async def _sandstorm_resolve(self, workspace: object) -> None:
                return None

    assert "Adapter" in str(info.value)
    assert "reserved" in str(info.value)
