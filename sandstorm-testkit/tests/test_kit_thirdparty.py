"""Proof of the third-party path: an adapter package outside this workspace, installed with
the kit into a fresh venv, passes ``pytest --sandstorm-provider=acme`` there.

The venv is built offline from uv's cache: ``uv export`` pins the third-party packages the
kit needs (from ``uv.lock``), ``uv pip install`` (``UV_OFFLINE=1``) installs them, then
fresh copies of sandstorm-core and sandstorm-testkit and the adapter are installed by path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ADAPTER = '''
"""Acme sandboxes: a third-party adapter (here: the local engine under another name)."""

from sandstorm.local import LocalProvider


class AcmeProvider(LocalProvider):
    name = "acme"
    description = "Acme sandboxes (third-party adapter used by the kit's own tests)"
'''

PYPROJECT = """
[project]
name = "sandstorm-acme"
version = "1.0"
dependencies = ["sandstorm-core"]

[project.entry-points."sandstorm.providers"]
acme = "sandstorm_acme:AcmeProvider"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/sandstorm_acme"]
"""


def _uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.fail("the third-party proof needs `uv` on PATH", pytrace=False)
    return found


@pytest.mark.slow
def test_adapter_outside_the_workspace_passes_the_contract(tmp_path: Path) -> None:
    package = tmp_path / "sandstorm-acme"
    (package / "src" / "sandstorm_acme").mkdir(parents=True)
    (package / "src" / "sandstorm_acme" / "__init__.py").write_text(ADAPTER)
    (package / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    uv = _uv()

    def run(*args: str, cwd: Path = tmp_path) -> None:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"

    lock = tmp_path / "pylock.toml"
    ours = ("sandstorm-core", "sandstorm-testkit")
    no_emit = [f"--no-emit-package={name}" for name in ours]
    export = ["export", "--frozen", "--format", "pylock.toml", "--no-dev", *no_emit]
    run(uv, *export, "--package", "sandstorm-testkit", "-q", "-o", str(lock), cwd=ROOT)
    # fresh copies: uv keys wheels built from a directory on its path and pyproject mtime,
    # so installing the workspace dirs themselves could reuse a stale build
    copies = []
    for name in ours:
        copy = tmp_path / "src" / name
        shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        copies.append(str(copy))
    venv = tmp_path / "venv"
    run(uv, "venv", "-q", "-p", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(uv, "pip", "install", "-q", "-p", python, "-r", str(lock))
    run(uv, "pip", "install", "-q", "-p", python, *copies, str(package))

    ci = tmp_path / "acme-ci"
    ci.mkdir()
    (ci / "sandstorm.json").write_text(
        json.dumps({"root": str(tmp_path / "acme-state"), "templates": {"basic": {"setup": []}}})
    )
    done = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--sandstorm-provider=acme",
            "--sandstorm-config=sandstorm.json",
            "--hypothesis-profile=sandstorm-live",
            "--sandstorm-report=report.json",
            "-q",
        ],
        cwd=ci,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tail = "\n".join(done.stdout.splitlines()[-30:])
    assert done.returncode == 0, tail + done.stderr
    report = json.loads((ci / "report.json").read_text())
    assert report["provider"] == "acme"
    assert report["totals"]["failed"] == 0
    assert report["totals"]["passed"] >= 60, report["totals"]
    # the package really came from outside: the kit and core are site-packages copies
    where = subprocess.run(
        [
            python,
            "-c",
            "import sandstorm, sandstorm_testkit; print(sandstorm.__file__, "
            "sandstorm_testkit.__file__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where
    assert str(venv) in where
