"""The error boundary of the public API: every failure leaves as a ``SandstormError``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._errors import SandstormError, translate

__all__ = ["boundary"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=_Named)
P = ParamSpec("P")
R = TypeVar("R")


def boundary(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Wrap a public async method: a failure that is no ``SandstormError`` is translated
    (see ``translate``), cancellation and coroutine shutdown pass through untouched."""

    @functools.wraps(method)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except (SandstormError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            mapped = translate(exc, self.name)
            if mapped is exc:
                raise
            raise mapped from exc

    return call
