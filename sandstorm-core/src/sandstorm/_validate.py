"""One check of every public argument, before any provider code runs.

Every provider answers a bad argument the same way: :class:`~sandstorm.InvalidArgument`
(a ``ProviderConfigError``, ``ValueError`` and ``TypeError``) naming the argument and
what is wrong. Limits a provider cannot honour (cpu, memory, disk, timeout) are declared
on the provider class (``max_cpu``...) and checked here too.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import InvalidArgument, InvalidPath
from ._models import NetworkPolicy, Resources, Snapshot, Workspace

__all__ = [
    "check_callback",
    "check_code",
    "check_data",
    "check_env",
    "check_flag",
    "check_labels",
    "check_name",
    "check_network",
    "check_path",
    "check_ref",
    "check_resources",
    "check_seconds",
    "check_snapshot_name",
    "check_stdin",
    "check_text",
    "check_timeout",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_LABEL_VALUE_MAX = 255


def _bad(
    what: str, problem: str, value: object, cls: type[InvalidArgument] = InvalidArgument
) -> InvalidArgument:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return cls(f"{what} {problem} (got {shown})")


def _string(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _bad(what, "must be a string", value)
    if not empty and not value:
        raise _bad(what, "must not be empty", value)
    if "\0" in value:
        raise _bad(what, "must not contain a NUL byte", value)
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(what, "must be a number", value)
    if not math.isfinite(value):
        raise _bad(what, "must be a finite number", value)
    return float(value)


def check_code(code: object) -> str:
    """The code to run: a string without NUL bytes (may be empty)."""
    return _string(code, "code", empty=True)


def check_text(value: object, what: str, *, optional: bool = True) -> str | None:
    """A non-empty string without NUL bytes (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    return _string(value, what)


def check_flag(value: object, what: str) -> bool:
    """A real ``bool``."""
    if not isinstance(value, bool):
        raise _bad(what, "must be True or False", value)
    return value


def check_seconds(
    value: object, what: str, *, maximum: float | None = None, zero: bool = False
) -> float:
    """A finite number of seconds, > 0 (>= 0 with ``zero``), at most ``maximum``."""
    seconds = _number(value, what)
    if seconds < 0 or (seconds == 0 and not zero):
        raise _bad(what, f"must be {'>=' if zero else '>'} 0 seconds", value)
    if maximum is not None and seconds > maximum:
        raise _bad(what, f"must be at most {maximum:g} seconds on this provider", value)
    return seconds


def check_timeout(value: object, maximum: float | None) -> float | None:
    """``timeout``: ``None`` (the provider's default) or seconds, > 0, at most ``maximum``."""
    if value is None:
        return None
    return check_seconds(value, "timeout", maximum=maximum)


def check_env(env: object) -> dict[str, str]:
    """Environment variables: shell-style names, string values, no NUL bytes."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise _bad("env", "must be a mapping of names to strings", env)
    checked: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise _bad("env", "names must be letters, digits and _, not starting with a digit", key)
        checked[key] = _string(value, f"env[{key!r}]", empty=True)
    return checked


def check_stdin(stdin: object) -> bytes | None:
    """``stdin``: ``None``, text (UTF-8 encoded) or bytes."""
    if stdin is None:
        return None
    if isinstance(stdin, str):
        return stdin.encode()
    if isinstance(stdin, bytes | bytearray | memoryview):
        return bytes(stdin)
    raise _bad("stdin", "must be str, bytes or None", stdin)


def check_data(data: object) -> bytes:
    """File contents: text (UTF-8 encoded) or bytes."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise _bad("data", "must be str or bytes", data)


def check_callback(callback: object, what: str) -> Callable[[str], None] | None:
    """An output callback: ``None`` or a callable."""
    if callback is None or callable(callback):
        return callback
    raise _bad(what, "must be a callable taking a string, or None", callback)


def check_resources(
    cpu: object,
    memory: object,
    disk: object,
    *,
    max_cpu: float | None,
    max_memory: int | None,
    max_disk: int | None,
) -> Resources:
    """cpu in cores, memory and disk in whole MiB; within the provider's declared maxima."""
    values: dict[str, Any] = {}
    for what, value, maximum, unit in (
        ("cpu", cpu, max_cpu, "cores"),
        ("memory", memory, max_memory, "MiB"),
        ("disk", disk, max_disk, "MiB"),
    ):
        if value is None:
            continue
        number = _number(value, what)
        if what != "cpu" and not isinstance(value, int):
            raise _bad(what, f"must be a whole number of {unit}", value)
        if number <= 0:
            raise _bad(what, f"must be > 0 {unit}", value)
        if maximum is not None and number > maximum:
            raise _bad(what, f"must be at most {maximum:g} {unit} on this provider", value)
        values[what] = value
    return Resources(**values)


def check_network(network: object) -> NetworkPolicy | None:
    """``None`` or a :class:`~sandstorm.NetworkPolicy`."""
    if network is None or isinstance(network, NetworkPolicy):
        return network
    raise _bad("network", "must be a NetworkPolicy or None", network)


def check_name(name: object, what: str = "name") -> str | None:
    """A workspace or snapshot name: 1-63 letters, digits, ``.``, ``_``, ``-``."""
    if name is None:
        return None
    text = _string(name, what)
    if not _NAME.match(text):
        raise _bad(
            what,
            "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            name,
        )
    return text


def check_snapshot_name(name: object) -> str | None:
    """A snapshot name: 1-255 printable characters (image-like names such as ``team/app:v1``)."""
    if name is None:
        return None
    text = _string(name, "snapshot name")
    if len(text) > 255 or not text.isprintable():
        raise _bad("snapshot name", "must be 1-255 printable characters", name)
    return text


def check_labels(labels: object, reserved: frozenset[str]) -> dict[str, str]:
    """Labels: short keys, string values; keys Sandstorm or the provider keep are refused."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise _bad("labels", "must be a mapping of strings to strings", labels)
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise _bad(
                "label key",
                "must be 1-63 letters, digits, '.', '_', '/' or '-', starting with a "
                "letter or digit",
                key,
            )
        if key in reserved:
            raise _bad("label key", "is reserved for sandstorm's own use", key)
        text = _string(value, f"labels[{key!r}]", empty=True)
        if len(text) > _LABEL_VALUE_MAX or not text.isprintable():
            raise _bad(f"labels[{key!r}]", "must be at most 255 printable characters", value)
        checked[key] = text
    return checked


def check_path(path: object, *, root: bool = False) -> str:
    """A path relative to the workspace root that stays inside it.

    ``root`` allows the root itself (``"."``), for listing and cloning.
    """
    try:
        text = _string(path, "path")
    except InvalidArgument as exc:
        raise InvalidPath(str(exc)) from None
    if text.startswith("/"):
        raise _bad("path", "must be relative to the workspace root", path, InvalidPath)
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise _bad("path", "must not climb above the workspace root", path, InvalidPath)
    if normal == "." and not root:
        raise _bad("path", "must name a file, not the workspace root", path, InvalidPath)
    return text


def check_ref(ref: object, what: str = "workspace") -> str:
    """The id of a workspace (or snapshot) given as a model or as its id."""
    if isinstance(ref, Workspace | Snapshot):
        return ref.id
    return _string(ref, f"{what} id")
