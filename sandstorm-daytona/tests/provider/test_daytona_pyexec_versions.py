"""The Python wrapper on every interpreter a sandbox image may have (3.6-3.13), under the
default image's shell, held to a plain ``python3 -u main.py`` of the same interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandstorm_daytona._command import ExecOutcome

from .test_daytona_pyexec import PROBE, fresh, wrapped

SHELL = "zsh"
"""The default image's shell (the wrapper's shell handling is checked under every shell
in ``test_daytona_pyexec``)."""


def interpreter(version: str) -> str | None:
    """``python<version>`` under pyenv or on PATH, if this machine has one that runs.

    A pyenv shim on PATH exists for every installed version but fails for those not
    selected: only an interpreter that answers with its own version counts.
    """
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    for found in [*(str(p) for p in pyenv[-1:]), shutil.which(f"python{version}")]:
        if found is None:
            continue
        answer = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.stdout.strip() == version:
            return found
    return None


# The sandbox's python3 is the image's, of any age: the wrapper keeps to what 3.6 has.
@pytest.mark.parametrize("version", [f"3.{minor}" for minor in range(6, 14)])
def test_every_interpreter_runs_the_code_as_a_script(tmp_path: Path, version: str) -> None:
    shell = SHELL
    found = interpreter(version)
    if found is None:
        pytest.skip(f"python{version} is not installed here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(found)
    path = f"{bin_dir}:{os.environ['PATH']}"
    probe = PROBE.replace("print(__main__.__dict__ is globals(), sorted(sys.modules))", "")
    finalized = (
        "import atexit\nclass Noisy:\n    def __del__(self):\n        print('finalized')\n"
        "noisy = Noisy()\natexit.register(print, 'at exit')\nraise SystemExit('bye')\n"
    )
    endings = ("def f():\n    1/0\nf()\n", "raise KeyboardInterrupt", "def (:\n", finalized)
    for code in (probe, *endings):
        assert wrapped(shell, code, tmp_path, path=path) == fresh(code, tmp_path, path=path)
    shown = wrapped(shell, "import sys; print('%d.%d' % sys.version_info[:2])", tmp_path, path=path)
    assert shown == ExecOutcome(f"{version}\n", "", 0, False)  # that interpreter ran it
