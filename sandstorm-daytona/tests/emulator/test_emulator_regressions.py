"""Regressions reported by the Daytona provider's author, each driven over loopback by the
official SDK or raw httpx: slashes in snapshot names, large transfers and output, session
bookkeeping out of the user's view, clients that drop mid-exec."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import httpx
import pytest

from sandstorm_daytona._cli import _config, _parser
from sandstorm_daytona.emulator import EmulatorConfig, RunningEmulator, running_emulator

from .conftest import KEY_A


def _h(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------ snapshot names


def test_emulator_snapshot_names_may_hold_a_slash(daytona, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    from daytona import DaytonaNotFoundError

    default = emu.config.default_snapshot
    assert "/" in default  # daytonaio/sandbox:emulator
    assert daytona.snapshot.get(default).name == default
    encoded = urllib.parse.quote(default, safe="")
    reply = httpx.get(f"{emu.api_url}/snapshots/{encoded}", headers=_h())
    assert reply.status_code == 200
    assert reply.json()["name"] == default

    sandbox = daytona.create()
    try:
        sandbox.create_snapshot("team/app:v1")
        snap = daytona.snapshot.get("team/app:v1")
        assert snap.name == "team/app:v1"
        quoted = urllib.parse.quote("team/app:v1", safe="")
        # by id only, as the service's ParseUUIDPipe wants; a name is a 400
        by_name = httpx.post(f"{emu.api_url}/snapshots/{quoted}/deactivate", headers=_h())
        assert by_name.status_code == 400
        assert by_name.json()["message"] == "Validation failed (uuid is expected)"
        assert httpx.delete(f"{emu.api_url}/snapshots/{quoted}", headers=_h()).status_code == 400
        off = httpx.post(f"{emu.api_url}/snapshots/{snap.id}/deactivate", headers=_h())
        assert off.status_code == 204
        daytona.snapshot.delete(snap)
        with pytest.raises(DaytonaNotFoundError):
            daytona.snapshot.get("team/app:v1")
    finally:
        daytona.delete(sandbox)


# ------------------------------------------------------------------ transfers

KIB, MIB = 1 << 10, 1 << 20
SIZES = [1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 256, 10 * MIB]
"""Sizes around multipart chunk and spool boundaries, and around the engine's 4 MiB cap
(``3 MiB + 256 B`` is just over it once base64-encoded)."""


def _payload(size: int, salt: int) -> bytes:
    return random.Random(size * 1000 + salt).randbytes(size)


def _parts(reply: httpx.Response) -> dict[str, bytes]:
    """The bulk-download body split by hand (no client library), checking each part's
    ``Content-Length`` against its body."""
    match = re.search(r"boundary=([^;]+)", reply.headers["content-type"])
    assert match is not None
    boundary = b"--" + match.group(1).encode()
    body = reply.content
    assert body.endswith(boundary + b"--\r\n")
    found: dict[str, bytes] = {}
    position = 0
    while True:
        start = body.index(boundary, position) + len(boundary)
        if body[start : start + 2] == b"--":
            return found
        head_end = body.index(b"\r\n\r\n", start)
        head = body[start:head_end].decode()
        name = re.search(r'filename="([^"]*)"', head)
        length = re.search(r"Content-Length: (\d+)", head)
        assert 'name="file"' in head, head
        assert name is not None, head
        assert length is not None, head
        data_start = head_end + 4
        found[name.group(1)] = body[data_start : data_start + int(length.group(1))]
        position = data_start + int(length.group(1))
        assert body[position : position + 2] == b"\r\n"


def test_emulator_transfers_around_chunk_boundaries_with_the_sdk(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona import FileDownloadRequest, FileUpload

    work = sandbox.get_work_dir()
    for salt in range(2):
        files = {f"sizes/{size}.bin": _payload(size, salt) for size in SIZES}
        sandbox.fs.upload_files([FileUpload(data, path) for path, data in files.items()])
        # relative, absolute in the work dir, and through /proc/self/cwd (a path the
        # emulator must read through the sandbox's shell, not the engine's file API)
        for prefix in ("", f"{work}/", "/proc/self/cwd/"):
            requests = [FileDownloadRequest(source=prefix + path) for path in files]
            got = {r.source: r.result for r in sandbox.fs.download_files(requests)}
            for path, data in files.items():
                result = got[prefix + path]
                assert isinstance(result, bytes), (prefix + path, result)
                assert len(result) == len(data), (prefix + path, len(result))
                assert result == data, prefix + path
        single = files[f"sizes/{3 * MIB + 256}.bin"]
        sandbox.fs.upload_file(single, "single.bin")
        assert sandbox.fs.download_file("single.bin") == single
        assert sandbox.fs.download_file("/proc/self/cwd/single.bin") == single


def test_emulator_transfers_around_chunk_boundaries_with_raw_httpx(
    sandbox,  # type: ignore[no-untyped-def]
    emu: RunningEmulator,
) -> None:
    base = f"{emu.base_url}/toolbox/{sandbox.id}"
    with httpx.Client(headers=_h(), timeout=60) as client:
        for salt in range(2):
            files = {f"raw/{size}.bin": _payload(size, salt + 7) for size in SIZES}
            data = {f"files[{i}].path": path for i, path in enumerate(files)}
            form = [
                (f"files[{i}].file", (path, content, "application/octet-stream"))
                for i, (path, content) in enumerate(files.items())
            ]
            up = client.post(f"{base}/files/bulk-upload", data=data, files=form)
            assert up.status_code == 200, up.text
            assert {f["path"]: f["bytes"] for f in up.json()["files"]} == {
                p: len(c) for p, c in files.items()
            }
            for prefix in ("", "/proc/self/cwd/"):
                down = client.post(
                    f"{base}/files/bulk-download",
                    json={"paths": [prefix + p for p in files]},
                    headers={"Accept": "multipart/form-data"},
                )
                assert down.status_code == 200
                parts = _parts(down)
                for path, content in files.items():
                    assert len(parts[prefix + path]) == len(content), prefix + path
                    assert parts[prefix + path] == content, prefix + path


# ------------------------------------------------------------------ output caps


def test_emulator_keeps_large_output_whole_by_default(sandbox, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    assert emu.config.output_cap == 64 * MIB
    # 6 MiB: past the engine's own 4 MiB default, well inside the emulator's 64 MiB
    result = sandbox.process.exec("head -c 6291456 /dev/zero | tr '\\0' x; echo; echo end >&2")
    assert result.exit_code == 0
    assert result.result == "x" * (6 * MIB) + "\nend\n"


def test_emulator_makes_truncated_output_visible() -> None:
    # exact bytes: the daemon-like relabelling would drop or keep the NULs by shell
    config = EmulatorConfig(api_keys={"k": "o"}, output_cap=64 * KIB, relabel_output=False)
    with running_emulator(config) as emu, httpx.Client(headers=_h("k"), timeout=30) as client:
        sid = client.post(f"{emu.api_url}/sandbox", json={}).json()["id"]
        base = f"{emu.base_url}/toolbox/{sid}"

        cut = client.post(f"{base}/process/execute", json={"command": "head -c 100000 /dev/zero"})
        assert cut.headers["x-daytona-emulator-output-truncated"] == "true"
        body = cut.json()
        assert body["exitCode"] == 0
        notice = "\n[daytona emulator] output truncated"
        assert body["result"].startswith("\0" * (64 * KIB) + notice)
        assert f"kept the first {64 * KIB} bytes of each stream" in body["result"]

        killed = client.post(
            f"{base}/process/code-run",
            json={"code": "import sys\nsys.stdout.write('y' * 400000)\n", "language": "python"},
        ).json()
        assert killed["exitCode"] == 137
        assert killed["result"].endswith(
            f"the command was killed (exit 137) after {128 * KIB} bytes of output\n"
        )

        whole = client.post(f"{base}/process/execute", json={"command": "echo small"})
        assert "x-daytona-emulator-output-truncated" not in whole.headers
        assert whole.json() == {"exitCode": 0, "result": "small\n"}

        client.post(f"{base}/process/session", json={"sessionId": "big"})
        run = client.post(
            f"{base}/process/session/big/exec", json={"command": "head -c 100000 /dev/zero"}
        ).json()
        assert len(run["stdout"]) == 64 * KIB
        assert "[daytona emulator] output truncated" in run["stderr"]


def test_emulator_cli_sets_the_output_cap() -> None:
    assert _config(_parser().parse_args(["emulator"])).output_cap == 64 * MIB  # type: ignore[attr-defined]
    parsed = _config(_parser().parse_args(["emulator", "--output-cap", "8"]))
    assert parsed.output_cap == 8 * MIB  # type: ignore[attr-defined]


# ------------------------------------------------------------------ session bookkeeping


def test_emulator_session_state_is_out_of_the_users_view(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona import SessionExecuteRequest

    sandbox.process.create_session("hidden")
    run = sandbox.process.execute_session_command(
        "hidden", SessionExecuteRequest(command="mkdir -p sub && cd sub && export FOO=bar")
    )
    assert run.exit_code == 0
    again = sandbox.process.execute_session_command(
        "hidden", SessionExecuteRequest(command='printf "%s %s" "$(basename "$PWD")" "$FOO"')
    )
    # state kept, and no trailer in the output (the daemon ends the last line)
    assert again.stdout == "sub bar\n"
    inside = sandbox.process.execute_session_command(
        "hidden", SessionExecuteRequest(command="ls -A ..")
    )
    assert inside.stdout == "sub\n"
    assert sandbox.process.exec("ls -A").result == "sub\n"
    assert [f.name for f in sandbox.fs.list_files(".")] == ["sub"]
    sandbox.process.delete_session("hidden")


def test_emulator_session_output_never_shows_the_state_marker(sandbox) -> None:  # type: ignore[no-untyped-def]
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("marks")
    # a record-separator byte of its own, then stdout closed for good: the state must
    # still come through, and followers must see only the user's bytes
    command = "printf 'a'; sleep 0.3; printf 'b\\036c'; exec >/dev/null; echo gone; cd /"
    started = p.execute_session_command(
        "marks", SessionExecuteRequest(command=command, run_async=True)
    )
    out: list[str] = []
    asyncio.run(p.get_session_command_logs_async("marks", started.cmd_id, out.append, print))
    assert "".join(out) == "ab\x1ec\n"  # the daemon ends the last line
    assert p.get_session_command_logs("marks", started.cmd_id).stdout == "ab\x1ec\n"
    after = p.execute_session_command("marks", SessionExecuteRequest(command="pwd"))
    assert after.stdout == "/\n"


# ------------------------------------------------------------------ clients that go away


def _no_tracebacks(records: list[logging.LogRecord]) -> None:
    bad = [r for r in records if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


def test_emulator_client_dropping_mid_exec_kills_the_command(
    sandbox,  # type: ignore[no-untyped-def]
    emu: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sandstorm_daytona.emulator")
    base = f"{emu.base_url}/toolbox/{sandbox.id}"
    for path, body in (
        ("/process/execute", {"command": "sleep 1.5; touch late-execute"}),
        (
            "/process/code-run",
            {"code": "import time; time.sleep(1.5); open('late-code', 'w')", "language": "python"},
        ),
    ):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(base + path, json=body, headers=_h(), timeout=0.5)
    time.sleep(2.0)
    assert sandbox.process.exec("ls -A").result == ""  # both commands were killed
    gone = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert len(gone) == 2
    assert all(r.levelno == logging.INFO for r in gone)
    assert "/process/execute; the command was killed" in gone[0].getMessage()
    _no_tracebacks(caplog.records)


def test_emulator_session_command_outlives_a_dropped_client(
    sandbox,  # type: ignore[no-untyped-def]
    emu: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sandstorm_daytona.emulator")
    sandbox.process.create_session("kept")
    base = f"{emu.base_url}/toolbox/{sandbox.id}/process/session/kept"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{base}/exec", json={"command": "sleep 0.8; echo finished"}, headers=_h(), timeout=0.3
        )
    session = sandbox.process.get_session("kept")
    assert len(session.commands) == 1
    for _ in range(60):
        command = sandbox.process.get_session_command("kept", session.commands[0].id)
        if command.exit_code is not None:
            break
        time.sleep(0.05)
    assert command.exit_code == 0
    logs = sandbox.process.get_session_command_logs("kept", command.id)
    assert logs.stdout == "finished\n"  # as on the daemon: the reply is lost, not the command
    assert any("keeps running in its session" in r.getMessage() for r in caplog.records)
    _no_tracebacks(caplog.records)


def test_emulator_shutdown_interrupts_requests_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sandstorm_daytona.emulator")
    replies: list[httpx.Response | Exception] = []
    uvicorn_log = logging.getLogger("uvicorn.error")
    with running_emulator(EmulatorConfig(api_keys={"k": "o"})) as emu:
        uvicorn_log.addHandler(caplog.handler)  # uvicorn's loggers do not propagate
        sid = httpx.post(f"{emu.api_url}/sandbox", headers=_h("k"), json={}).json()["id"]

        def call() -> None:
            try:
                replies.append(
                    httpx.post(
                        f"{emu.base_url}/toolbox/{sid}/process/execute",
                        json={"command": "sleep 30"},
                        headers=_h("k"),
                        timeout=30,
                    )
                )
            except Exception as exc:  # reported by the assertions below
                replies.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        started = time.monotonic()  # leaving the block shuts the server down
    took = time.monotonic() - started
    uvicorn_log.removeHandler(caplog.handler)
    caller.join(10)
    assert took < 3, f"shutdown waited {took:.1f} s for a running command"
    assert len(replies) == 1
    reply = replies[0]
    assert isinstance(reply, httpx.Response), reply
    assert reply.status_code == 503
    assert reply.json()["message"] == "The emulator is shutting down"
    assert any(
        "interrupted: the emulator is shutting down" in r.getMessage() for r in caplog.records
    )
    _no_tracebacks(caplog.records)


# ------------------------------------------------------------------ typescript


def _host_runs_typescript() -> bool:
    if shutil.which("ts-node") and shutil.which("npx"):
        return True
    node = shutil.which("node")
    if node is None:
        return False
    probe = subprocess.run(
        [node, "--experimental-strip-types", "-e", ""], capture_output=True, check=False
    )
    return probe.returncode == 0


def test_emulator_typescript_runs_or_is_unsupported_like_on_the_daemon(
    daytona,  # type: ignore[no-untyped-def]
    emu: RunningEmulator,
) -> None:
    from daytona import CreateSandboxFromSnapshotParams
    from daytona_toolbox_api_client.exceptions import BadRequestException

    sandbox = daytona.create(CreateSandboxFromSnapshotParams(language="typescript"))
    try:
        code = "const n: number = 6 * 7;\nconsole.log(n, process.argv.length);\n"
        if _host_runs_typescript():
            run = sandbox.process.code_run(code)
            assert (run.exit_code, run.result) == (0, "42 1\n")
        else:
            # SDK 0.226.1 does not map code-run errors: the generated client's own 400
            with pytest.raises(BadRequestException, match="unsupported language: typescript"):
                sandbox.process.code_run(code)
            reply = httpx.post(
                f"{emu.base_url}/toolbox/{sandbox.id}/process/code-run",
                json={"code": code, "language": "typescript"},
                headers=_h(),
            )
            assert reply.status_code == 400
            assert reply.json()["message"] == "unsupported language: typescript"
            assert (reply.json()["code"], reply.json()["source"]) == (
                "BAD_REQUEST",
                "DAYTONA_DAEMON",
            )
        assert sandbox.process.exec("ls -A").result == ""  # nothing left in the work dir
    finally:
        daytona.delete(sandbox)
