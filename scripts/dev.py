#!/usr/bin/env python3
"""Set up the development environment and run the demo or the whole check suite.

    python3 scripts/dev.py demo    # run examples/hello.py on the local provider
    python3 scripts/dev.py test    # ruff, mypy --strict, the docs site and the pytest suite
    python3 scripts/dev.py docs    # serve the documentation site on http://127.0.0.1:8000
                                   # (SANDSTORM_DOCS_ADDR=127.0.0.1:PORT for another port)

``test`` first makes sure zsh and dash exist (the Daytona tests run under zsh, bash and
dash), installing them with apt-get when running as root, and fails with a clear message
where it cannot.

Needs only Python 3.11+ with pip: installs uv if missing, then builds .venv from
uv.lock with this same interpreter (uv never downloads a Python build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


SHELLS = ("zsh", "dash")
"""Shells the Daytona tests need besides bash: the daemon runs commands in zsh on the
default image and in sh (dash) on minimal ones; the suite runs the provider under each."""


PYTEST_PARALLEL = ("-n", "3", "--dist", "load", "-m", "not docs")
"""pytest-xdist: three worker processes. Most tests wait on sandboxes, sockets and nested
pytest runs rather than the CPU, so three workers finish well ahead of one even on two
cores. ``--dist load`` hands tests out one by one, so the few long ones (started first,
see sandstorm-testkit/tests/conftest.py) land on different workers. The doc blocks run
after, in one process (``PYTEST_DOCS``): a page's blocks share its namespace.
``PYTEST_ARGS="-n 0"`` runs the main part in one process too."""

PYTEST_DOCS = ("-p", "no:xdist", "-m", "docs")
"""The documentation's code blocks (Sybil), in one process."""


def ensure_shells() -> int:
    """Install the missing shells of the test matrix with apt-get (as root); 0 when all exist.

    Where they cannot be installed, say so and fail: the tests would fail on them anyway.
    """
    missing = [name for name in SHELLS if shutil.which(name) is None]
    if not missing:
        return 0
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        why = "apt-get is not available" if apt is None else "not running as root"
        print(
            f"error: the test suite needs the shells {', '.join(missing)} (the Daytona tests "
            f"run under zsh, bash and dash) and they are missing; {why}, so they cannot be "
            f"installed here. Install them (e.g. `sudo apt-get install -y {' '.join(missing)}`) "
            "and run again.",
            file=sys.stderr,
        )
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", *missing]):
        print("+", " ".join(argv), flush=True)
        if subprocess.run(argv, check=False, env=env).returncode != 0:
            print(f"error: could not install {', '.join(missing)} with apt-get", file=sys.stderr)
            return 1
    still = [name for name in missing if shutil.which(name) is None]
    if still:
        print(f"error: {', '.join(still)} still missing after apt-get install", file=sys.stderr)
        return 1
    return 0


def run(*argv: str) -> int:
    print("+", " ".join(argv), flush=True)
    return subprocess.run(argv, check=False, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"demo", "test", "docs"}:
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
    os.environ["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about its successor
    if argv[0] == "demo":
        return run(*uv, "run", "--frozen", "sandstorm", "run", "examples/hello.py")
    if argv[0] == "docs":
        # loopback only; SANDSTORM_DOCS_ADDR=127.0.0.1:PORT picks another port
        address = os.environ.get("SANDSTORM_DOCS_ADDR", "127.0.0.1:8000")
        return run(*uv, "run", "--frozen", "mkdocs", "serve", "-a", address)
    if rc := ensure_shells():
        return rc
    with tempfile.TemporaryDirectory(prefix="sandstorm-site-") as site:
        # the site is built once, outside the repository; tests/test_site.py checks it
        os.environ["SANDSTORM_DOCS_SITE"] = site
        steps = [
            (*uv, "run", "--frozen", "ruff", "check", "."),
            (*uv, "run", "--frozen", "ruff", "format", "--check", "."),
            (*uv, "run", "--frozen", "mypy"),
            (*uv, "run", "--frozen", "python", "scripts/gen_benchmarks.py", "--check"),
            (*uv, "run", "--frozen", "mkdocs", "build", "--strict", "-q", "-d", site),
            (
                *uv,
                "run",
                "--frozen",
                "pytest",
                *PYTEST_PARALLEL,
                *os.environ.get("PYTEST_ARGS", "").split(),
            ),
            (*uv, "run", "--frozen", "pytest", *PYTEST_DOCS),
        ]
        failed = [step for step in steps if run(*step) != 0]
    for step in failed:
        print("FAILED:", " ".join(step[len(uv) :]), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
