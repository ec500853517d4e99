"""``sandstorm-daytona emulator`` serves, prints its address and key, and cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sandstorm_daytona._cli import main
from sandstorm_daytona.emulator import EmulatorConfig, running_emulator


def test_emulator_cli_serves_and_prints_url_and_key(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandstorm_daytona._cli",
            "emulator",
            "--api-key",
            "cli-key=org-cli",
            "--fault",
            "/api/regions=503",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url_line = proc.stdout.readline().strip()
        key_line = proc.stdout.readline().strip()
        assert url_line.startswith("DAYTONA_API_URL=http://127.0.0.1:")
        assert key_line == "DAYTONA_API_KEY=cli-key"
        api_url = url_line.split("=", 1)[1]
        headers = {"Authorization": "Bearer cli-key"}
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{api_url}/health").status_code == 200
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        created = httpx.post(f"{api_url}/sandbox", headers=headers, json={})
        assert created.status_code == 200
        assert created.json()["organizationId"] == "org-cli"
        toolbox = created.json()["toolboxProxyUrl"]
        run = httpx.post(
            f"{toolbox}/{created.json()['id']}/process/execute",
            headers=headers,
            json={"command": "echo cli"},
        )
        assert run.json() == {"exitCode": 0, "result": "cli\n"}
        assert httpx.get(f"{api_url}/regions", headers=headers).status_code == 503
        assert any(tmp_path.iterdir()), "the engine keeps its workspaces under TMPDIR"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not any(tmp_path.iterdir()), "every workspace and directory is removed on shutdown"


def _start_cli(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandstorm_daytona._cli", "emulator", "--api-key", "sig-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.stdout is not None
    api_url = proc.stdout.readline().strip().split("=", 1)[1]
    proc.stdout.readline()
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{api_url}/health")
            return proc, api_url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("sig", "times"), [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)]
)
def test_emulator_cli_signal_mid_exec_cleans_up_and_exits_0(
    tmp_path: Path, sig: signal.Signals, times: int
) -> None:
    proc, api_url = _start_cli(tmp_path)
    headers = {"Authorization": "Bearer sig-key"}
    try:
        created = httpx.post(f"{api_url}/sandbox", headers=headers, json={}).json()
        toolbox = f"{created['toolboxProxyUrl']}/{created['id']}"
        assert any(tmp_path.iterdir()), "the engine keeps its workspaces under TMPDIR"
        replies: list[object] = []

        def call() -> None:
            try:
                replies.append(
                    httpx.post(
                        f"{toolbox}/process/execute",
                        headers=headers,
                        json={"command": "sleep 30"},
                        timeout=30,
                    ).status_code
                )
            except httpx.TransportError as exc:
                replies.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the command is running
        started = time.monotonic()
        for _ in range(times):
            proc.send_signal(sig)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - started
        caller.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert took < 4, f"shutdown took {took:.1f} s"
    assert "Traceback" not in stderr
    assert not any(tmp_path.iterdir()), "every workspace and directory is removed on shutdown"
    if times == 1:
        assert replies == [503]  # answered, not left hanging
        assert "/process/execute interrupted: the emulator is shutting down" in stderr


def test_emulator_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--rate-limit", "bogus=1/5"]) == 2
    assert "unknown throttler" in capsys.readouterr().err
    assert main(["emulator", "--fault", "nonsense"]) == 2
    assert "PATH=KIND" in capsys.readouterr().err


def test_emulator_shutdown_deletes_every_workspace() -> None:
    config = EmulatorConfig(api_keys={"k": "o"})
    with running_emulator(config) as emu:
        h = {"Authorization": "Bearer k"}
        ids = [
            httpx.post(f"{emu.api_url}/sandbox", headers=h, json={}).json()["id"] for _ in range(3)
        ]
        httpx.post(f"{emu.api_url}/sandbox/{ids[0]}/snapshot", headers=h, json={"name": "kept"})
        httpx.post(f"{emu.api_url}/sandbox/{ids[1]}/stop", headers=h)
        httpx.post(f"{emu.api_url}/sandbox/{ids[1]}/archive", headers=h)
        root = emu.emulator._root
        assert root is not None
        assert root.exists()
        workspaces = {r.workspace_id for r in emu.emulator.sandboxes.values()} - {None}
        assert len(workspaces) == 2
    assert not root.exists()
    assert emu.emulator.sandboxes == {}
