"""The Sandstorm exception tree.

Every error a provider raises is a :class:`SandstormError`. Adapters translate their
backend's failures into this tree at their boundary, so callers catch one family no
matter which provider runs the code. No error message ever contains a secret.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = [
    "SandstormError",
    "ProviderError",
    "ProviderNotFound",
    "ProviderLoadError",
    "ProviderConfigError",
    "ConfigProblem",
    "InvalidArgument",
    "InvalidPath",
    "CapabilityNotSupported",
    "IsolationUnavailable",
    "WorkspaceError",
    "WorkspaceNotFound",
    "WorkspaceExists",
    "FileNotFound",
    "WorkspaceOSError",
    "SnapshotNotFound",
    "TemplateNotFound",
    "ContextNotFound",
    "ProcessNotFound",
    "ExecutionTimeout",
    "ProviderAPIError",
    "AuthenticationError",
    "RateLimited",
    "QuotaExceeded",
    "ResourceAllocationError",
    "ProviderUnavailable",
    "NetworkError",
    "translate",
]


class SandstormError(Exception):
    """Base class of every error raised by Sandstorm and its providers."""


class ProviderError(SandstormError):
    """Choosing, loading or configuring a provider failed."""


class ProviderNotFound(ProviderError, LookupError):
    """No installed provider has the requested name.

    ``installed`` lists the names that are installed; ``hint`` says which package to
    install when the name is a well-known provider.
    """

    def __init__(self, name: str, installed: Iterable[str], hint: str | None = None) -> None:
        self.name = name
        self.installed = sorted(installed)
        self.hint = hint
        listing = ", ".join(self.installed) or "none"
        message = f"no sandstorm provider named {name!r} is installed (installed: {listing})"
        close = difflib.get_close_matches(name, self.installed, n=1)
        self.suggestion = close[0] if close else None
        if self.suggestion:
            message += f"; did you mean {self.suggestion!r}?"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class ProviderLoadError(ProviderError):
    """The provider's entry point exists but importing it failed."""


class ConfigProblem(NamedTuple):
    """One thing wrong with a provider's configuration (never its value)."""

    field: str
    """The field at fault, dotted for a nested one (``"templates.web"``); ``"config"``
    when no one field is."""
    message: str
    """What is wrong and how to fix it, as the error's text says it."""


