"""An installed provider as :func:`~sandstorm.installed_providers` lists it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProviderEntry"]


@dataclass(frozen=True)
class ProviderEntry:
    """An installed provider, found without importing it."""

    name: str
    target: str
    package: str | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
