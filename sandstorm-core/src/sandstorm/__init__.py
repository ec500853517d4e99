"""Sandstorm: run untrusted code in sandboxes through one provider-neutral API.

>>> import sandstorm
>>> sandstorm.get_provider("local").run("print(6*7)").stdout
'42\\n'

``get_provider`` returns a blocking provider; ``get_async_provider`` the async one.
Providers are found by name in the ``sandstorm.providers`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._capabilities import Capability
from ._errors import (
    AuthenticationError,
    CapabilityNotSupported,
    ConfigProblem,
    ContextNotFound,
    ExecutionTimeout,
    FileNotFound,
    InvalidArgument,
    InvalidPath,
    IsolationUnavailable,
    NetworkError,
    ProcessNotFound,
    ProviderAPIError,
    ProviderConfigError,
    ProviderError,
    ProviderLoadError,
    ProviderNotFound,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    ResourceAllocationError,
    SandstormError,
    SnapshotNotFound,
    TemplateNotFound,
    WorkspaceError,
    WorkspaceExists,
    WorkspaceNotFound,
    WorkspaceOSError,
)
from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from ._audit import AuditEvent
    from ._audit_log import JsonlAuditLogger
    from ._config import ProviderConfig, env_field
    from ._hookspecs import hookimpl
    from ._interactive import (
        CodeContext,
        Execution,
        ExecutionError,
        ExecutionResult,
        ExposedPort,
        ProcessInfo,
        ProcessLogs,
        ProcessStatus,
    )
    from ._models import (
        DEFAULT_OUTPUT_CAP,
        CostEstimate,
        FileInfo,
        GitFileStatus,
        GitStatus,
        Language,
        NetworkPolicy,
        OutputChunk,
        ProviderInfo,
        Resources,
        ResourceUsage,
        RunResult,
        Snapshot,
        TerminationReason,
        Workspace,
        WorkspaceMetrics,
    )
    from ._plugins import plugin_manager, reset_plugin_manager
    from ._pool import WarmPool
    from ._processes import AsyncProcessHandle, ProcessHandle
    from ._provider import AsyncProvider, ExecRequest, OutputCallback, OutputStream, WorkspaceSpec
    from ._registry import (
        PROVIDER_GROUP,
        default_provider_name,
        installed_providers,
        load_provider_class,
        register_provider,
    )
    from ._sandbox import AsyncSandbox, Sandbox
    from ._sync import SyncOutputStream, SyncProvider

_LAZY: dict[str, str] = {
    "CodeContext": "_interactive",
    "Execution": "_interactive",
    "ExecutionError": "_interactive",
    "ExecutionResult": "_interactive",
    "ExposedPort": "_interactive",
    "ProcessInfo": "_interactive",
    "ProcessLogs": "_interactive",
    "ProcessStatus": "_interactive",
    "AsyncProcessHandle": "_processes",
    "ProcessHandle": "_processes",
    "AsyncProvider": "_provider",
    "AsyncSandbox": "_sandbox",
    "AuditEvent": "_audit",
    "CostEstimate": "_models",
    "DEFAULT_OUTPUT_CAP": "_models",
    "default_provider_name": "_registry",
    "env_field": "_config",
    "ExecRequest": "_provider",
    "FileInfo": "_models",
    "GitFileStatus": "_models",
    "GitStatus": "_models",
    "hookimpl": "_hookspecs",
    "installed_providers": "_registry",
    "JsonlAuditLogger": "_audit_log",
    "Language": "_models",
    "load_provider_class": "_registry",
    "NetworkPolicy": "_models",
    "OutputCallback": "_provider",
    "OutputChunk": "_models",
    "OutputStream": "_provider",
    "plugin_manager": "_plugins",
    "PROVIDER_GROUP": "_registry",
    "ProviderConfig": "_config",
    "ProviderInfo": "_models",
    "register_provider": "_registry",
    "reset_plugin_manager": "_plugins",
    "Resources": "_models",
    "RunResult": "_models",
    "Sandbox": "_sandbox",
    "Snapshot": "_models",
    "SyncOutputStream": "_sync",
    "SyncProvider": "_sync",
    "TerminationReason": "_models",
    "WarmPool": "_pool",
    "Workspace": "_models",
    "ResourceUsage": "_models",
    "WorkspaceMetrics": "_models",
    "WorkspaceSpec": "_provider",
}
"""Public names imported on first use, and the private module that defines each.

``import sandstorm`` stays cheap (no pydantic, asyncio, pluggy or stevedore) until a name
that needs them is used: every CLI call and short script starts faster.
"""

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "PROVIDER_GROUP",
    "AsyncProcessHandle",
    "AsyncProvider",
    "AsyncSandbox",
    "AuditEvent",
    "AuthenticationError",
    "Capability",
    "CapabilityNotSupported",
    "CodeContext",
    "ConfigProblem",
    "ContextNotFound",
    "CostEstimate",
    "ExecRequest",
    "Execution",
    "ExecutionError",
    "ExecutionResult",
    "ExecutionTimeout",
    "ExposedPort",
    "FileNotFound",
    "InvalidArgument",
    "InvalidPath",
    "FileInfo",
    "GitFileStatus",
    "GitStatus",
    "IsolationUnavailable",
    "JsonlAuditLogger",
    "Language",
    "NetworkError",
    "NetworkPolicy",
    "OutputCallback",
    "OutputChunk",
    "OutputStream",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessLogs",
    "ProcessNotFound",
    "ProcessStatus",
    "ProviderAPIError",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderError",
    "ProviderInfo",
    "ProviderLoadError",
    "ProviderNotFound",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "ResourceAllocationError",
    "Resources",
    "RunResult",
    "Sandbox",
    "SandstormError",
    "Snapshot",
    "SnapshotNotFound",
    "SyncOutputStream",
    "SyncProvider",
    "TemplateNotFound",
    "TerminationReason",
    "WarmPool",
    "Workspace",
    "WorkspaceError",
    "ResourceUsage",
    "WorkspaceMetrics",
    "WorkspaceExists",
    "WorkspaceNotFound",
    "WorkspaceOSError",
    "WorkspaceSpec",
    "default_provider_name",
    "env_field",
    "get_async_provider",
    "get_provider",
    "hookimpl",
    "installed_providers",
    "load_provider_class",
    "plugin_manager",
    "register_provider",
    "reset_plugin_manager",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


def get_async_provider(name: str | None = None, **config: Any) -> AsyncProvider:
    """The async provider called ``name``, configured from ``config`` then the environment.

    ``name=None`` takes ``SANDSTORM_PROVIDER``, else ``"local"``. Raises
    :class:`ProviderNotFound`, :class:`ProviderLoadError` or :class:`ProviderConfigError`.
    """
    from ._registry import default_provider_name, load_provider_class

    cls = load_provider_class(name or default_provider_name())
    return cls.from_config(**config)


def get_provider(name: str | None = None, **config: Any) -> SyncProvider:
    """The blocking provider called ``name``; see :func:`get_async_provider`."""
    from ._registry import default_provider_name, deferred_builtin
    from ._sync import SyncProvider

    name = name or default_provider_name()
    build = None if config else deferred_builtin(name)
    if build is not None:  # nothing to validate: built on first use, a cheap cold start
        return SyncProvider._deferred(build)
    return SyncProvider(get_async_provider(name, **config))
