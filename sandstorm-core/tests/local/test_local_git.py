"""Git clone/status, run as sandboxed code in the workspace: local bare repos and loopback HTTP.

No git process runs on the host for a workspace; these tests drive the provider's API.
"""

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
from sandstorm.local import LocalProvider
from sandstorm.local._git import clone_plan, parse_porcelain_v2, scrub_credentials

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


@pytest.fixture(scope="module")
def gp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandstorm.SyncProvider]:
    """A local provider of its own (git runs as sandboxed code of its workspaces)."""
    root = tmp_path_factory.mktemp("git-state")
    with sandstorm.get_provider("local", root=str(root)) as provider:
        yield provider


@pytest.fixture
def ws(gp: sandstorm.SyncProvider) -> Iterator[sandstorm.Workspace]:
    workspace = gp.create_workspace()
    yield workspace
    gp.delete_workspace(workspace)


@pytest.fixture
def workspace(gp: sandstorm.SyncProvider, ws: sandstorm.Workspace) -> Path:
    """The workspace's files directory, as the host sees it."""
    impl = gp.async_provider
    assert isinstance(impl, LocalProvider)
    return impl._store.files(ws.id)


def sha(repo: Path, ref: str) -> str:
    return git("rev-parse", ref, cwd=repo).strip()


def sh(gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, script: str) -> str:
    """Run ``script`` in the workspace (as its code); fail the test if it fails."""
    result = gp.run_in_workspace(ws, script, language="shell", env=dict(GIT_ENV, HOME="/tmp"))
    assert result.exit_code == 0, result.stderr
    return result.stdout


# ------------------------------------------------------------------ clone


