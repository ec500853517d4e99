"""Git clone/status with the host git binary: local bare repos and loopback HTTP only."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import sandstorm
from sandstorm.local._git import clone, parse_porcelain_v2, scrub_credentials, status

IS_ROOT = os.geteuid() == 0
SANDBOX = (65534, 65534)
OWNER = SANDBOX if IS_ROOT else None
needs_root = pytest.mark.skipif(not IS_ROOT, reason="switching to the sandbox uid needs root")
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(*args: str, cwd: Path) -> str:
    """Run git as the test (host) user, trusting every directory."""
    return subprocess.run(
        ["git", "-c", "safe.directory=*", *args],
        cwd=cwd,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def shared() -> Iterator[Path]:
    """A temp dir the sandbox uid can read (pytest's tmp_path is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sandstorm-test-git-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bare(shared: Path) -> Path:
    """A bare repo with ``main`` (a, b, c .txt) and ``feature`` (plus f.txt)."""
    repo = shared / "origin.git"
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True, env=GIT_ENV
    )
    work = shared / "seed"
    git("clone", "-q", str(repo), str(work), cwd=shared)
    (work / "a.txt").write_text("alpha\n")
    (work / "b.txt").write_text("beta\n")
    (work / "c.txt").write_text("gamma gamma gamma\n")
    git("add", ".", cwd=work)
    git("commit", "-qm", "first", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    git("checkout", "-qb", "feature", cwd=work)
    (work / "f.txt").write_text("feature\n")
    git("add", "f.txt", cwd=work)
    git("commit", "-qm", "feature", cwd=work)
    git("push", "-q", "origin", "feature", cwd=work)
    shutil.rmtree(work)
    git("update-server-info", cwd=repo)  # for the dumb-HTTP server below
    return repo


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace files dir under a host dir the sandbox uid cannot enter (as in local)."""
    os.chmod(tmp_path, 0o700)
    files = tmp_path / "ws" / "files"
    files.mkdir(parents=True)
    os.chmod(tmp_path / "ws", 0o700)
    if IS_ROOT:
        os.chown(files, *SANDBOX)
    return files


def sha(repo: Path, ref: str) -> str:
    return git("rev-parse", ref, cwd=repo).strip()


# ------------------------------------------------------------------ clone


def test_clone_default_branch(bare: Path, workspace: Path) -> None:
    dest = workspace / "repo"
    clone(f"file://{bare}", dest, owner=OWNER, timeout=60)
    assert sorted(p.name for p in dest.iterdir()) == [".git", "a.txt", "b.txt", "c.txt"]
    assert (dest / "a.txt").read_text() == "alpha\n"
    st = status(dest, OWNER)
    assert st.branch == "main"
    assert st.commit == sha(bare, "main")
    assert st.clean


def test_clone_selected_branch_into_existing_empty_dir(bare: Path, workspace: Path) -> None:
    clone(str(bare), workspace, branch="feature", owner=OWNER, timeout=60)
    assert (workspace / "f.txt").read_text() == "feature\n"
    st = status(workspace, OWNER)
    assert st.branch == "feature"
    assert st.commit == sha(bare, "feature")


@needs_root
def test_cloned_files_belong_to_the_sandbox(bare: Path, workspace: Path) -> None:
    dest = workspace / "repo"
    clone(str(bare), dest, owner=SANDBOX, timeout=60)
    for path in [dest, *dest.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == SANDBOX, path


def test_unknown_branch_is_a_clear_error_and_leaves_nothing(bare: Path, workspace: Path) -> None:
    dest = workspace / "repo"
    with pytest.raises(sandstorm.WorkspaceError, match="nope") as info:
        clone(str(bare), dest, branch="nope", owner=OWNER, timeout=60)
    assert "git clone" in str(info.value)
    assert not dest.exists()
    with pytest.raises(sandstorm.WorkspaceError):
        clone(str(bare), workspace, branch="nope", owner=OWNER, timeout=60)
    assert workspace.is_dir()
    assert list(workspace.iterdir()) == []


def test_bad_arguments(bare: Path, workspace: Path) -> None:
    (workspace / "taken").mkdir()
    (workspace / "taken" / "x").write_text("x")
    if IS_ROOT:
        os.chown(workspace / "taken", *SANDBOX)
    with pytest.raises(sandstorm.WorkspaceError, match="not empty"):
        clone(str(bare), workspace / "taken", owner=OWNER)
    with pytest.raises(sandstorm.WorkspaceError, match="must not start with '-'"):
        clone("--upload-pack=touch /tmp/x", workspace / "r", owner=OWNER)
    with pytest.raises(sandstorm.WorkspaceError, match="branch"):
        clone(str(bare), workspace / "r", branch="--orphan", owner=OWNER)
    with pytest.raises(sandstorm.WorkspaceError, match="empty"):
        clone("  ", workspace / "r", owner=OWNER)
    assert not (workspace / "r").exists()


def test_ext_and_disallowed_protocols_refused(bare: Path, workspace: Path, shared: Path) -> None:
    marker = shared / "ext-ran"
    with pytest.raises(sandstorm.WorkspaceError):
        clone(f"ext::sh -c touch% {marker}", workspace / "r", owner=OWNER, timeout=30)
    assert not marker.exists()
    with pytest.raises(sandstorm.WorkspaceError, match=r"transport 'file' not allowed"):
        clone(f"file://{bare}", workspace / "r", owner=OWNER, timeout=30, protocols={"https"})
    with pytest.raises(sandstorm.WorkspaceError, match="cannot be allowed"):
        clone(f"file://{bare}", workspace / "r", owner=OWNER, protocols={"ext"})


@needs_root
def test_refuses_to_run_git_as_root(bare: Path, workspace: Path) -> None:
    with pytest.raises(sandstorm.WorkspaceError, match="as root"):
        clone(str(bare), workspace / "r", owner=None)
    with pytest.raises(sandstorm.WorkspaceError, match="as root"):
        clone(str(bare), workspace / "r", owner=(0, 0))
    assert not (workspace / "r").exists()


def test_shallow_clone(bare: Path, workspace: Path) -> None:
    clone(f"file://{bare}", workspace, branch="feature", owner=OWNER, timeout=60, depth=1)
    assert (workspace / ".git" / "shallow").exists()
    assert status(workspace, OWNER).branch == "feature"


# ------------------------------------------------------------------ status


def test_status_reports_changes(bare: Path, workspace: Path) -> None:
    clone(str(bare), workspace, owner=OWNER, timeout=60)
    (workspace / "a.txt").write_text("changed\n")
    (workspace / "b.txt").unlink()
    (workspace / "new.txt").write_text("new\n")
    (workspace / "staged.txt").write_text("staged\n")
    git("add", "staged.txt", cwd=workspace)
    git("mv", "c.txt", "renamed.txt", cwd=workspace)
    if IS_ROOT:
        subprocess.run(["chown", "-R", "65534:65534", str(workspace)], check=True)
    st = status(workspace, OWNER)
    assert st.branch == "main"
    assert not st.clean
    codes = {f.path: f.status for f in st.files}
    assert codes == {
        "a.txt": " M",
        "renamed.txt": "R ",
        "b.txt": " D",
        "staged.txt": "A ",
        "new.txt": "??",
    }


def test_status_ahead_of_upstream(bare: Path, workspace: Path) -> None:
    clone(str(bare), workspace, owner=OWNER, timeout=60)
    (workspace / "c.txt").write_text("c\n")
    git("add", "c.txt", cwd=workspace)
    git("commit", "-qm", "local", cwd=workspace)
    if IS_ROOT:
        subprocess.run(["chown", "-R", "65534:65534", str(workspace)], check=True)
    st = status(workspace, OWNER)
    assert (st.ahead, st.behind) == (1, 0)
    assert st.clean
    assert st.commit == sha(workspace, "HEAD")


def test_status_of_non_repository(workspace: Path) -> None:
    with pytest.raises(sandstorm.WorkspaceError, match="not a git repository"):
        status(workspace, OWNER)
    with pytest.raises(sandstorm.WorkspaceError, match="does not exist"):
        status(workspace / "missing", OWNER)


def test_status_never_runs_commands_from_repo_config(
    bare: Path, workspace: Path, shared: Path
) -> None:
    """fsmonitor, filter drivers and included config in .git/config must not execute."""
    clone(str(bare), workspace, owner=OWNER, timeout=60)
    drop = shared / "drop"
    drop.mkdir(mode=0o777)
    os.chmod(drop, 0o777)
    markers = {name: drop / name for name in ("fsmonitor", "clean", "included")}
    (workspace / "evil.cfg").write_text(f"[core]\n\tfsmonitor = touch {markers['included']}\n")
    with (workspace / ".git" / "config").open("a") as fh:
        fh.write(
            f"[core]\n\tfsmonitor = touch {markers['fsmonitor']}; false\n"
            f'[filter "evil"]\n\tclean = touch {markers["clean"]}; cat\n'
            f"[include]\n\tpath = {workspace / 'evil.cfg'}\n"
        )
    (workspace / ".gitattributes").write_text("* filter=evil\n")
    (workspace / "a.txt").write_text("touched so that git must hash it\n")
    if IS_ROOT:
        subprocess.run(["chown", "-R", "65534:65534", str(workspace)], check=True)
    st = status(workspace, OWNER)
    assert {f.path for f in st.files} == {"a.txt", ".gitattributes", "evil.cfg"}
    assert not [m for m in markers.values() if m.exists()], "a repo-config command ran"

    # control: an unhardened git status in the same repo does run them
    subprocess.run(
        ["git", "-c", "safe.directory=*", "status", "--porcelain"],
        cwd=workspace,
        env=GIT_ENV,
        capture_output=True,
        check=False,
    )
    assert [m for m in markers.values() if m.exists()], "control did not trigger"


def test_parse_porcelain_v2_edge_cases() -> None:
    out = (
        b"# branch.oid (initial)\0# branch.head (detached)\0"
        b"1 .M N... 100644 100644 100644 aaa aaa with space.txt\0"
        b"2 R. N... 100644 100644 100644 aaa aaa R100 new name\0old name\0"
        b"u UU N... 100644 100644 100644 100644 aaa bbb ccc conflict.txt\0"
        b"? untracked dir/\0"
    )
    st = parse_porcelain_v2(out)
    assert st.branch is None
    assert st.commit is None
    assert [(f.path, f.status) for f in st.files] == [
        ("with space.txt", " M"),
        ("new name", "R "),
        ("conflict.txt", "UU"),
        ("untracked dir/", "??"),
    ]


# ------------------------------------------------------------------ credentials


def test_scrub_credentials() -> None:
    text = "fatal: could not read https://alice:p%40ss@host/x and ssh://u:pw@h:22/y, token ghp_X"
    out = scrub_credentials(text, "ghp_X", "p@ss")
    assert "alice" not in out
    assert "p%40ss" not in out
    assert "pw@" not in out
    assert "ghp_X" not in out
    assert "https://***@host/x" in out
    assert scrub_credentials("https://a:b@c@host/x") == "https://***@host/x"


def test_ssh_password_never_reaches_git(workspace: Path) -> None:
    """git cannot use a password in an ssh URL; it must not land anywhere either."""
    with pytest.raises(sandstorm.WorkspaceError) as info:
        clone("ssh://git:hunter2pw@127.0.0.1:1/repo.git", workspace / "r", owner=OWNER,
              timeout=10, protocols={"file"})  # fmt: skip
    assert "hunter2pw" not in str(info.value)
    assert "ssh" in str(info.value)


def test_token_is_scrubbed_when_clone_fails(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "s3cretTOKENvalue"
    caplog.set_level(logging.DEBUG)
    for url in (
        f"http://bob:{secret}@127.0.0.1:{port}/repo.git",
        f"https://{secret}@127.0.0.1:{port}/repo.git",
        f"http://bob:{secret}@127.0.0.1:{port}/{secret}/repo.git",
    ):
        with pytest.raises(sandstorm.WorkspaceError) as info:
            clone(url, workspace / "r", owner=OWNER, timeout=30)
        exc = info.value
        assert secret not in str(exc)
        assert secret not in repr(exc)
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
        assert f"127.0.0.1:{port}" in str(exc)
    assert caplog.records, "expected a debug line per clone"
    assert not [r for r in caplog.records if secret in r.getMessage()]
    assert not (workspace / "r").exists()


class _AuthHandler(SimpleHTTPRequestHandler):
    expected = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def dumb_http(repo: Path, user: str, password: str) -> Iterator[int]:
    """Serve ``repo`` over git's dumb HTTP protocol on loopback, behind basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    handler = type("H", (_AuthHandler,), {"expected": f"Basic {token}"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(repo.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_clone_over_http_with_credentials_keeps_them_out_of_the_repo(
    bare: Path, workspace: Path
) -> None:
    secret = "tok3n-value-xyz"
    with dumb_http(bare, "bob", secret) as port:
        url = f"http://bob:{secret}@127.0.0.1:{port}/{bare.name}"
        clone(url, workspace / "ok", branch="feature", owner=OWNER, timeout=60)
        assert (workspace / "ok" / "f.txt").read_text() == "feature\n"
        config = (workspace / "ok" / ".git" / "config").read_text()
        assert secret not in config
        assert f"http://127.0.0.1:{port}/{bare.name}" in config
        for path in (workspace / "ok").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path

        wrong = f"http://bob:wrong-{secret}@127.0.0.1:{port}/{bare.name}"
        with pytest.raises(sandstorm.WorkspaceError) as info:
            clone(wrong, workspace / "bad", owner=OWNER, timeout=60)
        assert secret not in str(info.value)
        assert "wrong" not in str(info.value)
        assert not (workspace / "bad").exists()


