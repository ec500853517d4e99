"""Fidelity: everything the official SDK (sync and async) sees validates against the
upstream OpenAPI documents, and every error uses one of the two envelopes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    FileUpload,
    ListSandboxesQuery,
    SessionExecuteRequest,
)

from sandstorm_daytona.emulator import EmulatorConfig, RunningEmulator, running_emulator

from .conftest import repo_url
from .openapi_check import MAIN_SPEC, TOOLBOX_SPEC, validate, validate_error_envelopes

KEY = "fidelity-key"


@pytest.fixture(scope="module")
def recorded(bare_repo) -> Iterator[RunningEmulator]:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys={KEY: "org-fid"}, record_exchanges=True)
    with running_emulator(config) as emu:
        _drive_sync(emu, bare_repo)
        asyncio.run(_drive_async(emu))
        yield emu


def _drive_sync(emu: RunningEmulator, bare_repo) -> None:  # type: ignore[no-untyped-def]
    d = Daytona(DaytonaConfig(api_key=KEY, api_url=emu.api_url, target="us"))
    s = d.create(CreateSandboxFromSnapshotParams(labels={"fid": "1"}, auto_stop_interval=30))
    d.get(s.id)
    list(d.list(ListSandboxesQuery(labels={"fid": "1"})))
    s.set_labels({"fid": "2"})
    s.set_autostop_interval(20)
    s.set_auto_archive_interval(60)
    s.set_auto_delete_interval(-1)
    s.process.code_run("print(1)")
    s.process.exec("echo hi")
    s.process.create_session("f")
    cmd = s.process.execute_session_command(
        "f", SessionExecuteRequest(command="echo a; echo b >&2")
    )
    s.process.get_session_command("f", cmd.cmd_id)
    s.process.get_session_command_logs("f", cmd.cmd_id)
    s.process.get_session("f")
    s.process.list_sessions()
    s.process.delete_session("f")
    s.fs.upload_files([FileUpload(b"abc", "dir/a.txt")])
    s.fs.download_file("dir/a.txt")
    s.fs.create_folder("made", "755")
    s.fs.list_files(".")
    s.fs.get_file_info("dir/a.txt")
    s.fs.find_files("dir", "abc")
    s.fs.search_files(".", "*.txt")
    s.fs.replace_in_files(["dir/a.txt"], "b", "B")
    s.fs.move_files("dir/a.txt", "dir/b.txt")
    s.fs.delete_file("dir/b.txt")
    s.git.clone(repo_url(emu, s, bare_repo), "repo")
    s.git.status("repo")
    s.git.branches("repo")
    s.fs.upload_file(b"x", "repo/x.txt")
    s.git.add("repo", ["x.txt"])
    s.git.commit("repo", "m", "A", "a@example.com")
    s.get_work_dir()
    s.get_user_home_dir()
    s.get_metrics_latest()
    s.get_metrics()
    s.create_snapshot("fid-snap")
    d.snapshot.get("fid-snap")
    d.snapshot.list()
    fork = s.fork()
    s.stop()
    s.archive()
    s.start()
    for bad in (
        lambda: d.get("missing"),
        lambda: s.fs.download_file("missing.txt"),
        lambda: s.fs.get_file_info("missing.txt"),
        lambda: s.process.get_session("missing"),
        lambda: d.create(CreateSandboxFromSnapshotParams(snapshot="missing")),
    ):
        with contextlib.suppress(DaytonaError):
            bad()
    d.delete(fork)
    d.delete(s)
    d.snapshot.delete(d.snapshot.get("fid-snap"))


async def _drive_async(emu: RunningEmulator) -> None:
    async with AsyncDaytona(DaytonaConfig(api_key=KEY, api_url=emu.api_url, target="us")) as d:
        s = await d.create()
        await s.process.code_run("print(2)")
        await s.process.exec("echo async")
        await s.fs.upload_file(b"z", "z.txt")
        await s.fs.download_file("z.txt")
        await s.fs.list_files(".")
        await s.stop()
        await s.start()
        _ = [x async for x in d.list()]
        await d.delete(s)


def test_emulator_responses_validate_against_openapi(recorded: RunningEmulator) -> None:
    if not (MAIN_SPEC.is_file() and TOOLBOX_SPEC.is_file()):
        pytest.skip(f"the upstream OpenAPI documents are not at {MAIN_SPEC.parents[3]}")
    exchanges = recorded.emulator.exchanges
    assert exchanges is not None
    checked = validate(exchanges)
    must_validate = {
        ("POST", "/sandbox", 200),
        ("GET", "/sandbox/{sandboxIdOrName}", 200),
        ("GET", "/sandbox", 200),
        ("DELETE", "/sandbox/{sandboxIdOrName}", 200),
        ("POST", "/sandbox/{sandboxIdOrName}/stop", 200),
        ("POST", "/sandbox/{sandboxIdOrName}/start", 200),
        ("POST", "/sandbox/{sandboxIdOrName}/archive", 200),
        ("PUT", "/sandbox/{sandboxIdOrName}/labels", 200),
        ("POST", "/sandbox/{sandboxIdOrName}/snapshot", 200),
        ("POST", "/sandbox/{sandboxIdOrName}/fork", 200),
        ("POST", "toolbox/process/execute", 200),
        ("POST", "toolbox/process/code-run", 200),
        ("POST", "toolbox/process/session/{sessionId}/exec", 200),
        ("GET", "toolbox/process/session/{sessionId}/command/{commandId}/logs", 200),
        ("GET", "toolbox/process/session/{sessionId}", 200),
        ("GET", "toolbox/files", 200),
        ("GET", "toolbox/files/info", 200),
        ("GET", "toolbox/files/find", 200),
        ("GET", "toolbox/files/search", 200),
        ("GET", "toolbox/git/status", 200),
        ("GET", "toolbox/git/branches", 200),
        ("POST", "toolbox/git/commit", 200),
        ("GET", "toolbox/work-dir", 200),
        ("GET", "toolbox/system/metrics", 200),
    }
    print("validated:", sorted(checked.validated))
    print("no schema in the documents:", sorted(checked.unspecified))
    missing = {op for op in must_validate if op not in checked.validated}
    assert not missing, f"not seen or not specified: {sorted(missing)}"
    assert len(checked.validated) >= 30


def test_emulator_error_envelopes(recorded: RunningEmulator) -> None:
    exchanges = recorded.emulator.exchanges
    assert exchanges is not None
    assert validate_error_envelopes(exchanges) >= 4


def test_emulator_status_codes_match_protocol(recorded: RunningEmulator) -> None:
    exchanges = recorded.emulator.exchanges
    assert exchanges is not None
    seen = {
        (e.method, e.path.split("/", 3)[-1] if e.path.startswith("/toolbox/") else e.path, e.status)
        for e in exchanges
    }

    def has(method: str, suffix: str, status: int) -> bool:
        return any(m == method and p.endswith(suffix) and s == status for m, p, s in seen)

    assert has("POST", "/api/sandbox", 200)
    assert has("POST", "process/session", 201)
    assert has("POST", "files/folder", 201)
    assert has("DELETE", "files", 204)
    assert any(m == "DELETE" and "process/session/" in p and s == 204 for m, p, s in seen)
    # the SDK's Analytics API client sends no SDK version header
    assert all(
        e.sdk_version == "0.226.1" for e in exchanges if not e.path.startswith("/analytics/")
    )