def test_clone_default_branch(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    gp.git_clone(ws, f"file://{bare}", path="repo")
    dest = workspace / "repo"
    assert sorted(p.name for p in dest.iterdir()) == [".git", "a.txt", "b.txt", "c.txt"]
    assert (dest / "a.txt").read_text() == "alpha\n"
    st = gp.git_status(ws, "repo")
    assert st.branch == "main"
    assert st.commit == sha(bare, "main")
    assert st.clean


def test_clone_selected_branch_into_existing_empty_dir(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    gp.git_clone(ws, str(bare), branch="feature")
    assert (workspace / "f.txt").read_text() == "feature\n"
    st = gp.git_status(ws)
    assert st.branch == "feature"
    assert st.commit == sha(bare, "feature")


@needs_root
def test_cloned_files_belong_to_the_sandbox(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    gp.git_clone(ws, str(bare), path="repo")
    owner = {
        (p.lstat().st_uid, p.lstat().st_gid)
        for p in [workspace / "repo", *(workspace / "repo").rglob("*")]
    }
    assert owner == {(workspace.stat().st_uid, workspace.stat().st_gid)}
    assert owner != {(0, 0)}


def test_unknown_branch_is_a_clear_error_and_leaves_nothing(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    with pytest.raises(sandstorm.WorkspaceError, match="nope") as info:
        gp.git_clone(ws, str(bare), branch="nope", path="repo")
    assert "git clone" in str(info.value)
    assert not (workspace / "repo").exists()
    with pytest.raises(sandstorm.WorkspaceError):
        gp.git_clone(ws, str(bare), branch="nope")
    assert workspace.is_dir()
    assert list(workspace.iterdir()) == []


def test_bad_arguments(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    gp.write_file(ws, "taken/x", b"x")
    with pytest.raises(sandstorm.WorkspaceError, match="not empty"):
        gp.git_clone(ws, str(bare), path="taken")
    assert (workspace / "taken" / "x").read_bytes() == b"x"
    with pytest.raises(sandstorm.WorkspaceError, match="must not start with '-'"):
        gp.git_clone(ws, "--upload-pack=touch /tmp/x", path="r")
    with pytest.raises(sandstorm.WorkspaceError, match="branch"):
        gp.git_clone(ws, str(bare), branch="--orphan", path="r")
    with pytest.raises(sandstorm.WorkspaceError, match="empty"):
        gp.git_clone(ws, "  ", path="r")
    with pytest.raises(sandstorm.InvalidPath, match="climb above the workspace root"):
        gp.git_clone(ws, str(bare), path="../r")
    with pytest.raises(sandstorm.InvalidPath, match="relative to the workspace root"):
        gp.git_clone(ws, str(bare), path="/etc/r")
    assert not (workspace / "r").exists()


def test_ext_and_disallowed_protocols_refused(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, workspace: Path, shared: Path
) -> None:
    marker = shared / "ext-ran"
    with pytest.raises(sandstorm.WorkspaceError):
        gp.git_clone(ws, f"ext::sh -c touch% {marker}", path="r")
    with pytest.raises(sandstorm.WorkspaceError):
        gp.git_clone(ws, "ext::sh -c touch% ext-ran", path="r")
    assert not marker.exists()
    assert not (workspace / "ext-ran").exists()
    with pytest.raises(sandstorm.WorkspaceError, match="cannot be allowed"):
        clone_plan("file:///x", "./r", protocols={"ext"})
    plan = clone_plan("file:///", "./r", protocols={"https"})
    assert plan.fetch.env["GIT_ALLOW_PROTOCOL"] == "https"
    assert "protocol.file.allow" not in plan.fetch.script


def test_clone_options_reach_git(bare: Path) -> None:
    plan = clone_plan(str(bare), "./r", branch="feature", depth=1)
    assert "--depth 1" in plan.fetch.script
    assert "--branch feature" in plan.fetch.script
    with pytest.raises(sandstorm.WorkspaceError, match="depth"):
        clone_plan(str(bare), "./r", depth=0)


def test_local_source_is_read_only_and_needs_no_network(bare: Path) -> None:
    plan = clone_plan(str(bare), "./r")
    assert plan.fetch.read_only == (str(bare.resolve()),)
    assert not plan.fetch.host_network
    remote = clone_plan("https://example.invalid/r.git", "./r")
    assert remote.fetch.host_network
    assert not remote.fetch.read_only
    assert not remote.checkout.host_network
    with pytest.raises(sandstorm.WorkspaceError, match="no such local repository"):
        clone_plan("/nonexistent/repo.git", "./r")


def test_clone_source_stays_unchanged(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path
) -> None:
    before = sha(bare, "main")
    gp.git_clone(ws, str(bare), path="repo")
    out = gp.run_in_workspace(ws, f"touch {bare}/written 2>&1; echo rc=$?", language="shell")
    assert "rc=0" not in out.stdout
    assert not (bare / "written").exists()
    assert sha(bare, "main") == before


# ------------------------------------------------------------------ status


def test_status_reports_changes(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path
) -> None:
    gp.git_clone(ws, str(bare))
    sh(
        gp,
        ws,
        "set -e; echo changed > a.txt; rm b.txt; echo new > new.txt; echo staged > staged.txt;"
        "git add staged.txt; git mv c.txt renamed.txt",
    )
    st = gp.git_status(ws)
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


def test_status_ahead_of_upstream(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    gp.git_clone(ws, str(bare))
    sh(gp, ws, "set -e; echo c > c.txt; git add c.txt; git commit -qm local")
    st = gp.git_status(ws)
    assert (st.ahead, st.behind) == (1, 0)
    assert st.clean
    assert st.commit == sh(gp, ws, "git rev-parse HEAD").strip()


def test_status_of_non_repository(gp: sandstorm.SyncProvider, ws: sandstorm.Workspace) -> None:
    with pytest.raises(sandstorm.WorkspaceError, match="not a git repository"):
        gp.git_status(ws)
    with pytest.raises(sandstorm.WorkspaceError, match="does not exist"):
        gp.git_status(ws, "missing")


def test_status_hardening_and_sandbox(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path, shared: Path
) -> None:
    """fsmonitor and included config do not run; a filter driver runs, but only sandboxed."""
    gp.git_clone(ws, str(bare))
    drop = shared / "drop"
    drop.mkdir(mode=0o777)
    os.chmod(drop, 0o777)
    host = {name: drop / name for name in ("fsmonitor", "clean", "included")}
    sh(
        gp,
        ws,
        f"""set -e
printf '[core]\\n\\tfsmonitor = "id > {host["included"]}; id > inc.ran"\\n' > evil.cfg
cat >> .git/config <<'EOF2'
[core]
\tfsmonitor = "id > {host["fsmonitor"]}; id > fsmonitor.ran; false"
[filter "evil"]
\tclean = "id > {host["clean"]} 2>/dev/null; (id; hostname) > clean.ran; cat"
[include]
\tpath = evil.cfg
EOF2
echo '* filter=evil' > .gitattributes
echo 'touched so that git must hash it' > a.txt
""",
    )
    st = gp.git_status(ws)
    assert {"a.txt", ".gitattributes", "evil.cfg"} <= {f.path for f in st.files}
    assert not [m for m in host.values() if m.exists()], "a repo-config command reached the host"
    assert not (workspace / "fsmonitor.ran").exists()
    assert not (workspace / "inc.ran").exists()
    # the filter is the repository's own business: it ran, inside the sandbox
    ran = (workspace / "clean.ran").read_text()
    assert "uid=0(" not in ran
    assert ran.split()[-1] == "sandbox"


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


def test_ssh_password_never_reaches_git() -> None:
    """git cannot use a password in an ssh URL; it must not land anywhere either."""
    plan = clone_plan("ssh://git:hunter2pw@127.0.0.1:1/repo.git", "./r")
    assert "hunter2pw" not in plan.fetch.script
    assert "hunter2pw" not in plan.shown
    assert "hunter2pw" not in repr(plan.fetch)
    assert plan.secrets == ("hunter2pw",)


def test_token_is_scrubbed_when_clone_fails(
    gp: sandstorm.SyncProvider,
    ws: sandstorm.Workspace,
    workspace: Path,
    caplog: pytest.LogCaptureFixture,
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
            gp.git_clone(ws, url, path="r")
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
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path
) -> None:
    """The workspace's network is blocked: the fetch alone gets the host's (loopback here)."""
    secret = "tok3n-value-xyz"
    with dumb_http(bare, "bob", secret) as port:
        url = f"http://bob:{secret}@127.0.0.1:{port}/{bare.name}"
        gp.git_clone(ws, url, branch="feature", path="ok")
        assert (workspace / "ok" / "f.txt").read_text() == "feature\n"
        config = (workspace / "ok" / ".git" / "config").read_text()
        assert secret not in config
        assert f"http://127.0.0.1:{port}/{bare.name}" in config
        for path in (workspace / "ok").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        # the workspace's own code still has no network
        probe = gp.run_in_workspace(
            ws, "git -C ok fetch -q origin 2>&1; echo rc=$?", language="shell"
        )
        assert "rc=0" not in probe.stdout

        wrong = f"http://bob:wrong-{secret}@127.0.0.1:{port}/{bare.name}"
        with pytest.raises(sandstorm.WorkspaceError) as info:
            gp.git_clone(ws, wrong, path="bad")
        assert secret not in str(info.value)
        assert "wrong" not in str(info.value)
        assert not (workspace / "bad").exists()


def test_clone_timeout_kills_git(tmp_path: Path) -> None:
    """A server that accepts and never answers: the clone is killed at the timeout."""
    with (
        sandstorm.get_provider("local", root=str(tmp_path / "state"), git_timeout=1) as gp,
        socket.socket() as listener,
    ):
        ws = gp.create_workspace()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(sandstorm.WorkspaceError, match="timed out"):
            gp.git_clone(ws, f"http://127.0.0.1:{port}/r.git", path="r")
        assert time.monotonic() - started < 5
        impl = gp.async_provider
        assert isinstance(impl, LocalProvider)
        assert not (impl._store.files(ws.id) / "r").exists()
        leftovers = subprocess.run(
            ["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True, check=False
        ).stdout.split()
        assert leftovers == []


def test_paths_resolve_inside_the_sandbox(
    gp: sandstorm.SyncProvider, ws: sandstorm.Workspace, bare: Path, workspace: Path, shared: Path
) -> None:
    """A symlink in the workspace is followed by git inside the sandbox, never by the host."""
    outside = shared / "outside"
    outside.mkdir(mode=0o755)
    sh(gp, ws, f"mkdir real && ln -s real alias && ln -s {outside} escape")
    gp.git_clone(ws, str(bare), path="alias/repo")
    assert (workspace / "real" / "repo" / "a.txt").exists()
    assert gp.git_status(ws, "alias/repo").branch == "main"
    with pytest.raises(sandstorm.WorkspaceError):
        gp.git_clone(ws, str(bare), path="escape/repo")
    assert list(outside.iterdir()) == []
    # paths are relative to the workspace; a host path means nothing inside it
    with pytest.raises(sandstorm.InvalidPath, match="relative to the workspace root"):
        gp.git_status(ws, str(workspace / "alias" / "repo"))
