"""Rate limits, quotas and the seeded fault mode."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from daytona import Daytona, DaytonaConfig
from daytona.common.errors import DaytonaForbiddenError, DaytonaRateLimitError

from sandstorm_daytona.emulator import (
    ConnectionDropped,
    EmulatorConfig,
    FaultRule,
    Faults,
    Quotas,
    RateLimit,
    create_app,
    running_emulator,
)

KEY = "limits-key"
H = {"Authorization": f"Bearer {KEY}"}


def test_emulator_rate_limit_429_with_headers_and_sdk_error() -> None:
    config = EmulatorConfig(
        api_keys={KEY: "org-l", "other": "org-m"},
        rate_limits={
            "authenticated": RateLimit(limit=3, ttl=60),
            "sandbox-create": RateLimit(limit=1, ttl=60),
        },
    )
    with running_emulator(config) as emu:
        seen = [httpx.get(f"{emu.api_url}/sandbox", headers=H) for _ in range(3)]
        assert [r.status_code for r in seen] == [200, 200, 200]
        assert [r.headers["x-ratelimit-remaining-authenticated"] for r in seen] == ["2", "1", "0"]
        assert seen[0].headers["x-ratelimit-limit-authenticated"] == "3"
        limited = httpx.get(f"{emu.api_url}/sandbox", headers=H)
        assert limited.status_code == 429
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert limited.headers["x-ratelimit-remaining-authenticated"] == "0"
        assert limited.json()["statusCode"] == 429
        # per key: another key is unaffected
        assert (
            httpx.get(
                f"{emu.api_url}/sandbox", headers={"Authorization": "Bearer other"}
            ).status_code
            == 200
        )
        sdk = Daytona(DaytonaConfig(api_key="other", api_url=emu.api_url, target="us"))
        sdk.create()
        with pytest.raises(DaytonaRateLimitError) as caught:
            sdk.create()
        assert caught.value.status_code == 429
        assert "retry-after" in {k.lower() for k in (caught.value.headers or {})}


def test_emulator_lifecycle_throttler_counts_start_stop_delete() -> None:
    config = EmulatorConfig(
        api_keys={KEY: "org-l"}, rate_limits={"sandbox-lifecycle": RateLimit(limit=2, ttl=60)}
    )
    with running_emulator(config) as emu:
        sid = httpx.post(f"{emu.api_url}/sandbox", headers=H, json={}).json()["id"]
        url = f"{emu.api_url}/sandbox/{sid}"
        assert httpx.get(url, headers=H).headers.get("x-ratelimit-limit-sandbox-lifecycle") is None
        first = httpx.post(f"{url}/stop", headers=H)
        assert first.headers["x-ratelimit-remaining-sandbox-lifecycle"] == "1"
        assert httpx.post(f"{url}/start", headers=H).status_code == 200
        refused = httpx.delete(url, headers=H)
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-limit-sandbox-lifecycle"] == "2"
        assert httpx.get(url, headers=H).json()["state"] == "started"  # not deleted


def test_emulator_quotas_answer_like_the_real_service() -> None:
    config = EmulatorConfig(api_keys={KEY: "org-q"}, quotas=Quotas(total_cpu=2, max_sandboxes=3))
    with running_emulator(config) as emu:
        sdk = Daytona(DaytonaConfig(api_key=KEY, api_url=emu.api_url, target="us"))
        a = sdk.create()
        b = sdk.create()
        with pytest.raises(
            DaytonaForbiddenError, match=r"Total CPU limit exceeded\. Maximum allowed: 2\."
        ):
            sdk.create()
        b.stop()  # stopped sandboxes free their cpu
        c = sdk.create()
        with pytest.raises(DaytonaForbiddenError, match="Sandbox limit exceeded"):
            sdk.create()
        with pytest.raises(DaytonaForbiddenError, match="Total CPU limit exceeded"):
            b.start()
        for s in (a, b, c):
            sdk.delete(s)


def test_emulator_faults_are_seeded_and_per_route() -> None:
    rules = (FaultRule(path="/api/sandbox", method="GET", kind=503, rate=0.5),)

    async def statuses(seed: int) -> list[int]:
        app = create_app(
            EmulatorConfig(api_keys={KEY: "org-f"}, faults=Faults(seed=seed, rules=rules))
        )
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://emu") as client:
                codes = [
                    (await client.get("/api/sandbox", headers=H)).status_code for _ in range(40)
                ]
                # other routes are untouched
                assert (await client.get("/api/regions", headers=H)).status_code == 200
                return codes
        finally:
            await app.state.emulator.aclose()

    first = asyncio.run(statuses(7))
    assert first == asyncio.run(statuses(7))
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 32
    assert first != asyncio.run(statuses(8))


def test_emulator_fault_kinds_over_a_real_socket() -> None:
    rules = (
        FaultRule(path="/api/regions", kind="drop"),
        FaultRule(path="/api/config", kind=429, retry_after=7),
        FaultRule(path="/api/health", kind="latency", latency=0.3),
        FaultRule(path="/api/sandbox", method="POST", kind=502, when="after"),
    )
    config = EmulatorConfig(api_keys={KEY: "org-f"}, faults=Faults(rules=rules))
    with running_emulator(config) as emu:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{emu.api_url}/regions", headers=H)
        throttled = httpx.get(f"{emu.api_url}/config", headers=H)
        assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "7")
        started = time.monotonic()
        assert httpx.get(f"{emu.api_url}/health").status_code == 200
        assert time.monotonic() - started >= 0.3
        # "after": the sandbox was created although the client saw a 502
        failed = httpx.post(f"{emu.api_url}/sandbox", headers=H, json={})
        assert failed.status_code == 502
        listed = httpx.get(f"{emu.api_url}/sandbox", headers=H).json()["items"]
        assert len(listed) == 1
        assert (
            httpx.delete(f"{emu.api_url}/sandbox/{listed[0]['id']}", headers=H).status_code == 200
        )


def test_emulator_drop_in_process_raises() -> None:
    async def main() -> None:
        app = create_app(
            EmulatorConfig(api_keys={KEY: "o"}, faults=Faults(rules=(FaultRule(kind="drop"),)))
        )
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://emu") as client:
                with pytest.raises(ConnectionDropped):
                    await client.get("/api/sandbox", headers=H)
        finally:
            await app.state.emulator.aclose()

    asyncio.run(main())


def test_emulator_fault_rule_cli_form() -> None:
    rule = FaultRule.parse("POST /api/sandbox=503@0.25")
    assert (rule.method, rule.path, rule.kind, rule.rate) == ("POST", "/api/sandbox", 503, 0.25)
    assert FaultRule.parse("*=latency@1:0.5").latency == 0.5
    assert FaultRule.parse("/toolbox/*=429:3").retry_after == 3
    assert FaultRule.parse("/x=drop").kind == "drop"
    with pytest.raises(ValueError, match="PATH=KIND"):
        FaultRule.parse("nonsense")
    with pytest.raises(ValueError):
        FaultRule.parse("/x=418")


def test_emulator_faults_reach_the_sdk_as_its_own_errors() -> None:
    from daytona.common.errors import DaytonaError, DaytonaServiceUnavailableError

    rules = (
        FaultRule(path="/toolbox/*/process/execute", kind="drop"),
        FaultRule(path="/api/sandbox/*", method="GET", kind=503),
    )
    config = EmulatorConfig(api_keys={KEY: "org-f"}, faults=Faults(rules=rules))
    with running_emulator(config) as emu:
        sdk = Daytona(DaytonaConfig(api_key=KEY, api_url=emu.api_url, target="us"))
        s = sdk.create()
        assert s.process.code_run("print(1)").result == "1\n"  # other toolbox routes work
        with pytest.raises(DaytonaError) as dropped:
            s.process.exec("echo never answered")
        assert dropped.value.status_code is None  # a transport failure, not an HTTP error
        with pytest.raises(DaytonaServiceUnavailableError):
            sdk.get(s.id)
        sdk.delete(s)
