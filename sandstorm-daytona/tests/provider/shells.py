"""The session shells of the test matrix: the daemon runs commands in zsh on the default
image (first of ``/etc/shells``, zsh before bash: daemon ``get_shell.go``), in bash on
images without zsh, and minimal images have only dash as ``sh``.

A shell of the matrix that is missing fails the test loudly: ``scripts/dev.py`` installs
zsh and dash where it can (root with apt-get), and a silent skip would hide exactly the
kind of break issue 17 was about.
"""

from __future__ import annotations

import shutil

import pytest

__all__ = ["DEFAULT_SHELL", "SHELLS", "require_shell"]

SHELLS = ("zsh", "bash", "dash")
DEFAULT_SHELL = "zsh"
"""The shell a daemon picks on the default image; the full kit runs under it."""


def require_shell(name: str) -> str:
    """The path of shell ``name``; fails the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: the Daytona shell matrix needs zsh, bash and dash "
            "(run `python3 scripts/dev.py test` as root to install them, or apt-get install "
            "zsh dash)",
            pytrace=False,
        )
    return path
