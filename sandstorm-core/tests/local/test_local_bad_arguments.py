"""The bad calls found in the field are refused at once, as InvalidArgument, on ``local``.

(The same calls on every provider: ``sandstorm_testkit.ArgumentContract``.)
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

import sandstorm
from sandstorm import InvalidArgument, InvalidPath, WorkspaceError

RUNS: list[dict[str, Any]] = [
    {"stdin": 123},
    {"timeout": math.nan},
    {"timeout": math.inf},
    {"timeout": "5"},
    {"memory": 10**9},
    {"cpu": 1000},
    {"code": None},
    {"code": 123},
    {"code": "print(1)\0print(2)"},
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("bad-args")
    with sandstorm.get_provider("local", root=str(root)) as local:
        yield local
        assert local.list_workspaces() == [], "a refused call left a workspace"


@pytest.mark.parametrize("kwargs", RUNS, ids=repr)
def test_bad_run_arguments_are_refused_at_once(provider: Any, kwargs: dict[str, Any]) -> None:
    code = kwargs.pop("code", "print(1)")
    started = time.monotonic()
    with pytest.raises(InvalidArgument):
        provider.run(code, **kwargs)
    assert time.monotonic() - started < 1


def test_bad_labels_and_paths(provider: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        provider.create_workspace(labels={"a": 1})
    with pytest.raises(InvalidArgument, match="reserved"):
        provider.create_workspace(labels={"sandstorm-process": "x"})
    workspace = provider.create_workspace()
    try:
        for path in ("", "../x", "/etc/passwd", "a\0b"):
            with pytest.raises(InvalidPath) as info:
                provider.write_file(workspace, path, "x")
            assert isinstance(info.value, WorkspaceError)  # as local raised before
            assert isinstance(info.value, ValueError)
    finally:
        provider.delete_workspace(workspace)
