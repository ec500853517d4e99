"""The plugin manager: every installed ``sandstorm`` plugin, called for every event."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pluggy

__all__ = ["plugin_manager", "reset_plugin_manager"]

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use.

    Loads plugins from the ``sandstorm`` entry-point group, except those named in
    ``SANDSTORM_DISABLED_PLUGINS`` (comma separated), and registers the JSON-lines audit
    logger when ``SANDSTORM_AUDIT_LOG`` names a file.
    """
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _manager = _build()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the plugin manager so the next use rebuilds it (for tests and reconfiguration)."""
    global _manager
    with _lock:
        _manager = None


def _build() -> pluggy.PluginManager:
    # imported here, not at the top: a program that never fires a hook never pays for
    # pluggy and the entry-point scan
    import pluggy

    from . import _hookspecs
    from ._audit_log import JsonlAuditLogger

    manager = pluggy.PluginManager(_hookspecs.PROJECT)
    manager.add_hookspecs(_hookspecs)
    for name in os.environ.get("SANDSTORM_DISABLED_PLUGINS", "").split(","):
        if name.strip():
            manager.set_blocked(name.strip())
    audit_path = os.environ.get("SANDSTORM_AUDIT_LOG")
    if audit_path:
        manager.register(JsonlAuditLogger(audit_path), name="sandstorm.audit-log")
    manager.load_setuptools_entrypoints(_hookspecs.PROJECT)
    manager.check_pending()
    return manager