class ProviderConfigError(ProviderError, ValueError):
    """The provider's configuration is invalid; the message says which field and why.

    ``problems`` lists each fault as a :class:`ConfigProblem` when the configuration
    model found them (empty when the error is about no one field), so callers need not
    parse the message.
    """

    def __init__(self, message: str, problems: Iterable[ConfigProblem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (*self.args, self.problems))


class InvalidArgument(ProviderConfigError, TypeError):
    """An argument of a public call is of the wrong type or out of range.

    Raised before any provider code runs, identically on every provider. It is also a
    ``ValueError`` and a ``TypeError``, as the built-in checks would have raised.
    """


class CapabilityNotSupported(SandstormError, NotImplementedError):
    """The provider does not declare the capability this call needs."""

    def __init__(self, provider: str, capability: str, detail: str | None = None) -> None:
        self.provider = provider
        self.capability = capability
        message = f"provider {provider!r} does not support {capability}"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class IsolationUnavailable(SandstormError):
    """A required isolation primitive is missing, so the provider refuses to run code."""


class WorkspaceError(SandstormError):
    """An operation on a workspace failed."""


class WorkspaceNotFound(WorkspaceError, LookupError):
    """No workspace with this id exists (or it was deleted)."""

    def __init__(self, workspace_id: str, provider: str | None = None) -> None:
        self.workspace_id = workspace_id
        where = f" on provider {provider!r}" if provider else ""
        super().__init__(f"workspace {workspace_id!r} not found{where}")


class InvalidPath(InvalidArgument, WorkspaceError):
    """A path argument is malformed or leaves the workspace (also a ``WorkspaceError``)."""


class WorkspaceExists(WorkspaceError):
    """A workspace with this name already exists (names are unique per provider scope)."""

    def __init__(self, name: str, provider: str | None = None) -> None:
        self.name = name
        where = f" on provider {provider!r}" if provider else ""
        super().__init__(f"a workspace named {name!r} already exists{where}")


class WorkspaceOSError(WorkspaceError, OSError):
    """A file operation in a workspace failed; also the matching built-in ``OSError``.

    ``WorkspaceOSError.of(exc)`` turns an ``OSError`` into one of these whose class is
    also ``type(exc)`` (``FileNotFoundError``, ``IsADirectoryError``...).
    """

    @staticmethod
    def of(exc: OSError) -> WorkspaceOSError:
        """``exc`` as a Sandstorm error that is still an instance of ``type(exc)``."""
        if isinstance(exc, WorkspaceOSError):
            return exc
        error = _os_class(type(exc))(*exc.args)
        if exc.filename is not None:
            error.filename = exc.filename
        return error


_OS_CLASSES: dict[type[OSError], type[WorkspaceOSError]] = {}


def _os_class(cls: type[OSError]) -> type[WorkspaceOSError]:
    if cls is FileNotFoundError:
        return FileNotFound
    if cls is OSError:
        return WorkspaceOSError
    found = _OS_CLASSES.get(cls)
    if found is None:
        found = _OS_CLASSES[cls] = type(
            f"Workspace{cls.__name__}", (WorkspaceOSError, cls), {"__module__": __name__}
        )
    return found


class FileNotFound(WorkspaceOSError, FileNotFoundError):
    """The file does not exist in the workspace (also a ``FileNotFoundError``)."""


class SnapshotNotFound(WorkspaceError, LookupError):
    """No snapshot with this id exists."""

    def __init__(self, snapshot_id: str) -> None:
        self.snapshot_id = snapshot_id
        super().__init__(f"snapshot {snapshot_id!r} not found")


class TemplateNotFound(WorkspaceError, LookupError):
    """The named workspace template is unknown; ``known`` lists the ones that exist."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listing = ", ".join(self.known) or "none are configured"
        super().__init__(f"unknown workspace template {name!r} (known templates: {listing})")


class ContextNotFound(WorkspaceError, LookupError):
    """No interpreter context with this id in the workspace."""

    def __init__(self, context_id: str) -> None:
        self.context_id = context_id
        super().__init__(f"no interpreter context {context_id!r}")


class ProcessNotFound(WorkspaceError, LookupError):
    """No background process with this id in the workspace."""

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id
        super().__init__(f"no background process {process_id!r}")


class ExecutionTimeout(SandstormError, TimeoutError):
    """Code ran past its timeout; the whole process tree was killed.

    ``stdout`` and ``stderr`` hold the output produced before the kill.
    """

    def __init__(
        self,
        timeout: float,
        stdout: str = "",
        stderr: str = "",
        workspace_id: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        self.workspace_id = workspace_id
        super().__init__(f"execution timed out after {timeout:g}s; the process tree was killed")


class ProviderAPIError(SandstormError):
    """A provider's backend answered with an error.

    Carries the provider name, the HTTP status (where there is one) and the backend's
    request id, so a support ticket can quote them.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.request_id = request_id
        details = [
            part
            for part in (
                f"status {status}" if status is not None else None,
                f"request id {request_id}" if request_id else None,
            )
            if part
        ]
        suffix = f" ({', '.join(details)})" if details else ""
        super().__init__(f"{message}{suffix}")
        self.message = message


class AuthenticationError(ProviderAPIError):
    """The backend rejected the credentials."""


class RateLimited(ProviderAPIError):
    """The backend is rate limiting; retry after ``retry_after`` seconds (when known)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class QuotaExceeded(ProviderAPIError):
    """An account quota (sandboxes, cpu, memory, disk) would be exceeded."""


class ResourceAllocationError(ProviderAPIError):
    """The backend could not allocate the requested resources."""


class ProviderUnavailable(ProviderAPIError):
    """The backend is down or unreachable right now."""


class NetworkError(ProviderUnavailable):
    """The connection to the backend failed (refused, reset, timed out)."""


def translate(exc: BaseException, provider: str | None = None) -> BaseException:
    """``exc`` as a :class:`SandstormError` where it is a backend's or the OS's failure.

    An exception group gives its first Sandstorm error, else its first leaf (translated);
    ``OSError`` becomes :class:`WorkspaceOSError` (still the same ``OSError`` class);
    httpx/httpcore failures and lost connections become :class:`NetworkError`; a pydantic
    ``ValidationError`` (a reply that does not parse) becomes :class:`ProviderAPIError`.
    Anything else (an application callback's own error, a bug) is returned unchanged.
    """
    if isinstance(exc, SandstormError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        leaves = list(_leaves(exc))
        for leaf in leaves:
            if isinstance(leaf, SandstormError):
                return leaf
        if not leaves:
            return ProviderAPIError(str(exc), provider=provider)
        # no Sandstorm error inside: the first failure, translated when it is a backend's
        # (an application callback's own error comes out as it was raised)
        return translate(leaves[0], provider)
    module = type(exc).__module__.split(".", 1)[0]
    if isinstance(exc, ConnectionError | TimeoutError) or module in (
        "httpx",
        "httpcore",
        "h11",
        "wsproto",
        "websockets",
    ):
        return NetworkError(
            f"the connection to the backend failed: {type(exc).__name__}: {exc}",
            provider=provider,
        )
    if isinstance(exc, OSError):
        return WorkspaceOSError.of(exc)
    if module in {"pydantic", "pydantic_core"}:
        return ProviderAPIError(f"the backend sent a reply that does not parse: {exc}")
    return exc


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
