"""Where the ``local`` provider keeps its state (read by a cold start: no pydantic here)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["default_root", "default_root_str"]


def default_root_str() -> str:
    """:func:`default_root` as a string, without importing pathlib (a cold start reads it)."""
    state = os.environ.get("XDG_STATE_HOME")
    if not state:
        home = os.path.expanduser("~")
        if home.startswith("~"):
            raise RuntimeError("Could not determine home directory.")  # as Path.home()
        state = os.path.join(home, ".local", "state")
    return os.path.join(state, "sandstorm", "local")


def default_root() -> Path:
    """``$XDG_STATE_HOME/sandstorm/local``, else ``~/.local/state/sandstorm/local``."""
    from pathlib import Path

    return Path(default_root_str())
