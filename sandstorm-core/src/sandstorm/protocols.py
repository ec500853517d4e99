"""Optional provider features that core tools use when a provider has them.

A provider implements one of these by having the method; nothing to inherit or register.
``isinstance(provider, ReportsIsolation)`` tells whether it does (the ``sandstorm doctor``
command asks it that way).

>>> import sandstorm
>>> from sandstorm.protocols import ReportsIsolation
>>> with sandstorm.get_provider("local") as provider:
...     isinstance(provider.async_provider, ReportsIsolation)
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["IsolationSummary", "ReportsIsolation"]


@runtime_checkable
class IsolationSummary(Protocol):
    """A report on how a provider isolates code, with a human-readable summary."""

    def summary(self) -> str:
        """Several lines of text: what is active, what is missing, how limits work."""
        ...


@runtime_checkable
class ReportsIsolation(Protocol):
    """A provider that can report which isolation layers it uses on this host."""

    def isolation_report(self) -> IsolationSummary:
        """Probe (if needed) and report the isolation in force; never runs user code."""
        ...
