"""The official sync ``daytona`` SDK against the emulator over a real loopback socket."""

from __future__ import annotations

import time

import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    DaytonaAuthenticationError,
    DaytonaError,
    DaytonaNotFoundError,
    ListSandboxesQuery,
    SessionExecuteRequest,
)
from daytona.common.errors import DaytonaBadRequestError

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A, README, repo_url


def test_emulator_protocol_script(emu: RunningEmulator, bare_repo) -> None:  # type: ignore[no-untyped-def]
    """PROTOCOL.md §10, unchanged: create, code_run, exec, upload, download, clone, delete."""
    from daytona import Daytona, DaytonaConfig

    daytona = Daytona(DaytonaConfig(api_key=KEY_A, api_url=emu.api_url))
    s = daytona.create()
    assert s.state == "started"
    assert s.labels["code-toolbox-language"] == "python"
    assert s.toolbox_proxy_url == emu.base_url + "/toolbox"
    run = s.process.code_run("print(6*7)")
    assert (run.exit_code, run.result) == (0, "42\n")
    execd = s.process.exec("echo hi")
    assert (execd.exit_code, execd.result) == (0, "hi\n")
    s.fs.upload_file(b"x", "a.txt")
    assert s.fs.download_file("a.txt") == b"x"
    s.git.clone(repo_url(emu, s, bare_repo), "repo")
    assert s.fs.download_file("repo/README.md") == README
    workspace_id = emu.emulator.sandboxes[s.id].workspace_id
    daytona.delete(s)
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(s.id)
    assert workspace_id is not None
    assert all(r.workspace_id != workspace_id for r in emu.emulator.sandboxes.values())


