"""Cost, streaming, templates and resource limits."""

from __future__ import annotations

import math
import time

import pytest

from sandstorm import (
    AsyncProvider,
    Capability,
    OutputChunk,
    ProviderConfigError,
    TemplateNotFound,
    TerminationReason,
)

from ._base import AsyncContract, WorkspaceFactory
from ._helpers import show

__all__ = ["CostContract", "ResourceLimitsContract", "StreamingContract", "TemplateContract"]


@pytest.mark.requires(Capability.COST)
class CostContract(AsyncContract):
    """Estimates have a consistent shape and grow with what is asked for; results carry cost."""

    async def test_estimate_shape(self, provider: AsyncProvider) -> None:
        estimate = await provider.estimate_cost(duration=3600, cpu=1, memory=1024, disk=1024)
        assert math.isfinite(estimate.total)
        assert estimate.total >= 0
        assert len(estimate.currency) == 3, estimate.currency
        assert estimate.currency.isupper(), estimate.currency
        assert estimate.duration == 3600
        assert all(math.isfinite(v) and v >= 0 for v in estimate.breakdown.values())
        if estimate.breakdown:
            assert math.isclose(
                sum(estimate.breakdown.values()), estimate.total, rel_tol=1e-6, abs_tol=1e-9
            )

    async def test_estimate_is_monotone(self, provider: AsyncProvider) -> None:
        hour = await provider.estimate_cost(duration=3600, cpu=1, memory=1024)
        two = await provider.estimate_cost(duration=7200, cpu=1, memory=1024)
        bigger = await provider.estimate_cost(duration=3600, cpu=4, memory=8192)
        assert two.total >= hour.total
        assert bigger.total >= hour.total
        assert (await provider.estimate_cost(duration=0)).total <= hour.total

    async def test_negative_duration_is_rejected(self, provider: AsyncProvider) -> None:
        with pytest.raises(ProviderConfigError):
            await provider.estimate_cost(duration=-1)

    async def test_results_carry_cost(self, provider: AsyncProvider) -> None:
        result = await provider.run("print(1)")
        assert result.cost is not None, result
        assert result.cost >= 0, result


@pytest.mark.requires(Capability.STREAMING)
class StreamingContract(AsyncContract):
    """Output reaches callbacks and iterators while the code is still running."""

    SLOW = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "print('err-first', file=sys.stderr, flush=True)\n"
        "time.sleep(2)\n"
        "print('second', flush=True)\n"
    )

    async def test_callbacks_receive_output_while_running(self, provider: AsyncProvider) -> None:
        seen: list[tuple[float, str, str]] = []
        started = time.monotonic()
        result = await provider.run(
            self.SLOW,
            on_stdout=lambda text: seen.append((time.monotonic(), "out", text)),
            on_stderr=lambda text: seen.append((time.monotonic(), "err", text)),
            timeout=60,
        )
        ended = time.monotonic()
        assert result.stdout == "first\nsecond\n", show(result)
        assert "".join(t for _, s, t in seen if s == "out") == result.stdout
        assert "".join(t for _, s, t in seen if s == "err") == result.stderr == "err-first\n"
        first = next(at for at, s, t in seen if s == "out" and "first" in t)
        assert first <= ended - 1.0, (
            f"'first' arrived {first - started:.2f}s after start and the run ended at "
            f"{ended - started:.2f}s: output was not streamed"
        )

    async def test_stream_iterator(self, provider: AsyncProvider) -> None:
        stream = provider.stream(self.SLOW, timeout=60)
        chunks: list[OutputChunk] = [chunk async for chunk in stream]
        assert stream.result is not None
        assert "".join(c.text for c in chunks if c.stream == "stdout") == stream.result.stdout
        assert "".join(c.text for c in chunks if c.stream == "stderr") == "err-first\n"

    async def test_streaming_in_a_workspace(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace()
        seen: list[str] = []
        result = await provider.run_in_workspace(
            workspace, "print('a'); print('b')", on_stdout=seen.append
        )
        assert "".join(seen) == result.stdout == "a\nb\n"


@pytest.mark.requires(Capability.TEMPLATES)
class TemplateContract(AsyncContract):
    """Unknown templates are refused with the known ones listed; known ones run code."""

    async def test_unknown_template_lists_known(self, provider: AsyncProvider) -> None:
        with pytest.raises(TemplateNotFound) as caught:
            await provider.run("print(1)", workspace_template="sstk-no-such-template")
        assert caught.value.name == "sstk-no-such-template"
        assert "sstk-no-such-template" not in caught.value.known

    async def test_known_template_runs_code(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        with pytest.raises(TemplateNotFound) as caught:
            await new_workspace(template="sstk-no-such-template")
        if not caught.value.known:
            pytest.skip(
                f"{provider.name} declares templates but has none configured "
                "(configure one, e.g. with --sandstorm-config, to test this)"
            )
        template = caught.value.known[0]
        workspace = await new_workspace(template=template)
        assert workspace.template == template
        result = await provider.run_in_workspace(workspace, "print('templated')")
        assert result.stdout == "templated\n", show(result)


MEMORY_HOG = (
    "block = bytearray({mib} << 20)\n"
    "for i in range(0, len(block), 4096):\n"
    "    block[i] = 1\n"
    "print('allocated', flush=True)\n"
)


@pytest.mark.requires(Capability.RESOURCE_LIMITS)
class ResourceLimitsContract(AsyncContract):
    """Requested limits are recorded on the workspace and the memory limit is enforced."""

    async def test_resources_are_recorded(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(cpu=1, memory=256)
        assert workspace.resources.cpu == 1
        assert workspace.resources.memory == 256

    async def test_memory_limit_is_enforced(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(memory=128)
        small = await provider.run_in_workspace(workspace, MEMORY_HOG.format(mib=16), timeout=60)
        assert small.stdout == "allocated\n", show(small)
        big = await provider.run_in_workspace(workspace, MEMORY_HOG.format(mib=512), timeout=60)
        assert not big.ok, show(big)
        assert "allocated" not in big.stdout
        assert big.reason in {TerminationReason.MEMORY_LIMIT, TerminationReason.SIGNALED} or (
            "MemoryError" in big.stderr
        ), show(big)

    async def test_one_shot_memory_limit(self, provider: AsyncProvider) -> None:
        result = await provider.run(MEMORY_HOG.format(mib=512), memory=128, timeout=60)
        assert not result.ok, show(result)

    async def test_invalid_resources_raise_config_error(self, provider: AsyncProvider) -> None:
        with pytest.raises(ProviderConfigError):
            await provider.run("print(1)", cpu=-1)
        with pytest.raises(ProviderConfigError):
            await provider.run("print(1)", memory=0)
