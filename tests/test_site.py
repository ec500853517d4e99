"""The documentation site: built with ``mkdocs build --strict``, its reference complete.

``scripts/dev.py test`` builds the site once (into a temp dir, ``SANDSTORM_DOCS_SITE``)
before pytest; run alone, this module builds it itself.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = {
    "sandstorm",
    "sandstorm.adapters",
    "sandstorm.local",
    "sandstorm.mcp",
    "sandstorm.protocols",
    "sandstorm.router",
    "sandstorm_daytona",
    "sandstorm_daytona.emulator",
    "sandstorm_testkit",
}
"""Modules whose ``__all__`` is public API: each must be on the reference page."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: the one ``scripts/dev.py test`` built, else a fresh strict build."""
    given = os.environ.get("SANDSTORM_DOCS_SITE")
    if given and (Path(given) / "objects.inv").exists():
        return Path(given)
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def inventory(site: Path) -> set[str]:
    """The names in the site's ``objects.inv`` (Sphinx inventory v2)."""
    data = (site / "objects.inv").read_bytes()
    header, _, compressed = data.partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), header[:40]
    body = zlib.decompress(compressed).decode("utf-8")
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def reference_modules() -> set[str]:
    """The modules the reference page renders (its ``::: module`` lines)."""
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    return set(re.findall(r"^::: ([\w.]+)\s*$", text, re.MULTILINE))


def test_reference_page_covers_the_public_modules() -> None:
    assert reference_modules() >= PUBLIC_MODULES


def test_site_lists_every_public_name(site: Path) -> None:
    names = inventory(site)
    missing = [
        f"{module}.{name}"
        for module in sorted(reference_modules())
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in names
    ]
    assert missing == [], f"public names missing from the site's reference: {missing}"


def test_every_page_is_built(site: Path) -> None:
    pages = sorted(path.stem for path in (ROOT / "docs").glob("*.md"))
    built = [
        page for page in pages if (site / ("" if page == "index" else page) / "index.html").exists()
    ]
    assert built == pages