def test_emulator_exec_combines_streams_cwd_env_and_exit_codes(sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.fs.create_folder("sub", "755")
    out = sandbox.process.exec("echo out; echo err >&2; pwd; echo $A", cwd="sub", env={"A": "1"})
    lines = out.result.splitlines()
    assert lines[:2] == ["out", "err"]
    assert lines[2].endswith("/sub")
    assert lines[3] == "1"
    assert sandbox.process.exec("exit 3").exit_code == 3
    # syntax errors are the command's failure, not the wrapper's
    bad = sandbox.process.exec("fi")  # ("if then fi" is valid zsh)
    assert bad.exit_code != 0


def test_emulator_exec_timeout_maps_to_sdk_timeout(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona.common.errors import DaytonaTimeoutError

    started = time.monotonic()
    with pytest.raises(DaytonaTimeoutError):
        sandbox.process.exec("sleep 30", timeout=1)
    assert time.monotonic() - started < 10


def test_emulator_code_run_argv_env_and_errors(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona import CodeRunParams

    r = sandbox.process.code_run(
        "import sys, os; print(sys.argv[1:], os.environ['B'])",
        CodeRunParams(argv=["x", "y z"], env={"B": "2"}),
    )
    assert r.exit_code == 0
    assert r.result == "['x', 'y z'] 2\n"
    boom = sandbox.process.code_run("print('before'); raise ValueError('boom')")
    assert boom.exit_code == 1
    assert boom.result.startswith("before\n")
    assert "ValueError: boom" in boom.result


def test_emulator_sessions_keep_state_and_separate_streams(sandbox) -> None:  # type: ignore[no-untyped-def]
    p = sandbox.process
    p.create_session("s1")
    first = p.execute_session_command(
        "s1",
        SessionExecuteRequest(
            command="mkdir -p w && cd w && export FOO=bar && echo o && echo e >&2"
        ),
    )
    assert (first.exit_code, first.stdout, first.stderr) == (0, "o\n", "e\n")
    second = p.execute_session_command("s1", SessionExecuteRequest(command="pwd; echo $FOO"))
    assert second.stdout.splitlines()[0].endswith("/w")
    assert second.stdout.splitlines()[1] == "bar"
    logs = p.get_session_command_logs("s1", first.cmd_id)
    assert (logs.stdout, logs.stderr) == ("o\n", "e\n")
    assert logs.output == "o\ne\n"
    session = p.get_session("s1")
    assert [c.id for c in session.commands] == [first.cmd_id, second.cmd_id]
    assert [c.exit_code for c in session.commands] == [0, 0]
    assert "s1" in [s.session_id for s in p.list_sessions()]
    # the session's bookkeeping stays out of listings
    assert all(not f.name.startswith(".daytona") for f in sandbox.fs.list_files("."))
    p.delete_session("s1")
    with pytest.raises(DaytonaError):
        p.get_session("s1")


def test_emulator_session_async_command_and_log_follow(sandbox) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    p = sandbox.process
    p.create_session("bg")
    started = p.execute_session_command(
        "bg",
        SessionExecuteRequest(
            command="for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done; exit 4",
            run_async=True,
        ),
    )
    assert started.exit_code is None
    running = p.get_session_command("bg", started.cmd_id)
    assert running.exit_code is None
    out: list[str] = []
    err: list[str] = []
    asyncio.run(p.get_session_command_logs_async("bg", started.cmd_id, out.append, err.append))
    assert "".join(out) == "out1\nout2\nout3\n"
    assert "".join(err) == "err1\nerr2\nerr3\n"
    assert p.get_session_command("bg", started.cmd_id).exit_code == 4


def test_emulator_files_round_trip_and_manage(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona import FileUpload

    blob = bytes(range(256)) * 64
    sandbox.fs.upload_files(
        [FileUpload(blob, "bin/data.bin"), FileUpload(b"needle here\nhay\n", "bin/text.txt")]
    )
    assert sandbox.fs.download_file("bin/data.bin") == blob
    info = sandbox.fs.get_file_info("bin/data.bin")
    assert (info.name, info.size, info.is_dir) == ("data.bin", len(blob), False)
    names = sorted(f.name for f in sandbox.fs.list_files("bin"))
    assert names == ["data.bin", "text.txt"]
    matches = sandbox.fs.find_files("bin", "needle")
    assert [(m.file, m.line, m.content) for m in matches] == [("bin/text.txt", 1, "needle here")]
    found = sandbox.fs.search_files("bin", "*.txt")
    assert found.files == ["bin/text.txt"]
    sandbox.fs.move_files("bin/text.txt", "bin/moved.txt")
    assert sandbox.fs.download_file("bin/moved.txt") == b"needle here\nhay\n"
    results = sandbox.fs.replace_in_files(["bin/moved.txt"], "hay", "straw")
    assert results[0].success
    assert sandbox.fs.download_file("bin/moved.txt") == b"needle here\nstraw\n"
    sandbox.fs.set_file_permissions("bin/moved.txt", mode="600")
    assert sandbox.fs.get_file_info("bin/moved.txt").permissions == "0600"
    sandbox.fs.delete_file("bin/moved.txt")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.fs.get_file_info("bin/moved.txt")
    with pytest.raises(DaytonaError):
        sandbox.fs.delete_file("bin")  # not empty, not recursive
    sandbox.fs.delete_file("bin", recursive=True)
    with pytest.raises(DaytonaNotFoundError):
        sandbox.fs.download_file("bin/data.bin")
    work = sandbox.get_work_dir()
    assert sandbox.process.exec("pwd").result.strip() == work
    # as on the real service: the sandbox's home, not a path of the emulator's host
    assert work == "/home/daytona"
    assert sandbox.get_user_home_dir() == "/home/daytona"


def test_emulator_git_workflow(sandbox, bare_repo, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    g = sandbox.git
    g.clone(repo_url(emu, sandbox, bare_repo), "repo")
    status = g.status("repo")
    assert status.current_branch == "main"
    assert status.file_status == []
    branches = g.branches("repo")
    assert "main" in branches.branches
    sandbox.fs.upload_file(b"new\n", "repo/new.txt")
    status = g.status("repo")
    assert [(f.name, f.worktree.value) for f in status.file_status] == [("new.txt", "Untracked")]
    g.add("repo", ["new.txt"])
    commit = g.commit("repo", "add new", "Alice", "alice@example.com")
    assert len(commit.sha) == 40
    history = sandbox.process.exec("git -c safe.directory='*' -C repo log -1 --format=%an:%s")
    assert history.result.strip() == "Alice:add new"
    g.create_branch("repo", "topic")
    g.checkout_branch("repo", "topic")
    assert g.status("repo").current_branch == "topic"
    g.checkout_branch("repo", "main")
    g.delete_branch("repo", "topic")
    assert "topic" not in g.branches("repo").branches
    with pytest.raises(DaytonaError):
        g.checkout_branch("repo", "no-such-branch")


def test_emulator_lifecycle_stop_start_archive(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create()
    try:
        s.fs.upload_file(b"kept", "keep.txt")
        s.stop()
        assert s.state == "stopped"
        with pytest.raises(DaytonaError):
            s.process.exec("true")
        s.archive()
        assert daytona.get(s.id).state == "archived"
        assert emu.emulator.sandboxes[s.id].workspace_id is None
        s.start()
        assert s.state == "started"
        assert s.fs.download_file("keep.txt") == b"kept"
        with pytest.raises(DaytonaBadRequestError):
            s.archive()  # only stopped sandboxes can be archived
    finally:
        daytona.delete(s)


def test_emulator_list_labels_and_get_by_name(daytona) -> None:  # type: ignore[no-untyped-def]
    a = daytona.create(CreateSandboxFromSnapshotParams(name="named-one", labels={"team": "x"}))
    b = daytona.create(CreateSandboxFromSnapshotParams(labels={"team": "y"}, language="javascript"))
    try:
        assert daytona.get("named-one").id == a.id
        ids = [s.id for s in daytona.list(ListSandboxesQuery(labels={"team": "x"}))]
        assert ids == [a.id]
        every = [s.id for s in daytona.list(ListSandboxesQuery(limit=1))]
        assert {a.id, b.id} <= set(every)
        assert daytona.get(b.id).labels == {"team": "y", "code-toolbox-language": "javascript"}
        js = daytona.get(b.id).process.code_run("console.log(6*7)")
        assert (js.exit_code, js.result) == (0, "42\n")
        a.set_labels({"team": "z"})
        assert daytona.get(a.id).labels == {"team": "z"}
        a.set_autostop_interval(30)
        assert daytona.get(a.id).auto_stop_interval == 30
    finally:
        daytona.delete(a)
        daytona.delete(b)


def test_emulator_errors_map_to_sdk_types(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    from daytona import Daytona, DaytonaConfig

    with pytest.raises(DaytonaNotFoundError, match="not found"):
        daytona.get("does-not-exist")
    with pytest.raises(DaytonaBadRequestError, match="Snapshot nope not found"):
        daytona.create(CreateSandboxFromSnapshotParams(snapshot="nope"))
    wrong = Daytona(DaytonaConfig(api_key="wrong", api_url=emu.api_url, target="us"))
    with pytest.raises(DaytonaAuthenticationError):
        wrong.create()
    with pytest.raises(DaytonaAuthenticationError):
        list(wrong.list())


def test_emulator_snapshot_then_create_from_it_and_fork(daytona) -> None:  # type: ignore[no-untyped-def]
    s = daytona.create()
    made = []
    try:
        s.fs.upload_file(b"from the snapshot", "state.txt")
        s.create_snapshot("snap-sync")
        assert s.state == "started"
        snap = daytona.snapshot.get("snap-sync")
        assert snap.state == "active"
        assert snap.source_sandbox_id == s.id
        child = daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-sync"))
        made.append(child)
        assert child.snapshot == "snap-sync"
        assert child.fs.download_file("state.txt") == b"from the snapshot"
        fork = s.fork(name="forked-sync")
        made.append(fork)
        assert fork.name == "forked-sync"
        assert fork.fs.download_file("state.txt") == b"from the snapshot"
        fork.fs.upload_file(b"changed", "state.txt")
        assert s.fs.download_file("state.txt") == b"from the snapshot"
        names = [x.name for x in daytona.snapshot.list().items]
        assert "snap-sync" in names
        daytona.snapshot.delete(snap)
        with pytest.raises(DaytonaNotFoundError):
            daytona.snapshot.get("snap-sync")
    finally:
        for sandbox in [s, *made]:
            daytona.delete(sandbox)


def test_emulator_metrics_are_real(sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    sandbox.process.code_run("x = bytearray(20 << 20)\nsum(range(3_000_000))")
    latest = sandbox.get_metrics_latest()
    assert latest.cpu_count == 1
    assert latest.mem_total == 1 << 30
    assert latest.disk_total == 3 << 30
    assert latest.disk_used >= 0
    # the session clock may run ahead of the wall clock (lifecycle tests advance it)
    series = sandbox.get_metrics(end=clock.now() + timedelta(minutes=1))
    assert series, "telemetry returns the readings taken so far"
    assert series[-1].mem_total == 1 << 30


def test_emulator_git_init_config_remotes_reset_restore(sandbox) -> None:  # type: ignore[no-untyped-def]
    g = sandbox.git
    g.init("fresh", initial_branch="trunk")
    g.configure_user("Bob", "bob@example.com", scope="local", path="fresh")
    assert g.get_config("user.name", scope="local", path="fresh") == "Bob"
    assert g.get_config("no.such-key", scope="local", path="fresh") is None
    sandbox.fs.upload_file(b"v1\n", "fresh/f.txt")
    g.add("fresh", ["f.txt"])
    g.commit("fresh", "one", "Bob", "bob@example.com")
    assert g.status("fresh").current_branch == "trunk"
    sandbox.fs.upload_file(b"v2\n", "fresh/f.txt")
    g.restore("fresh", ["f.txt"])
    assert sandbox.fs.download_file("fresh/f.txt") == b"v1\n"
    g.remote_add("fresh", "origin", "https://example.invalid/repo.git")
    assert [(r.name, r.url) for r in g.remotes("fresh").remotes] == [
        ("origin", "https://example.invalid/repo.git")
    ]
    sandbox.fs.upload_file(b"v3\n", "fresh/f.txt")
    g.add("fresh", ["f.txt"])
    g.reset("fresh", mode="hard")
    assert sandbox.fs.download_file("fresh/f.txt") == b"v1\n"
