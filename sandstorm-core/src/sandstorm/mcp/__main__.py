"""``python -m sandstorm.mcp``: the same as ``sandstorm mcp``."""

from __future__ import annotations

import sys

from .._cli import main

if __name__ == "__main__":
    sys.exit(main(["mcp", *sys.argv[1:]]))
