"""Daytona provider for Sandstorm.

``sandstorm.get_provider("daytona", api_key=...)`` (or ``DAYTONA_API_KEY``) gives the
provider; :class:`DaytonaProvider` and :class:`DaytonaConfig` are importable here. Names
are imported lazily so that ``import sandstorm_daytona`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import DaytonaConfig, Pricing, RetryPolicy
    from ._provider import (
        LABEL_EXPIRES,
        LABEL_MANAGED,
        LABEL_OWNER,
        DaytonaMetrics,
        DaytonaProvider,
    )
    from ._wire import TelemetrySeries

__all__ = [
    "LABEL_EXPIRES",
    "LABEL_MANAGED",
    "LABEL_OWNER",
    "DaytonaConfig",
    "DaytonaMetrics",
    "DaytonaProvider",
    "Pricing",
    "RetryPolicy",
    "TelemetrySeries",
]

_LAZY = {
    "DaytonaConfig": "._config",
    "Pricing": "._config",
    "RetryPolicy": "._config",
    "DaytonaProvider": "._provider",
    "DaytonaMetrics": "._provider",
    "LABEL_EXPIRES": "._provider",
    "LABEL_MANAGED": "._provider",
    "LABEL_OWNER": "._provider",
    "TelemetrySeries": "._wire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandstorm_daytona' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
