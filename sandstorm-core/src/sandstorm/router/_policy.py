"""What a call needs, which members can serve it, and in what order they are tried."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._capabilities import Capability
from .._models import NetworkPolicy, Resources

if TYPE_CHECKING:
    from ._provider import Member

__all__ = ["Call", "RoutingDecision"]


@dataclass(frozen=True)
class Call:
    """What a routed call needs from the member that serves it."""

    operation: str
    capabilities: frozenset[Capability] = frozenset()
    language: str | None = None
    resources: Resources = field(default_factory=Resources)
    timeout: float | None = None
    one_shot: bool = False
    network: NetworkPolicy | None = None
    git_repo: str | None = None


@dataclass
class RoutingDecision:
    """One routing decision: the member chosen, why, and what was tried or skipped first.

    Passed to the ``sandstorm_routed`` hook and summed up in the ``route`` audit event.
    """

    operation: str
    order: str
    member: str | None = None
    reason: str = ""
    candidates: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    """``(member, error)`` for each member that failed before this one, code not started."""

    def details(self) -> dict[str, Any]:
        """The decision as audit details (JSON-ready)."""
        return {
            "operation": self.operation,
            "order": self.order,
            "member": self.member,
            "reason": self.reason,
            "candidates": list(self.candidates),
            "skipped": dict(self.skipped),
            "fallbacks": [list(pair) for pair in self.fallbacks],
        }


def missing(member: Member, call: Call) -> str | None:
    """What ``member`` lacks for ``call`` (capability, language, limit), else ``None``."""
    lacking = sorted(str(cap) for cap in call.capabilities - member.capabilities)
    if lacking:
        return ", ".join(lacking)
    provider = member.provider
    if call.language is not None and call.language not in provider.languages:
        return f"language {call.language}"
    limits = (
        ("cpu", call.resources.cpu, provider.max_cpu),
        ("memory", call.resources.memory, provider.max_memory),
        ("disk", call.resources.disk, provider.max_disk),
    )
    for what, wanted, most in limits:
        if wanted is not None and most is not None and wanted > most:
            return f"{what} {wanted} (at most {most})"
    if (
        call.timeout is not None
        and provider.max_timeout is not None
        and call.timeout > provider.max_timeout
    ):
        return f"timeout {call.timeout} (at most {provider.max_timeout})"
    return None


async def ordered(
    order: str | Callable[..., Any], members: Sequence[Member], call: Call
) -> tuple[list[Member], str]:
    """``members`` in the order the policy tries them, and a word on why."""
    if order == "priority":
        return list(members), "priority order"
    if order == "fastest":

        def latency(item: tuple[int, Member]) -> tuple[float, int]:
            index, member = item
            return (member.latency if member.latency is not None else 0.0, index)

        ranked = [m for _, m in sorted(enumerate(members), key=latency)]
        shown = ", ".join(
            f"{m.name}={m.latency:.3f}s" if m.latency is not None else f"{m.name}=unmeasured"
            for m in ranked
        )
        return ranked, f"fastest first (average run latency: {shown})"
    if order == "cheapest":
        costs = {m.name: await _cost(m, call) for m in members}
        ranked = [
            m for _, m in sorted(enumerate(members), key=lambda it: (costs[it[1].name], it[0]))
        ]
        shown = ", ".join(
            f"{m.name}={costs[m.name]:.6f}" if math.isfinite(costs[m.name]) else f"{m.name}=?"
            for m in ranked
        )
        return ranked, f"cheapest first (estimated cost: {shown})"
    assert callable(order)
    result = order(list(members), call)
    if inspect.isawaitable(result):
        result = await result
    chosen = list(result)
    known = {id(m) for m in members}
    if any(id(m) not in known for m in chosen):
        raise TypeError("the router's order function returned a member it was not given")
    name = getattr(order, "__qualname__", repr(order))
    return chosen, f"order function {name}"


async def _cost(member: Member, call: Call) -> float:
    if Capability.COST not in member.capabilities:
        return math.inf
    from .._errors import SandstormError

    try:
        estimate = await member.provider.estimate_cost(
            duration=call.timeout if call.timeout is not None else 60.0,
            cpu=call.resources.cpu,
            memory=call.resources.memory,
            disk=call.resources.disk,
        )
    except SandstormError:
        return math.inf
    return estimate.total
