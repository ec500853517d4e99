"""The fork-server request: one typed definition, strict on both sides."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

import sandstorm
from sandstorm import ExecRequest
from sandstorm.local import LocalProvider
from sandstorm.local._forkserver import RunRequest, SandboxSpec, SetupError, decode
from sandstorm.local._forkserver_host import Outcome, execute


@pytest.fixture
def request_(local_impl: LocalProvider, lp: sandstorm.SyncProvider) -> RunRequest:
    """A real request the provider builds for a fresh workspace."""
    workspace = lp.create_workspace()
    engine = local_impl._start_engine()
    return local_impl._request_for(engine, workspace, ExecRequest(code="print('ran')"))


def test_the_request_round_trips(request_: RunRequest) -> None:
    assert decode(RunRequest, json.loads(request_.encode())) == request_


@pytest.mark.parametrize("where", ["top", "sandbox", "landlock"])
def test_an_unknown_key_is_refused_by_the_sandbox(request_: RunRequest, where: str) -> None:
    data = json.loads(request_.encode())
    target = data if where == "top" else data[where]
    target["seccomp_off"] = True
    with pytest.raises(SetupError, match=r"unknown keys \['seccomp_off'\]"):
        decode(RunRequest, data)


@pytest.mark.parametrize("key", ["seccomp", "landlock", "uid"])
def test_a_missing_key_is_refused_by_the_sandbox(request_: RunRequest, key: str) -> None:
    data = json.loads(request_.encode())
    del data[key]
    with pytest.raises(SetupError, match=rf"missing keys \['{key}'\]"):
        decode(RunRequest, data)


def test_a_misspelled_key_is_refused_by_the_host(request_: RunRequest) -> None:
    fields = dataclasses.asdict(request_)
    fields["secomp"] = fields.pop("seccomp")
    with pytest.raises(TypeError, match="secomp"):
        RunRequest(**fields)
    spec = dataclasses.asdict(request_.sandbox)
    spec["mount_ns"] = spec.pop("mountns")
    with pytest.raises(TypeError, match="mount_ns"):
        SandboxSpec(**spec)


@dataclasses.dataclass(frozen=True)
class _Tampered(RunRequest):
    seccomp_off: bool = True


def test_the_fork_server_refuses_a_request_with_an_extra_key(
    request_: RunRequest, local_impl: LocalProvider
) -> None:
    """The real fork server: nothing runs, the setup error names the key."""
    engine = local_impl._start_engine()
    tampered = _Tampered(
        **{f.name: getattr(request_, f.name) for f in dataclasses.fields(request_)}
    )

    async def go() -> Outcome:
        return await execute(engine.server, tampered, stdin=None, timeout=10, output_cap=1 << 16)

    outcome = asyncio.run(go())
    assert outcome.stdout == ""
    assert "seccomp_off" in (outcome.setup_error or "")


def test_a_prebuilt_sandbox_that_cannot_attach_runs_nothing(
    request_: RunRequest, local_impl: LocalProvider
) -> None:
    """Init hands the request to the payload before it attaches the workspace: when the
    attach fails, the payload (its cgroups joined) never gets the go-ahead, and the
    setup error reaches the host."""
    engine = local_impl._start_engine()
    assert engine.server.warm == request_.sandbox  # a pre-built sandbox takes it
    missing = f"{request_.sandbox.workspaces}/no-such-workspace"
    broken = dataclasses.replace(request_, workspace=missing)

    async def go() -> Outcome:
        return await execute(
            engine.server, broken, warm=True, stdin=None, timeout=10, output_cap=1 << 16
        )

    outcome = asyncio.run(go())
    assert (outcome.stdout, outcome.stderr) == ("", "")
    assert "showing the workspace" in (outcome.setup_error or ""), outcome
