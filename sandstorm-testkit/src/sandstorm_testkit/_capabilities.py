"""The other direction: every undeclared capability raises CapabilityNotSupported."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from sandstorm import (
    AsyncProvider,
    Capability,
    CapabilityNotSupported,
    NetworkPolicy,
    Workspace,
)

from ._base import LABEL, AsyncContract, WorkspaceFactory

__all__ = ["CapabilityContract"]

Probe = Callable[[AsyncProvider, Workspace, WorkspaceFactory], Awaitable[object]]


async def _stream(provider: AsyncProvider) -> None:
    async for _ in provider.stream("print(1)"):
        pass


def _labels(factory: WorkspaceFactory) -> dict[str, str]:
    return {LABEL: factory.run_id}


PROBES: dict[Capability, list[Probe]] = {
    Capability.PERSISTENCE: [
        lambda p, ws, f: f(persistent=True),
    ],
    Capability.SNAPSHOTS: [
        lambda p, ws, f: p.snapshot(ws),
        lambda p, ws, f: p.restore("sstk-snapshot"),
        lambda p, ws, f: p.list_snapshots(),
        lambda p, ws, f: p.delete_snapshot("sstk-snapshot"),
    ],
    Capability.GIT: [
        lambda p, ws, f: p.git_clone(ws, "file:///sstk/none.git"),
        lambda p, ws, f: p.git_status(ws),
        lambda p, ws, f: p.run("print(1)", git_repo="file:///sstk/none.git"),
    ],
    Capability.TEMPLATES: [
        lambda p, ws, f: f(persistent=False, template="sstk-template"),
        lambda p, ws, f: p.run("print(1)", workspace_template="sstk-template"),
    ],
    Capability.METRICS: [
        lambda p, ws, f: p.get_workspace_metrics(ws),
    ],
    Capability.NETWORK_POLICY: [
        lambda p, ws, f: f(persistent=False, network=NetworkPolicy.host()),
        lambda p, ws, f: p.run("print(1)", network=NetworkPolicy.host()),
    ],
    Capability.STREAMING: [
        lambda p, ws, f: p.run("print(1)", on_stdout=lambda text: None),
        lambda p, ws, f: p.run_in_workspace(ws, "print(1)", on_stderr=lambda text: None),
        lambda p, ws, f: _stream(p),
    ],
    Capability.FILES: [
        lambda p, ws, f: p.write_file(ws, "x.txt", b"x"),
        lambda p, ws, f: p.read_file(ws, "x.txt"),
        lambda p, ws, f: p.list_files(ws),
        lambda p, ws, f: p.delete_file(ws, "x.txt"),
    ],
    Capability.RESOURCE_LIMITS: [
        lambda p, ws, f: f(persistent=False, cpu=1),
        lambda p, ws, f: f(persistent=False, memory=256),
        lambda p, ws, f: p.run("print(1)", memory=256),
    ],
    Capability.COST: [
        lambda p, ws, f: p.estimate_cost(duration=60),
    ],
    Capability.INTERPRETER: [
        lambda p, ws, f: p.create_context(ws),
        lambda p, ws, f: p.run_code(ws, "1 + 1"),
        lambda p, ws, f: p.list_contexts(ws),
    ],
    Capability.PROCESSES: [
        lambda p, ws, f: p.start_process(ws, "sleep 1"),
        lambda p, ws, f: p.list_processes(ws),
        lambda p, ws, f: p.get_process(ws, "sstk-process"),
    ],
    Capability.PORTS: [
        lambda p, ws, f: p.expose_port(ws, 8080),
        lambda p, ws, f: p.unexpose_port(ws, 8080),
    ],
}
"""For each capability, calls that need it (checked only when it is undeclared)."""


class CapabilityContract(AsyncContract):
    """Declared capabilities are real (the other classes); undeclared ones are refused."""

    @pytest.mark.parametrize(
        "capability",
        [pytest.param(cap, marks=pytest.mark.undeclared(cap), id=cap.value) for cap in Capability],
    )
    async def test_undeclared_capability_raises(
        self,
        provider: AsyncProvider,
        new_workspace: WorkspaceFactory,
        capability: Capability,
    ) -> None:
        workspace = await new_workspace(persistent=False)
        accepted: list[str] = []
        for index, probe in enumerate(PROBES[capability]):
            try:
                outcome = await probe(provider, workspace, new_workspace)
            except CapabilityNotSupported as exc:
                if exc.capability != capability:
                    accepted.append(
                        f"probe {index} raised CapabilityNotSupported for {exc.capability}"
                    )
                continue
            accepted.append(f"probe {index} returned {outcome!r}"[:300])
        assert not accepted, (
            f"{provider.name} does not declare {capability} but accepted: " + "; ".join(accepted)
        )
        if capability is Capability.COST:
            result = await provider.run("print(1)")
            assert result.cost is None, "a provider without COST must not report a cost"
