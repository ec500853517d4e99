"""Bad arguments: every public call refuses them the same way, at once, leaving nothing.

Hypothesis walks the public API with arguments of the wrong type or out of range (NaN,
infinities, negative sizes, NUL bytes, paths that leave the workspace, reserved or
malformed labels and names). Each call must raise :class:`sandstorm.InvalidArgument` --
the same class on every provider -- within seconds, and create nothing.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandstorm import AsyncProvider, Capability, InvalidArgument, Workspace

from ._base import AsyncContract
from ._hypothesis import call, profile_settings, run_in_thread
from ._leaks import LeakWatch
from ._settings import KitSettings

__all__ = ["ArgumentContract"]

_NUMBERS_BAD: st.SearchStrategy[Any] = st.sampled_from(
    [math.nan, math.inf, -math.inf, -1, 0, "5", True, [], None]
)
_SECONDS_BAD = st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, "5", True, []])
_SIZES_BAD = st.sampled_from([math.nan, math.inf, 0, -5, 1.5, "512", True])
_TEXT_BAD = st.sampled_from([None, 123, b"bytes", ["x"]]) | st.text(max_size=8).map(
    lambda t: t + "\0"
)
_ENV_BAD = st.sampled_from(
    [{"A": 1}, {1: "x"}, {"": "x"}, {"A=B": "x"}, {"1A": "x"}, {"A": "x\0"}, "A=1", ["A"]]
)
_STDIN_BAD = st.sampled_from([123, 1.5, ["x"], {}, object()])
_LABELS_BAD = st.sampled_from(
    [
        {"a": 1},
        {"": "x"},
        {"a b": "x"},
        {"sandstorm-process": "x"},
        "a",
        {"a": "x\0"},
        {"a": "x" * 300},
        {1: "x"},
    ]
)
_NAMES_BAD = st.sampled_from(["", "a/b", "x\0", 123, "-bad", "a" * 64, "white space"])
_PATHS_BAD = st.sampled_from(["", ".", "../x", "a/../../x", "/abs/x", "a\0b", 123, None, b"x"])
_LIST_PATHS_BAD = st.sampled_from(["", "../x", "/abs", "a\0b", 123, None])
_DATA_BAD = st.sampled_from([123, None, ["x"], 1.5])
_REFS_BAD = st.sampled_from([123, None, "", "x\0y", 1.5, ["id"]])
_CALLBACK_BAD = st.sampled_from([123, "print", b"x"])
_LANGUAGE_BAD = st.sampled_from([123, None, "cobol", ""])


def _run_args(provider: AsyncProvider) -> st.SearchStrategy[tuple[str, Any]]:
    over = _over_limits(provider)
    return st.one_of(
        st.tuples(st.just("timeout"), _SECONDS_BAD),
        st.tuples(st.just("cpu"), _NUMBERS_BAD.filter(lambda v: v is not None)),
        st.tuples(st.just("memory"), _SIZES_BAD),
        st.tuples(st.just("disk"), _SIZES_BAD),
        st.tuples(st.just("env"), _ENV_BAD),
        st.tuples(st.just("stdin"), _STDIN_BAD),
        st.tuples(st.just("language"), _LANGUAGE_BAD),
        st.tuples(st.just("code"), _TEXT_BAD),
        *([st.sampled_from(over)] if over else []),
    )


def _create_args(provider: AsyncProvider) -> st.SearchStrategy[tuple[str, Any]]:
    over = [(key, value) for key, value in _over_limits(provider) if key != "timeout"]
    return st.one_of(
        st.tuples(st.just("labels"), _LABELS_BAD),
        st.tuples(st.just("name"), _NAMES_BAD),
        st.tuples(st.just("env"), _ENV_BAD),
        st.tuples(st.just("persistent"), st.sampled_from(["yes", 1, None])),
        st.tuples(st.just("memory"), _SIZES_BAD),
        *([st.sampled_from(over)] if over else []),
    )


def _over_limits(provider: AsyncProvider) -> list[tuple[str, Any]]:
    """Values just past the maxima the provider declares (none declared: none tried)."""
    over: list[tuple[str, Any]] = []
    if provider.max_cpu is not None:
        over.append(("cpu", provider.max_cpu * 2 + 1))
    if provider.max_memory is not None:
        over.append(("memory", provider.max_memory * 2 + 1))
    if provider.max_disk is not None:
        over.append(("disk", provider.max_disk * 2 + 1))
    if provider.max_timeout is not None:
        over.append(("timeout", provider.max_timeout * 2 + 1))
    return over


_LIMIT = 30.0
"""Seconds a refusal may take at most (it should take microseconds: no I/O happens)."""


class ArgumentContract(AsyncContract):
    """Bad arguments raise ``InvalidArgument`` before the provider is reached."""

    @pytest.fixture
    def hypothesis_settings(self, sandstorm_settings: KitSettings) -> settings:
        """The hypothesis settings for this session's profile."""
        return profile_settings(sandstorm_settings.hypothesis_profile)

    async def test_run_refuses_bad_arguments(
        self, provider: AsyncProvider, hypothesis_settings: settings, sandstorm_run_id: str
    ) -> None:
        watch = await LeakWatch.start(provider, sandstorm_run_id)

        @hypothesis_settings
        @given(arg=_run_args(provider))
        def check(arg: tuple[str, Any]) -> None:
            key, value = arg
            kwargs: dict[str, Any] = {"code": "print(1)", key: value}
            code = kwargs.pop("code")
            _refused(provider.run, code, **kwargs)

        await run_in_thread(check)
        leaked = await watch.leaked()
        assert not leaked, f"a refused run left workspaces: {leaked}"

    async def test_create_workspace_refuses_bad_arguments(
        self, provider: AsyncProvider, hypothesis_settings: settings, sandstorm_run_id: str
    ) -> None:
        watch = await LeakWatch.start(provider, sandstorm_run_id)

        @hypothesis_settings
        @given(arg=_create_args(provider))
        def check(arg: tuple[str, Any]) -> None:
            key, value = arg
            kwargs = {"persistent": provider.supports(Capability.PERSISTENCE), key: value}
            _refused(provider.create_workspace, **kwargs)

        await run_in_thread(check)
        leaked = await watch.leaked()
        assert not leaked, f"a refused create left workspaces: {leaked}"

    async def test_workspace_calls_refuse_bad_arguments(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        files = provider.supports(Capability.FILES)

        @hypothesis_settings
        @given(
            ref=_REFS_BAD,
            callback=_CALLBACK_BAD,
            env=_ENV_BAD,
            path=_PATHS_BAD,
            listing=_LIST_PATHS_BAD,
            data=_DATA_BAD,
        )
        def check(ref: Any, callback: Any, env: Any, path: Any, listing: Any, data: Any) -> None:
            _refused(provider.get_workspace, ref)
            _refused(provider.delete_workspace, ref)
            _refused(provider.run_in_workspace, ref, "print(1)")
            _refused(provider.run_in_workspace, workspace, "print(1)", env=env)
            if provider.supports(Capability.STREAMING):
                _refused(provider.run_in_workspace, workspace, "print(1)", on_stdout=callback)
            if files:
                _refused(provider.write_file, workspace, path, "x")
                _refused(provider.write_file, workspace, "ok.txt", data)
                _refused(provider.read_file, workspace, path)
                _refused(provider.delete_file, workspace, path)
                _refused(provider.list_files, workspace, listing)

        await run_in_thread(check)
        result = await provider.run_in_workspace(workspace, "print('still fine')")
        assert result.stdout == "still fine\n"


def _refused(func: Any, /, *args: Any, **kwargs: Any) -> None:
    async def bounded() -> Any:
        return await asyncio.wait_for(func(*args, **kwargs), _LIMIT)

    try:
        call(bounded)
    except InvalidArgument:
        return
    except BaseException as exc:
        raise AssertionError(
            f"{func.__name__}(args={args!r}, kwargs={kwargs!r}) raised "
            f"{type(exc).__name__}: {exc} instead of InvalidArgument"
        ) from exc
    raise AssertionError(f"{func.__name__}(args={args!r}, kwargs={kwargs!r}) was accepted")
