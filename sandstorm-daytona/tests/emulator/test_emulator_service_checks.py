"""Where the emulator mirrors what the real service does (issue 17), over a real socket.

Each behaviour cites the upstream source (Daytona v0.190) it follows: the daemon's shell
choice (``apps/daemon/pkg/common/get_shell.go``), its line relabelling of session output
(``apps/daemon/pkg/session/execute.go``), and the API's allow-list checks
(``apps/api/src/sandbox/utils/network-validation.util.ts``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

import sandstorm
from sandstorm_daytona.emulator import EmulatorConfig, RunningEmulator, running_emulator

from ..provider.shells import require_shell

KEY = "service-checks-key"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=H, timeout=60) as http:
        yield http


def _emulator(**values: object) -> RunningEmulator:
    return running_emulator(EmulatorConfig(api_keys={KEY: "org"}, **values))  # type: ignore[arg-type, return-value]


def _sandbox(emu: RunningEmulator, client: httpx.Client) -> str:
    reply = client.post(f"{emu.api_url}/sandbox", json={})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def _session_run(emu: RunningEmulator, client: httpx.Client, sid: str, command: str) -> dict:  # type: ignore[type-arg]
    base = f"{emu.base_url}/toolbox/{sid}/process/session"
    client.post(base, json={"sessionId": "s"})
    reply = client.post(f"{base}/s/exec", json={"command": command})
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


# ------------------------------------------------------------------ the session shell


@pytest.mark.parametrize("shell", [None, "bash", "dash"])
def test_commands_run_in_the_daemons_shell(client: httpx.Client, shell: str | None) -> None:
    """Default: zsh, the first listed in /etc/shells (zsh before bash); else as told."""
    expected = require_shell(shell or "zsh")
    with _emulator(shell=shell) as emu:
        sid = _sandbox(emu, client)
        probe = 'readlink /proc/$$/exe; [ -n "${ZSH_VERSION:-}" ] && echo is-zsh; true'
        reply = client.post(
            f"{emu.base_url}/toolbox/{sid}/process/execute", json={"command": probe}
        ).json()
        session = _session_run(emu, client, sid, probe)
    real = shutil.which(expected)
    assert real is not None
    first = reply["result"].splitlines()[0]
    assert first.rsplit("/", 1)[-1] == real.rsplit("/", 1)[-1] or first.endswith(expected)
    assert ("is-zsh" in reply["result"]) == (shell is None)
    assert session["stdout"] == reply["result"]


def test_a_missing_shell_is_a_clear_error(client: httpx.Client) -> None:
    with _emulator(shell="no-such-shell") as emu:
        sid = _sandbox(emu, client)
        reply = client.post(
            f"{emu.base_url}/toolbox/{sid}/process/execute", json={"command": "true"}
        )
    assert reply.status_code == 500
    assert "no-such-shell" in reply.json()["message"]


# ------------------------------------------------------------------ line relabelling


@pytest.mark.parametrize(
    ("shell", "relabel", "stdout"),
    [
        ("zsh", True, "a\0b\nno newline\n"),  # zsh's `read` keeps NUL bytes
        ("bash", True, "ab\nno newline\n"),
        ("dash", True, "ab\nno newline\n"),
        ("bash", False, "a\0b\nno newline"),  # the documented switch: exact bytes
    ],
)
def test_session_output_is_relabelled_like_the_daemon(
    client: httpx.Client, shell: str, relabel: bool, stdout: str
) -> None:
    require_shell(shell)
    with _emulator(shell=shell, relabel_output=relabel) as emu:
        sid = _sandbox(emu, client)
        run = _session_run(emu, client, sid, "printf 'a\\000b\\nno newline'; printf e >&2")
    assert run["exitCode"] == 0
    assert run["stdout"] == stdout
    assert run["stderr"] == ("e\n" if relabel else "e")


def test_followers_receive_whole_lines(daytona, sandbox) -> None:  # type: ignore[no-untyped-def]
    """The daemon writes a line once it is complete: a half line is never streamed."""
    import asyncio

    from daytona import SessionExecuteRequest

    process = sandbox.process
    process.create_session("lines")
    started = process.execute_session_command(
        "lines",
        SessionExecuteRequest(
            command="printf 'half'; sleep 0.4; printf ' line\\nnext'", run_async=True
        ),
    )
    chunks: list[str] = []
    asyncio.run(
        process.get_session_command_logs_async("lines", started.cmd_id, chunks.append, print)
    )
    assert chunks == ["half line\n", "next\n"]


# ------------------------------------------------------------------ allow-lists


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("networkAllowList", "::1/128", 'Invalid IP address: "::1"'),
        ("networkAllowList", "10.0.0.1", "Missing CIDR prefix length"),
        ("networkAllowList", "10.0.0.0/33", "Prefix must be between 0 and 32"),
        (
            "networkAllowList",
            ",".join(f"10.0.{i}.0/24" for i in range(11)),
            "cannot contain more than 10 networks",
        ),
        ("domainAllowList", "localhost", 'Invalid domain: "localhost"'),
        ("domainAllowList", "example.com:443", 'Invalid domain: "example.com:443"'),
        (
            "domainAllowList",
            ",".join(f"h{i}.example.com" for i in range(11)),
            "cannot contain more than 10 domains",
        ),
    ],
)
def test_allow_lists_the_service_refuses_answer_400(
    emu: RunningEmulator, field: str, value: str, message: str
) -> None:
    from .conftest import KEY_A

    with httpx.Client(headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as http:
        reply = http.post(f"{emu.api_url}/sandbox", json={field: value})
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["message"]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("autoStopInterval", "Auto-stop interval must be non-negative"),
        ("autoArchiveInterval", "Auto-archive interval must be non-negative"),
    ],
)
def test_negative_intervals_answer_400(emu: RunningEmulator, field: str, message: str) -> None:
    """``resolveAutoStopInterval`` / ``resolveAutoArchiveInterval`` (``sandbox.service.ts``);
    a negative ``autoDeleteInterval`` means "never" and is accepted."""
    from .conftest import KEY_A

    with httpx.Client(headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as http:
        reply = http.post(f"{emu.api_url}/sandbox", json={field: -1})
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"] == message


def test_valid_allow_lists_are_accepted(daytona) -> None:  # type: ignore[no-untyped-def]
    from daytona import CreateSandboxFromSnapshotParams

    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(
            network_allow_list="10.0.0.0/8,192.168.1.0/24", language="python"
        )
    )
    try:
        assert sandbox.network_allow_list == "10.0.0.0/8,192.168.1.0/24"
    finally:
        daytona.delete(sandbox)


# ------------------------------------------------------------------ telemetry


def test_telemetry_goes_through_the_analytics_api(client: httpx.Client) -> None:
    """``/config`` names an Analytics API; the API's telemetry endpoints answer 403 (the
    service's ``AnalyticsApiDisabledGuard``) and the SDK reads the Analytics API instead."""
    import warnings

    from daytona import Daytona, DaytonaConfig

    with _emulator() as emu:  # a wall clock: the SDK asks for readings up to "now"
        config = client.get(f"{emu.api_url}/config").json()
        assert config["analyticsApiUrl"] == f"{emu.base_url}/analytics"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            daytona = Daytona(DaytonaConfig(api_key=KEY, api_url=emu.api_url, target="us"))
        sandbox = daytona.create()
        try:
            refused = client.get(f"{emu.api_url}/sandbox/{sandbox.id}/telemetry/metrics")
            samples = sandbox.get_metrics()  # the official SDK, through the Analytics API
        finally:
            daytona.delete(sandbox)
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "Telemetry endpoints are disabled when Analytics API is configured"
    )
    assert samples
    assert samples[-1].mem_total > 0


