"""The built-in ``local`` provider: isolated code execution on this machine.

>>> import sandstorm
>>> sandstorm.get_provider("local").run("print(6*7)").stdout
'42\\n'

See :class:`LocalProvider` for what isolates a run and :class:`LocalConfig` for settings.
"""

from __future__ import annotations

from ._config import LocalConfig, default_root
from ._probe import IsolationReport
from ._provider import LocalProvider

__all__ = ["IsolationReport", "LocalConfig", "LocalProvider", "default_root"]
