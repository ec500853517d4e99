"""Capability requirements and documented deviations, applied to contract tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import pytest

from sandstorm import Capability

__all__ = [
    "ContractRoot",
    "apply_expected_failures",
    "capabilities_of",
    "check_requirements",
    "is_contract_item",
    "needs_effective",
]


class ContractRoot:
    """Base of every contract class.

    ``expected_failures`` maps a test name (``"test_x"`` for every parametrization, or
    ``"test_x[param]"`` for one) to the reason the provider deviates; each entry turns
    that test into a strict expected failure, so a fixed quirk fails and asks for the
    entry to be removed.
    """

    expected_failures: ClassVar[Mapping[str, str]] = {}


def is_contract_item(item: pytest.Item) -> bool:
    """True for a test collected from a contract class (or a subclass of one)."""
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, ContractRoot)


def _capability(value: object) -> Capability:
    try:
        return Capability(str(value))
    except ValueError:
        known = ", ".join(c.value for c in Capability)
        raise pytest.UsageError(
            f"unknown capability {value!r} in a marker (known: {known})"
        ) from None


def _marked(item: pytest.Item, name: str) -> list[Capability]:
    return [_capability(arg) for mark in item.iter_markers(name) for arg in mark.args]


def capabilities_of(item: pytest.Item) -> tuple[list[Capability], list[Capability]]:
    """The capabilities ``item`` requires, and those it requires to be undeclared."""
    return _marked(item, "requires"), _marked(item, "undeclared")


def needs_effective(item: pytest.Item, declared: Iterable[Capability]) -> bool:
    """True when skipping ``item`` depends on more than the declaration: it names a
    declared capability, which this provider instance may still lack on this host."""
    have = set(declared)
    required, undeclared = capabilities_of(item)
    return any(capability in have for capability in (*required, *undeclared))


def check_requirements(
    item: pytest.Item,
    name: str,
    declared: Iterable[Capability],
    effective: Iterable[Capability] | None = None,
) -> None:
    """Skip ``item`` (with the reason) when the provider does not fit it.

    ``declared`` is what the provider class can do anywhere; ``effective`` (from
    ``effective_capabilities()``, ``None`` for the declaration alone) is what this
    instance can do here. A test requiring a declared capability the instance lacks is
    skipped; a test that checks an undeclared capability is refused also checks a
    declared one the instance lacks, as it must be refused alike.
    """
    have = set(declared)
    usable = have if effective is None else have & set(effective)
    required, undeclared = capabilities_of(item)
    for capability in required:
        if capability not in have:
            pytest.skip(f"{name} does not declare {capability}")
        if capability not in usable:
            pytest.skip(
                f"{name} declares {capability}; not among its effective_capabilities() here"
            )
    for capability in undeclared:
        if capability in usable:
            pytest.skip(f"{name} declares {capability}; the tests that require it check it")


def _test_names(cls: type) -> set[str]:
    return {attr for attr in dir(cls) if attr.startswith("test")}


def apply_expected_failures(
    items: Iterable[pytest.Item], extra: Mapping[str, str] | None = None
) -> None:
    """Turn each class's ``expected_failures`` entries into strict xfail marks.

    ``extra`` (from ``--sandstorm-expected-failures`` or ``[tool.sandstorm-testkit]``)
    applies to every contract class, keyed ``"test_x"``, ``"test_x[param]"`` or
    ``"TestClass::test_x"``. An entry naming no test is a usage error (a typo would
    silently do nothing).
    """
    extra = dict(extra or {})
    checked: set[type] = set()
    used: set[str] = set()
    contract_items = [item for item in items if is_contract_item(item)]
    for item in contract_items:
        cls: type[ContractRoot] = item.cls  # type: ignore[attr-defined]
        entries = cls.expected_failures
        if cls not in checked:
            checked.add(cls)
            names = _test_names(cls)
            unknown = sorted(key for key in entries if key.split("[", 1)[0] not in names)
            if unknown:
                raise pytest.UsageError(
                    f"{cls.__qualname__}.expected_failures names no test of the class: "
                    f"{', '.join(unknown)}"
                )
        original = getattr(item, "originalname", item.name)
        reason = entries.get(item.name, entries.get(original))
        for key in (
            f"{cls.__name__}::{item.name}",
            f"{cls.__name__}::{original}",
            item.name,
            original,
        ):
            if reason is None and key in extra:
                reason = extra[key]
                used.add(key)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"expected failure: {reason}"))
    if contract_items:
        known = {
            name
            for cls in checked
            for test in _test_names(cls)
            for name in (test, f"{cls.__name__}::{test}")
        }
        unknown = sorted(
            key for key in extra if key not in used and key.split("[", 1)[0] not in known
        )
        if unknown:
            raise pytest.UsageError(
                f"expected failures name no collected contract test: {', '.join(unknown)}"
            )
