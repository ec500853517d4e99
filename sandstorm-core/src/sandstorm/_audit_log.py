"""The built-in audit plugin: every audit event appended to a JSON-lines file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ._audit import AuditEvent
from ._hookspecs import hookimpl

__all__ = ["JsonlAuditLogger"]


class JsonlAuditLogger:
    """A plugin that appends every audit event to a file, one JSON object per line.

    Off by default; turned on by ``SANDSTORM_AUDIT_LOG=path`` or by registering an
    instance with :func:`sandstorm.plugin_manager`. Secret-looking details are redacted.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @hookimpl
    def sandstorm_audit(self, event: AuditEvent) -> None:
        """Append ``event`` to the log file."""
        line = json.dumps(event.redacted(), sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
