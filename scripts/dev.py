#!/usr/bin/env python3
"""Set up the development environment and run the demo or the whole check suite.

    python3 scripts/dev.py demo    # run examples/hello.py on the local provider
    python3 scripts/dev.py test    # ruff, mypy --strict and the whole pytest suite

Needs only Python 3.11+ with pip: installs uv if missing, then builds .venv from
uv.lock with this same interpreter (uv never downloads a Python build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def uv_command() -> list[str]:
    """The uv command line, installing uv with pip when it is missing."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run(
        [sys.executable, "-m", "uv", "--version"], check=False, capture_output=True
    )
    if probe.returncode != 0:
        print("installing uv with pip ...", flush=True)
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if subprocess.run([*install, "uv"], check=False).returncode != 0:
            subprocess.run([*install, "--user", "uv"], check=True)
    return [sys.executable, "-m", "uv"]


def run(*argv: str) -> int:
    print("+", " ".join(argv), flush=True)
    return subprocess.run(argv, check=False, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"demo", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    os.environ.setdefault("UV_PYTHON", sys.executable)
    uv = uv_command()
    # --compile-bytecode: machines with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile
    # every dependency on every interpreter start.
    if rc := run(*uv, "sync", "--frozen", "--all-packages", "--compile-bytecode", "--quiet"):
        return rc
    # the workspace's own packages are installed editable, which --compile-bytecode skips:
    # compile their sources too (Python reads a fresh .pyc even where it may not write one)
    sources = [str(path) for path in sorted(ROOT.glob("sandstorm-*/src"))]
    if rc := run(*uv, "run", "--frozen", "python", "-m", "compileall", "-q", *sources):
        return rc
    if argv[0] == "demo":
        return run(*uv, "run", "--frozen", "sandstorm", "run", "examples/hello.py")
    steps = [
        (*uv, "run", "--frozen", "ruff", "check", "."),
        (*uv, "run", "--frozen", "ruff", "format", "--check", "."),
        (*uv, "run", "--frozen", "mypy"),
        (*uv, "run", "--frozen", "python", "scripts/gen_reference.py", "--check"),
        (*uv, "run", "--frozen", "pytest", *os.environ.get("PYTEST_ARGS", "").split()),
    ]
    failed = [step for step in steps if run(*step) != 0]
    for step in failed:
        print("FAILED:", " ".join(step[len(uv) :]), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
