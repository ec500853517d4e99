"""Find providers by name in the ``sandstorm.providers`` entry-point group (stevedore)."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from ._errors import ProviderConfigError, ProviderLoadError, ProviderNotFound

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._provider import AsyncProvider
    from ._provider_entry import ProviderEntry

__all__ = [
    "PROVIDER_GROUP",
    "BUILTIN_PROVIDERS",
    "KNOWN_PACKAGES",
    "ProviderEntry",
    "default_provider_name",
    "deferred_builtin",
    "installed_providers",
    "load_provider_class",
    "register_provider",
]

PROVIDER_GROUP = "sandstorm.providers"

KNOWN_PACKAGES: dict[str, str] = {
    "local": "sandstorm-core",
    "daytona": "sandstorm-daytona",
    "router": "sandstorm-core",
}
"""Well-known provider names and the distribution that provides each."""

BUILTIN_PROVIDERS: dict[str, str] = {
    "local": "sandstorm.local:LocalProvider",
    "router": "sandstorm.router:RouterProvider",
}
"""Providers that ship inside sandstorm-core: loaded without scanning entry points.

They are registered in the ``sandstorm.providers`` group too, so listings show them; an
in-process :func:`register_provider` under the same name still takes precedence.
"""

_registered: dict[str, type[AsyncProvider] | str] = {}


def register_provider(name: str, target: type[AsyncProvider] | str) -> None:
    """Register a provider in-process, without an entry point (tests, notebooks).

    ``target`` is the class or a ``"module:Class"`` string imported on first use.
    """
    _registered[name] = target


def default_provider_name() -> str:
    """``SANDSTORM_PROVIDER`` when set, else ``"local"``; set but empty is an error."""
    name = os.environ.get("SANDSTORM_PROVIDER")
    if name is None:
        return "local"
    if not name.strip():
        raise ProviderConfigError(
            "SANDSTORM_PROVIDER is set but empty: name a provider (see `sandstorm providers`) "
            "or unset it to use 'local'"
        )
    return name.strip()


def deferred_builtin(name: str) -> Callable[[], AsyncProvider] | None:
    """How to build provider ``name`` on first use, or ``None`` when it must be built now.

    Only the built-in ``local`` provider given no settings qualifies: not replaced by
    :func:`register_provider`, no ``SANDSTORM_LOCAL_*`` variable set (every field of its
    config reads one), so its config can only take the defaults and building it cannot
    fail. Its state directory is resolved now, as building it now would; building it
    later spares a cold ``get_provider("local")`` the engine, pydantic and asyncio.
    """
    if name != "local" or name in _registered:
        return None
    if any(key.startswith("SANDSTORM_LOCAL_") for key in os.environ):
        return None
    from .local._paths import default_root_str

    root = default_root_str()  # a str: LocalConfig makes it the same Path the default is

    def build() -> AsyncProvider:
        return load_provider_class(name).from_config(root=root)

    return build


@functools.cache
def package_of(module: str) -> tuple[str | None, str | None]:
    """``(distribution, version)`` that installed top-level ``module``, or ``(None, None)``."""
    from importlib import metadata

    top = module.partition(".")[0]
    for ep in metadata.entry_points(group=PROVIDER_GROUP):  # also right for editable installs
        if ep.dist is not None and ep.value.partition(":")[0].partition(".")[0] == top:
            return ep.dist.name, ep.dist.version
    names = metadata.packages_distributions().get(top) or []
    for dist_name in names:
        try:
            return dist_name, metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def installed_providers() -> list[ProviderEntry]:
    """Every provider installed in this environment (entry points and in-process ones)."""
    from importlib import metadata

    from ._provider_entry import ProviderEntry

    entries: dict[str, ProviderEntry] = {}
    for ep in metadata.entry_points(group=PROVIDER_GROUP):
        dist = ep.dist
        entries[ep.name] = ProviderEntry(
            name=ep.name,
            target=ep.value,
            package=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
    for name, target in _registered.items():
        value = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        entries[name] = ProviderEntry(name=name, target=value)
    return sorted(entries.values(), key=lambda entry: entry.name)


def load_provider_class(name: str) -> type[AsyncProvider]:
    """Import and return the provider class registered under ``name``.

    Only that provider's module is imported. Raises :class:`ProviderNotFound` (listing the
    installed names, and the package to install for a well-known name) or
    :class:`ProviderLoadError` when the import fails.
    """
    from ._provider import AsyncProvider

    target = _registered.get(name) or BUILTIN_PROVIDERS.get(name)
    if target is None:
        target = _load_entry_point(name)
    elif isinstance(target, str):
        target = _import(name, target)
    if not (isinstance(target, type) and issubclass(target, AsyncProvider)):
        raise ProviderLoadError(
            f"provider {name!r} resolves to {target!r}, which is not an AsyncProvider subclass"
        )
    return target


def _load_entry_point(name: str) -> Any:
    from stevedore import DriverManager
    from stevedore.exception import MultipleMatches, NoMatches

    failures: list[BaseException] = []

    def on_failure(_manager: object, entry_point: object, exc: BaseException) -> None:
        failures.append(exc)

    try:
        manager: DriverManager[Any] = DriverManager(
            PROVIDER_GROUP,
            name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: None,
        )
    except NoMatches:
        if failures:
            raise ProviderLoadError(
                f"provider {name!r} is installed but failed to import: {failures[0]!r}"
            ) from failures[0]
        raise _not_found(name) from None
    except MultipleMatches as exc:
        raise ProviderLoadError(
            f"more than one installed package provides {name!r}: {exc}"
        ) from None
    return manager.driver


def _import(name: str, target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = __import__(module_name, fromlist=[attr or "__name__"])
        return getattr(module, attr) if attr else module
    except Exception as exc:
        raise ProviderLoadError(f"provider {name!r} failed to import {target!r}: {exc!r}") from exc


def _not_found(name: str) -> ProviderNotFound:
    installed = [entry.name for entry in installed_providers()]
    package = KNOWN_PACKAGES.get(name)
    hint = f"install it with: pip install {package}" if package else None
    return ProviderNotFound(name, installed, hint)


def __getattr__(name: str) -> Any:
    if name == "ProviderEntry":  # defined apart: get_provider needs no dataclasses
        from ._provider_entry import ProviderEntry

        return ProviderEntry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
