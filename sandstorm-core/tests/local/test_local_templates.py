"""Workspace templates: config parsing, clear errors, and a faithful, owned copy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local._templates import Template, TemplateRegistry

IS_ROOT = os.geteuid() == 0
SANDBOX = (65534, 65534)
needs_root = pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")


def owner() -> tuple[int, int] | None:
    return SANDBOX if IS_ROOT else None


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    src = tmp_path / "tpl"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    os.chmod(src / "bin" / "tool", 0o755)
    (src / "secret.cfg").write_text("key=1\n")
    os.chmod(src / "secret.cfg", 0o600)
    (src / "data.bin").write_bytes(bytes(range(256)) * 100)
    (src / "empty").mkdir()
    (src / "locked").mkdir()
    (src / "locked" / "f").write_text("f")
    os.chmod(src / "locked", 0o550)
    os.symlink("bin/tool", src / "tool-link")
    os.symlink("/usr/bin/env", src / "abs-link")
    os.link(src / "data.bin", src / "data-hard.bin")
    return src


@pytest.fixture
def registry(template_dir: Path) -> TemplateRegistry:
    return TemplateRegistry.from_config(
        {
            "data": {
                "directory": str(template_dir),
                "setup": ["echo one > one.txt", "ls -la"],
                "description": "data science starter",
            },
            "bare": {"setup": ["mkdir -p out"]},
            "shorthand": str(template_dir),
        }
    )


def snapshot_tree(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def test_registry_from_config(registry: TemplateRegistry, template_dir: Path) -> None:
    assert registry.names() == ["bare", "data", "shorthand"]
    data = registry.get("data")
    assert data.directory == template_dir
    assert data.setup == ["echo one > one.txt", "ls -la"]
    assert data.description == "data science starter"
    assert registry.get("shorthand").directory == template_dir
    assert registry.get("bare").directory is None
    assert "data" in registry
    assert len(registry) == 3
    assert [t.name for t in registry] == ["bare", "data", "shorthand"]


def test_unknown_template_lists_known_ones(registry: TemplateRegistry, tmp_path: Path) -> None:
    with pytest.raises(sandstorm.TemplateNotFound) as info:
        registry.get("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "bare, data, shorthand" in message
    assert info.value.known == ["bare", "data", "shorthand"]
    assert isinstance(info.value, LookupError)
    with pytest.raises(sandstorm.TemplateNotFound):
        registry.materialize("nope", tmp_path, owner())
    empty = TemplateRegistry()
    with pytest.raises(sandstorm.TemplateNotFound, match="none are configured"):
        empty.get("x")


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"bad name!": {}}, "template name"),
        ({"x": {"setup": "echo not a list"}}, "setup"),
        ({"x": {"setup": ["  "]}}, "must not be empty"),
        ({"x": {"directory": "/t", "colour": "red"}}, "colour"),
        ({"x": 42}, "expected a mapping"),
        ({"x": Template(name="y")}, "named 'y'"),
    ],
)
def test_invalid_config_is_a_clear_error(config: dict[str, object], match: str) -> None:
    with pytest.raises(sandstorm.ProviderConfigError, match=match) as info:
        TemplateRegistry.from_config(config)
    assert "template" in str(info.value)


def test_duplicate_names_refused() -> None:
    with pytest.raises(sandstorm.ProviderConfigError, match="twice"):
        TemplateRegistry([Template(name="a"), Template(name="a")])


def test_materialize_copies_faithfully(
    registry: TemplateRegistry, template_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "ws" / "files"
    dest.mkdir(parents=True)
    os.chmod(dest, 0o751)
    setup = registry.materialize("data", dest, owner())
    assert setup == ["echo one > one.txt", "ls -la"]
    assert snapshot_tree(dest) == snapshot_tree(template_dir)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o751, "the workspace root mode is kept"
    assert (dest / "data.bin").stat().st_ino == (dest / "data-hard.bin").stat().st_ino
    assert (dest / "data.bin").stat().st_ino != (template_dir / "data.bin").stat().st_ino
    # the returned list is a copy: changing it does not change the template
    setup.append("rm -rf /")
    assert registry.get("data").setup == ["echo one > one.txt", "ls -la"]


def test_materialize_without_directory_returns_setup(
    registry: TemplateRegistry, tmp_path: Path
) -> None:
    dest = tmp_path / "files"
    dest.mkdir()
    assert registry.materialize("bare", dest, owner()) == ["mkdir -p out"]
    assert list(dest.iterdir()) == []


def test_missing_template_directory(tmp_path: Path) -> None:
    reg = TemplateRegistry.from_config({"gone": {"directory": str(tmp_path / "gone")}})
    dest = tmp_path / "files"
    dest.mkdir()
    with pytest.raises(sandstorm.WorkspaceError, match="does not exist"):
        reg.materialize("gone", dest, owner())


def test_materialize_does_not_follow_planted_symlinks(template_dir: Path, tmp_path: Path) -> None:
    """A symlink already in the destination is replaced, never followed outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "files"
    dest.mkdir()
    os.symlink(outside, dest / "bin")
    reg = TemplateRegistry([Template(name="t", directory=template_dir)])
    reg.materialize("t", dest, owner())
    assert list(outside.iterdir()) == []
    assert not (dest / "bin").is_symlink()
    assert (dest / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho tool\n"


@needs_root
def test_materialized_entries_belong_to_the_sandbox(
    registry: TemplateRegistry, tmp_path: Path
) -> None:
    dest = tmp_path / "files"
    dest.mkdir()
    os.chown(dest, *SANDBOX)
    registry.materialize("data", dest, SANDBOX)
    entries = list(dest.rglob("*"))
    assert len(entries) == 10
    for path in entries:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == SANDBOX, path


def test_template_and_provider_binds_are_shown_read_only(tmp_path: Path) -> None:
    """A template's ``binds`` (and the provider's ``read_only_binds``) appear read-only
    at the same path, only where configured; nothing else of the host does."""
    venv = tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "lib" / "pkg.py").write_text("VALUE = 42\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("shared data\n")
    for path in (tmp_path, venv, venv / "lib", shared):
        os.chmod(path, 0o755)
    for path in (venv / "lib" / "pkg.py", shared / "data.txt"):
        os.chmod(path, 0o644)
    code = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(venv / 'lib')!r})\n"
        "try:\n"
        "    import pkg; print('pkg', pkg.VALUE)\n"
        "except ImportError:\n"
        "    print('pkg absent')\n"
        f"print(open({str(shared / 'data.txt')!r}).read().strip())\n"
        "try:\n"
        f"    open({str(venv / 'lib' / 'new.py')!r}, 'w')\n"
        "except OSError as exc:\n"
        "    print('write refused', exc.errno)\n"
    )
    with sandstorm.get_provider(
        "local",
        root=str(tmp_path / "state"),
        templates={"venv": {"binds": [str(venv)]}},
        read_only_binds=[str(shared)],
    ) as provider:
        plain = provider.run(code)
        with_venv = provider.run(code, workspace_template="venv")
    assert plain.stdout.splitlines()[:2] == ["pkg absent", "shared data"]
    lines = with_venv.stdout.splitlines()
    assert lines[:2] == ["pkg 42", "shared data"], with_venv.stderr
    assert lines[2] == "write refused 30"  # EROFS
