"""The three wheels, built from this repository, install in a fresh venv and run the docs.

Offline: the third-party dependencies come from uv's cache, pinned by ``uv.lock`` (the
wheels ``uv sync`` fetched), the three packages from the wheels ``uv build`` makes here.
The quickstart's first example and the README's first example then run unchanged, each in
a fresh interpreter: they must print what their ``# ->`` comments say, write nothing to
stderr (no "Task exception was never retrieved") and leave no workspace behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sandstorm-core", "sandstorm-daytona", "sandstorm-testkit")
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
ARROW = re.compile(r"#\s*->\s*(.*)$", re.MULTILINE)


def first_python_block(page: Path) -> str:
    """The first ```python block of a Markdown page."""
    found = FENCE.search(page.read_text(encoding="utf-8"))
    assert found, f"{page} has no python block"
    return found.group(1)


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _leftovers(root: Path) -> list[str]:
    workspaces = root / "workspaces"
    places = [workspaces, workspaces / ".trash", workspaces / ".spare", root / "trash"]
    return sorted(
        str(entry.relative_to(root))
        for place in places
        if place.is_dir()
        for entry in place.iterdir()
        if entry.name not in (".trash", ".spare")
    )


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the three wheels and their pinned dependencies; its python."""
    work = tmp_path_factory.mktemp("wheels")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    uv = _uv()

    def run(*args: str) -> None:
        done = subprocess.run(
            args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"

    dist = work / "dist"
    run(*uv, "build", "--all-packages", "--wheel", "-q", "-o", str(dist))
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == [p.replace("-", "_") for p in PACKAGES]
    lock = work / "pylock.toml"
    export = ["export", "--frozen", "--format", "pylock.toml", "--no-dev", "--all-packages"]
    run(*uv, *export, "--no-emit-workspace", "-q", "-o", str(lock))
    venv = work / "venv"
    run(*uv, "venv", "-q", "-p", sys.executable, str(venv))
    python = venv / "bin" / "python"
    run(*uv, "pip", "install", "-q", "-p", str(python), "-r", str(lock))
    run(
        *uv, "pip", "install", "-q", "-p", str(python), "--find-links", str(dist), *map(str, wheels)
    )
    return python


@pytest.mark.parametrize("page", ["docs/quickstart.md", "README.md"])
def test_first_example_runs_from_the_wheels(fresh_venv: Path, page: str, tmp_path: Path) -> None:
    code = first_python_block(ROOT / page)
    root = tmp_path / "state"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SANDSTORM_LOCAL_ROOT": str(root),
    }
    done = subprocess.run(
        [str(fresh_venv), "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for expected in ARROW.findall(code):
        assert expected.strip() in done.stdout, (expected, done.stdout)
    assert _leftovers(root) == []


def test_the_venv_holds_only_the_wheels(fresh_venv: Path) -> None:
    """The packages come from the wheels (not this checkout), all three, with their CLIs."""
    check = (
        "import sandstorm, sandstorm_daytona, sandstorm_testkit, pathlib, sys\n"
        "for module in (sandstorm, sandstorm_daytona, sandstorm_testkit):\n"
        "    assert pathlib.Path(module.__file__).is_relative_to(sys.prefix), module\n"
        "print(sorted(entry.name for entry in sandstorm.installed_providers()))\n"
    )
    done = subprocess.run(
        [str(fresh_venv), "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "'daytona'" in done.stdout
    assert "'local'" in done.stdout
    for command in ("sandstorm", "sandstorm-daytona"):
        assert (fresh_venv.parent / command).exists()
