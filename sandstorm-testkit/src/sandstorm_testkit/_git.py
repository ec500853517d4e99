"""Git: clone a repository the test made itself (a local bare repo) into a workspace."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandstorm import AsyncProvider, Capability, SandstormError, Workspace

from ._base import AsyncContract
from ._helpers import run_json, show

__all__ = ["GitContract", "GitRepo", "make_git_repo"]


@dataclass(frozen=True)
class GitRepo:
    """A bare repository: ``main`` with README.md and data.bin, ``feature`` adds feature.txt."""

    url: str
    main_commit: str
    feature_commit: str
    readme: str = "# sandstorm testkit repo\n"
    data: bytes = bytes(range(256))
    feature: str = "feature branch file\n"


def _git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "sandstorm-testkit",
        "GIT_AUTHOR_EMAIL": "testkit@sandstorm.invalid",
        "GIT_COMMITTER_NAME": "sandstorm-testkit",
        "GIT_COMMITTER_EMAIL": "testkit@sandstorm.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def make_git_repo(root: Path) -> GitRepo:
    """Build the kit's test repository under ``root``; needs ``git`` on PATH."""
    if shutil.which("git") is None:
        pytest.fail("the git contract needs the `git` command on the test machine", pytrace=False)
    work = root / "work"
    work.mkdir(parents=True, mode=0o755)
    repo = GitRepo(url="", main_commit="", feature_commit="")
    _git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text(repo.readme)
    (work / "data.bin").write_bytes(repo.data)
    _git(work, "add", "README.md", "data.bin")
    _git(work, "commit", "-q", "-m", "initial")
    main = _git(work, "rev-parse", "HEAD")
    _git(work, "checkout", "-q", "-b", "feature")
    (work / "feature.txt").write_text(repo.feature)
    _git(work, "add", "feature.txt")
    _git(work, "commit", "-q", "-m", "feature")
    feature = _git(work, "rev-parse", "HEAD")
    _git(work, "checkout", "-q", "main")
    bare = root / "repo.git"
    _git(root, "clone", "-q", "--bare", str(work), str(bare))
    return GitRepo(url=bare.as_uri(), main_commit=main, feature_commit=feature)


READ_REPO = (
    "import hashlib, json, os\n"
    "def read(p):\n"
    "    try:\n        return open(p, 'rb').read()\n"
    "    except FileNotFoundError:\n        return None\n"
    "base = {base!r}\n"
    "readme, data, feature = (read(os.path.join(base, n)) for n in "
    "('README.md', 'data.bin', 'feature.txt'))\n"
    "print(json.dumps([readme and readme.decode(), data and data.hex(), "
    "feature and feature.decode()]))"
)


@pytest.mark.requires(Capability.GIT)
class GitContract(AsyncContract):
    """Clone by URL and branch, report status, and seed one-shot runs.

    Override ``git_repo`` when the provider cannot reach a repository on the test
    machine's filesystem (serve an equivalent repository somewhere it can reach).
    """

    @pytest.fixture
    def git_repo(self) -> Iterator[GitRepo]:
        """The repository to clone (default: a world-readable bare repo in a temp dir).

        Readable by every user because a provider may clone as an unprivileged uid.
        """
        root = Path(tempfile.mkdtemp(prefix="sstk-git-"))
        try:
            root.chmod(0o755)
            yield make_git_repo(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    async def test_clone_default_branch(
        self, provider: AsyncProvider, workspace: Workspace, git_repo: GitRepo
    ) -> None:
        await provider.git_clone(workspace, git_repo.url, path="repo")
        got = await run_json(provider, workspace, READ_REPO.format(base="repo"))
        assert got == [git_repo.readme, git_repo.data.hex(), None]

    async def test_clone_branch(
        self, provider: AsyncProvider, workspace: Workspace, git_repo: GitRepo
    ) -> None:
        await provider.git_clone(workspace, git_repo.url, branch="feature", path="feat")
        got = await run_json(provider, workspace, READ_REPO.format(base="feat"))
        assert got == [git_repo.readme, git_repo.data.hex(), git_repo.feature]

    async def test_status_clean_then_changed(
        self, provider: AsyncProvider, workspace: Workspace, git_repo: GitRepo
    ) -> None:
        await provider.git_clone(workspace, git_repo.url, path="st")
        status = await provider.git_status(workspace, "st")
        assert status.branch == "main"
        assert status.commit == git_repo.main_commit
        assert status.clean, status
        result = await provider.run_in_workspace(
            workspace,
            "open('st/README.md', 'a').write('more\\n'); open('st/new.txt', 'w').write('n')",
        )
        assert result.exit_code == 0, show(result)
        changed = await provider.git_status(workspace, "st")
        assert not changed.clean
        assert {f.path for f in changed.files} == {"README.md", "new.txt"}

    async def test_one_shot_run_with_git_repo(
        self, provider: AsyncProvider, git_repo: GitRepo
    ) -> None:
        result = await provider.run(
            READ_REPO.format(base="."), git_repo=git_repo.url, git_branch="feature", timeout=120
        )
        assert result.exit_code == 0, show(result)
        got = json.loads(result.stdout.strip().splitlines()[-1])
        assert got == [git_repo.readme, git_repo.data.hex(), git_repo.feature], show(result)

    async def test_clone_of_missing_repository_raises(
        self, provider: AsyncProvider, workspace: Workspace, tmp_path: Path
    ) -> None:
        with pytest.raises(SandstormError):
            await provider.git_clone(workspace, (tmp_path / "no-such-repo.git").as_uri(), path="x")
