"""Files, snapshots, git and templates through the LocalProvider's public API."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandstorm
from sandstorm import Capability, TemplateNotFound, WorkspaceError


def test_declared_capabilities() -> None:
    from sandstorm.local import LocalProvider

    assert LocalProvider.capabilities >= {
        Capability.FILES,
        Capability.SNAPSHOTS,
        Capability.GIT,
        Capability.TEMPLATES,
        Capability.PERSISTENCE,
        Capability.METRICS,
        Capability.NETWORK_POLICY,
        Capability.STREAMING,
        Capability.RESOURCE_LIMITS,
    }
    assert Capability.COST not in LocalProvider.capabilities


def test_files_written_by_host_are_usable_by_code(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    lp.write_file(ws, "pkg/data.txt", "from host")
    result = lp.run_in_workspace(
        ws,
        "print(open('pkg/data.txt').read())\n"
        "open('pkg/data.txt', 'a').write(' and code')\n"
        "open('pkg/new.bin', 'wb').write(bytes(range(256)))",
    )
    assert result.stdout == "from host\n", result.stderr
    assert lp.read_file(ws, "pkg/data.txt") == b"from host and code"
    assert lp.read_file(ws, "pkg/new.bin") == bytes(range(256))
    names = sorted(info.name for info in lp.list_files(ws, "pkg"))
    assert names == ["data.txt", "new.bin"]
    lp.delete_file(ws, "pkg")
    assert lp.list_files(ws) == []
    with pytest.raises(WorkspaceError):
        lp.read_file(ws, "../../meta.json")


def test_workspace_state_persists_between_runs(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace(name="keep", labels={"team": "a"}, env={"MODE": "test"})
    lp.run_in_workspace(ws, "open('counter', 'w').write('1')")
    result = lp.run_in_workspace(ws, "import os; print(open('counter').read(), os.environ['MODE'])")
    assert result.stdout == "1 test\n"
    found = {w.id: w for w in lp.list_workspaces()}
    assert found[ws.id].name == "keep"
    assert found[ws.id].labels == {"team": "a"}
    lp.delete_workspace(ws)
    with pytest.raises(sandstorm.WorkspaceNotFound):
        lp.run_in_workspace(ws.id, "print(1)")


def test_snapshot_and_restore_round_trip(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    lp.run_in_workspace(
        ws,
        "import os\n"
        "os.makedirs('empty/dir')\n"
        "open('bin', 'wb').write(bytes(range(256)) * 10)\n"
        "os.symlink('bin', 'link')\n"
        "os.chmod('bin', 0o600)\n",
    )
    snap = lp.snapshot(ws, name="v1")
    assert snap.workspace_id == ws.id
    assert snap.size > 0
    assert snap.id in {s.id for s in lp.list_snapshots()}
    lp.run_in_workspace(ws, "open('bin', 'wb').write(b'changed')")
    restored = lp.restore(snap)
    assert restored.id != ws.id
    check = lp.run_in_workspace(
        restored,
        "import os, stat\n"
        "print(open('bin', 'rb').read() == bytes(range(256)) * 10)\n"
        "print(os.readlink('link'), oct(stat.S_IMODE(os.stat('bin').st_mode)))\n"
        "print(os.path.isdir('empty/dir'))\n"
        "open('bin', 'ab').write(b'writable')\n",
    )
    assert check.stdout == "True\nbin 0o600\nTrue\n", check.stderr
    lp.delete_snapshot(snap)
    assert snap.id not in {s.id for s in lp.list_snapshots()}


@pytest.fixture
def bare_repo() -> Iterator[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = Path(tempfile.mkdtemp(prefix="sandstorm-wiring-git-"))
    os.chmod(base, 0o755)
    try:
        work = base / "work"
        work.mkdir()
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
        }
        for args in (["init", "-q", "-b", "main"], ["checkout", "-q", "-b", "main"]):
            subprocess.run(["git", *args], cwd=work, env=env, check=False, capture_output=True)
        (work / "hello.py").write_text("print('from git')\n")
        subprocess.run(["git", "add", "."], cwd=work, env=env, check=True)
        subprocess.run(["git", "commit", "-qm", "init"], cwd=work, env=env, check=True)
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(work), str(base / "repo.git")], env=env, check=True
        )
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
        yield f"file://{base / 'repo.git'}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_git_clone_then_run(lp: sandstorm.SyncProvider, bare_repo: str) -> None:
    result = lp.run("exec(open('hello.py').read())", git_repo=bare_repo, git_branch="main")
    assert result.stdout == "from git\n", result.stderr
    ws = lp.create_workspace()
    lp.git_clone(ws, bare_repo, path="src")
    assert lp.git_status(ws, "src").clean
    lp.run_in_workspace(ws, "open('src/hello.py', 'a').write('# edit\\n')")
    status = lp.git_status(ws, "src")
    assert [(f.path, f.status.strip()) for f in status.files] == [("hello.py", "M")]


def test_templates(local_root: Path, tmp_path: Path) -> None:
    template_dir = tmp_path / "tpl"
    (template_dir / "lib").mkdir(parents=True)
    (template_dir / "lib" / "util.py").write_text("VALUE = 42\n")
    templates = {
        "pyproj": {"directory": str(template_dir), "setup": ["echo ready > setup.txt"]},
        "broken": {"setup": ["exit 3"]},
    }
    seen: list[tuple[str, object]] = []

    class Watcher:
        @sandstorm.hookimpl
        def sandstorm_before_run(self, provider: object, workspace: object, request: Any) -> None:
            seen.append(("before_run", request.code))

        @sandstorm.hookimpl
        def sandstorm_audit(self, event: sandstorm.AuditEvent) -> None:
            seen.append((event.action, event.details.get("exit_code")))

    watcher, manager = Watcher(), sandstorm.plugin_manager()
    with sandstorm.get_provider(
        "local", root=str(local_root / "tpl"), templates=templates
    ) as provider:
        manager.register(watcher)
        try:
            ws = provider.create_workspace(template="pyproj")
        finally:
            manager.unregister(watcher)
        # the template's setup is a run like any other: hooked and audited
        assert seen == [
            ("before_run", "echo ready > setup.txt"),
            ("run", 0),
            ("workspace.create", None),
        ]
        assert ws.template == "pyproj"
        result = provider.run_in_workspace(
            ws,
            "import sys; sys.path.insert(0, 'lib'); import util\n"
            "print(util.VALUE, open('setup.txt').read().strip())",
        )
        assert result.stdout == "42 ready\n", result.stderr
        one_shot = provider.run("print(open('lib/util.py').read())", workspace_template="pyproj")
        assert one_shot.stdout == "VALUE = 42\n\n"
        with pytest.raises(TemplateNotFound, match="broken, pyproj"):
            provider.create_workspace(template="nope")
        before = len(provider.list_workspaces())
        with pytest.raises(WorkspaceError, match="exit code 3"):
            provider.create_workspace(template="broken")
        assert len(provider.list_workspaces()) == before
        for workspace in provider.list_workspaces():
            provider.delete_workspace(workspace)
