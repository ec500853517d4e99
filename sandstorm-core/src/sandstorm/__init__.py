"""Sandstorm: run untrusted code in sandboxes through one provider-neutral API.

>>> import sandstorm
>>> sandstorm.get_provider("local").run("print(6*7)").stdout
'42\\n'

``get_provider`` returns a blocking provider; ``get_async_provider`` the async one.
Providers are found by name in the ``sandstorm.providers`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from ._audit import AuditEvent, JsonlAuditLogger
from ._capabilities import Capability
from ._config import ProviderConfig, env_field
from ._errors import (
    AuthenticationError,
    CapabilityNotSupported,
    ExecutionTimeout,
    FileNotFound,
    InvalidArgument,
    InvalidPath,
    IsolationUnavailable,
    NetworkError,
    OutputLimitExceeded,
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
from ._hookspecs import hookimpl
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
    RunResult,
    Snapshot,
    TerminationReason,
    Workspace,
    WorkspaceMetrics,
)
from ._plugins import plugin_manager, reset_plugin_manager
from ._pool import WarmPool
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "PROVIDER_GROUP",
    "AsyncProvider",
    "AsyncSandbox",
    "AuditEvent",
    "AuthenticationError",
    "Capability",
    "CapabilityNotSupported",
    "CostEstimate",
    "ExecRequest",
    "ExecutionTimeout",
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
    "OutputLimitExceeded",
    "OutputStream",
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


def get_async_provider(name: str | None = None, **config: Any) -> AsyncProvider:
    """The async provider called ``name``, configured from ``config`` then the environment.

    ``name=None`` takes ``SANDSTORM_PROVIDER``, else ``"local"``. Raises
    :class:`ProviderNotFound`, :class:`ProviderLoadError` or :class:`ProviderConfigError`.
    """
    cls = load_provider_class(name or default_provider_name())
    return cls.from_config(**config)


def get_provider(name: str | None = None, **config: Any) -> SyncProvider:
    """The blocking provider called ``name``; see :func:`get_async_provider`."""
    return SyncProvider(get_async_provider(name, **config))