def test_clone_timeout_kills_git(workspace: Path) -> None:
    """A server that accepts and never answers: the clone is killed at the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(sandstorm.WorkspaceError, match="timed out"):
            clone(f"http://127.0.0.1:{port}/r.git", workspace / "r", owner=OWNER, timeout=1)
        assert time.monotonic() - started < 5
    assert not (workspace / "r").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == []


# ------------------------------------------------------------------ workspace_root


def test_workspace_root_resolves_inside_and_refuses_escapes(
    bare: Path, workspace: Path, shared: Path
) -> None:
    outside = shared / "outside"
    outside.mkdir(mode=0o777)
    os.chmod(outside, 0o777)
    (workspace / "real").mkdir()
    os.symlink("real", workspace / "alias")
    os.symlink(str(outside), workspace / "escape")
    if IS_ROOT:
        subprocess.run(["chown", "-hR", "65534:65534", str(workspace)], check=True)

    clone(str(bare), workspace / "alias" / "repo", owner=OWNER, workspace_root=workspace)
    assert (workspace / "real" / "repo" / "a.txt").exists()
    st = status(workspace / "alias" / "repo", OWNER, workspace_root=workspace)
    assert st.branch == "main"

    for target in (workspace / "escape" / "repo", outside):
        with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
            clone(str(bare), target, owner=OWNER, workspace_root=workspace)
    assert list(outside.iterdir()) == []
    with pytest.raises(sandstorm.WorkspaceError, match="outside the workspace"):
        status(workspace / "escape", OWNER, workspace_root=workspace)


@needs_root
def test_refuses_directories_the_sandbox_does_not_own(bare: Path, workspace: Path) -> None:
    host_dir = workspace / "host-owned"
    host_dir.mkdir()  # owned by root
    with pytest.raises(sandstorm.WorkspaceError, match="not owned by the sandbox"):
        clone(str(bare), host_dir, owner=SANDBOX)
    assert host_dir.is_dir()

    keep = workspace / "keep"
    keep.mkdir()
    os.chown(keep, *SANDBOX)
    (keep / "precious.txt").write_text("keep me")
    with pytest.raises(sandstorm.WorkspaceError, match="not empty"):
        clone(str(bare), keep, owner=SANDBOX)
    assert (keep / "precious.txt").read_text() == "keep me"

    clone(str(bare), workspace / "repo", owner=SANDBOX)
    subprocess.run(["chown", "-R", "0:0", str(workspace / "repo")], check=True)
    with pytest.raises(sandstorm.WorkspaceError, match="not owned by the sandbox"):
        status(workspace / "repo", SANDBOX)
