"""Where the ``local`` provider keeps its state (read by a cold start: no pydantic here)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_root"]


def default_root() -> Path:
    """``$XDG_STATE_HOME/sandstorm/local``, else ``~/.local/state/sandstorm/local``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sandstorm" / "local"
