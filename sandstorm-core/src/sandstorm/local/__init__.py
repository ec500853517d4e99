"""The built-in ``local`` provider: isolated code execution on this machine.

>>> import sandstorm
>>> sandstorm.get_provider("local").run("print(6*7)").stdout
'42\\n'

See :class:`LocalProvider` for what isolates a run and :class:`LocalConfig` for settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._paths import default_root

if TYPE_CHECKING:
    from ._config import LocalConfig
    from ._probe import IsolationReport
    from ._provider import LocalProvider

__all__ = ["IsolationReport", "LocalConfig", "LocalProvider", "default_root"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {"IsolationReport": "_probe", "LocalConfig": "_config", "LocalProvider": "_provider"},
    globals(),
)