def test_without_analytics_the_telemetry_endpoints_serve(client: httpx.Client) -> None:
    with _emulator(analytics_api=False) as emu:
        assert "analyticsApiUrl" not in client.get(f"{emu.api_url}/config").json()
        sid = _sandbox(emu, client)
        reply = client.get(f"{emu.api_url}/sandbox/{sid}/telemetry/metrics")
    assert reply.status_code == 200
    assert {s["metricName"] for s in reply.json()["series"]} >= {"daytona.sandbox.cpu.utilization"}


def test_the_cli_sets_the_service_options() -> None:
    from sandstorm_daytona._cli import _config, _parser

    default = _config(_parser().parse_args(["emulator"]))
    assert isinstance(default, EmulatorConfig)
    assert (default.shell, default.relabel_output) == (None, True)
    assert (default.analytics_api, default.system_metrics) == (True, True)
    argv = [
        "emulator",
        "--shell",
        "dash",
        "--exact-output",
        "--no-analytics-api",
        "--no-system-metrics",
    ]
    told = _config(_parser().parse_args(argv))
    assert isinstance(told, EmulatorConfig)
    assert (told.shell, told.relabel_output) == ("dash", False)
    assert (told.analytics_api, told.system_metrics) == (False, False)


class _EngineRuns:
    """A plugin counting the runs the emulator's engine makes."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.count = 0

    @sandstorm.hookimpl
    def sandstorm_before_run(self, provider: object, workspace: object, request: object) -> None:
        if provider is self.engine:
            self.count += 1


def test_a_new_sandbox_answers_its_first_command_without_a_shell_probe(
    client: httpx.Client,
) -> None:
    """The daemon knows its shell when the sandbox starts: once a sandbox of the same
    snapshot has found it, another one's first command is one engine run, not two."""
    with _emulator() as emu:
        execute = f"{emu.base_url}/toolbox/{{}}/process/execute"
        first, second = _sandbox(emu, client), _sandbox(emu, client)
        runs = _EngineRuns(emu.emulator.provider)
        sandstorm.plugin_manager().register(runs)
        try:
            answer = client.post(execute.format(first), json={"command": "echo $0"}).json()
            assert runs.count == 2  # the probe, then the command
            again = client.post(execute.format(second), json={"command": "echo $0"}).json()
            assert runs.count == 3  # the command alone
        finally:
            sandstorm.plugin_manager().unregister(runs)
    assert answer["result"] == again["result"]
    assert answer["result"].strip().endswith("zsh")  # still the daemon's shell
