"""DaytonaConfig: environment fallbacks, validation, and the secret never leaking."""

from __future__ import annotations

import pytest

import sandstorm
from sandstorm import ProviderConfigError
from sandstorm_daytona import DaytonaConfig, DaytonaProvider, Pricing

pytestmark = pytest.mark.anyio


def test_env_fallbacks(secret: str) -> None:
    config = DaytonaConfig.load(
        {},
        environ={
            "DAYTONA_API_KEY": secret,
            "DAYTONA_API_URL": "http://127.0.0.1:1234/api/",
            "DAYTONA_TARGET": "eu",
            "DAYTONA_ORGANIZATION_ID": "org-1",
        },
    )
    assert config.api_key.get_secret_value() == secret
    assert config.api_url == "http://127.0.0.1:1234/api"
    assert config.region == "eu"
    assert config.organization_id == "org-1"


def test_kwargs_win_over_env(secret: str) -> None:
    config = DaytonaConfig.load(
        {"api_key": "from-kwargs", "region": "us"},
        environ={"DAYTONA_API_KEY": secret, "DAYTONA_TARGET": "eu"},
    )
    assert config.api_key.get_secret_value() == "from-kwargs"
    assert config.region == "us"


def test_defaults(secret: str) -> None:
    config = DaytonaConfig.load({"api_key": secret}, environ={})
    assert config.api_url == "https://app.daytona.io/api"
    assert config.default_timeout == 120.0
    assert config.region is None
    assert config.pricing.cpu_per_second == pytest.approx(0.000014)
    assert config.pricing.memory_gib_per_second == pytest.approx(0.0000045)
    assert config.pricing.disk_gib_per_second == pytest.approx(0.00000003)
    assert "pricing" in config.pricing.source


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(ProviderConfigError, match="api_key"):
        DaytonaConfig.load({}, environ={})


def test_bad_url_is_rejected_without_echoing_the_key(secret: str) -> None:
    with pytest.raises(ProviderConfigError, match="api_url") as info:
        DaytonaConfig.load({"api_key": secret, "api_url": "ftp://x"}, environ={})
    assert secret not in str(info.value)


def test_secret_never_in_repr(secret: str) -> None:
    config = DaytonaConfig.load({"api_key": secret}, environ={})
    assert secret not in repr(config)
    assert secret not in str(config)
    assert secret not in config.model_dump_json()
    provider = DaytonaProvider(config)
    assert secret not in repr(provider)
    assert secret not in repr(provider._http)


def test_pricing_override(secret: str) -> None:
    pricing = Pricing(cpu_per_second=1.0, memory_gib_per_second=0.5, disk_gib_per_second=0.0)
    config = DaytonaConfig.load({"api_key": secret, "pricing": pricing}, environ={})
    assert config.pricing.cpu_per_second == 1.0


async def test_estimate_cost_rounds_resources_up(secret: str) -> None:
    provider = DaytonaProvider(DaytonaConfig.load({"api_key": secret}, environ={}))
    async with provider:
        estimate = await provider.estimate_cost(duration=100, cpu=1.5, memory=1025, disk=3072)
    # 1.5 cores -> 2 vCPU, 1025 MiB -> 2 GiB, 3072 MiB -> 3 GiB
    assert estimate.breakdown["cpu"] == pytest.approx(2 * 0.000014 * 100)
    assert estimate.breakdown["memory"] == pytest.approx(2 * 0.0000045 * 100)
    assert estimate.breakdown["disk"] == pytest.approx(3 * 0.00000003 * 100)
    assert estimate.total == pytest.approx(sum(estimate.breakdown.values()))
    assert estimate.currency == "USD"


async def test_free_storage_is_not_billed(secret: str) -> None:
    pricing = Pricing(
        cpu_per_second=0.0, memory_gib_per_second=0.0, disk_gib_per_second=1.0, free_disk_gib=5
    )
    config = DaytonaConfig.load({"api_key": secret, "pricing": pricing}, environ={})
    async with DaytonaProvider(config) as provider:
        small = await provider.estimate_cost(duration=10, disk=3072)
        large = await provider.estimate_cost(duration=10, disk=8192)
    assert small.breakdown["disk"] == 0.0
    assert large.breakdown["disk"] == pytest.approx(3 * 10)  # 8 GiB, 5 of them free


def test_registered_by_entry_point() -> None:
    assert sandstorm.load_provider_class("daytona") is DaytonaProvider
    info = DaytonaProvider.info()
    assert info.name == "daytona"
    assert {str(c) for c in sandstorm.Capability} <= info.capabilities
    assert info.languages == {"python", "javascript", "typescript", "shell"}


def test_get_provider_by_name(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", secret)
    monkeypatch.setenv("DAYTONA_API_URL", "http://127.0.0.1:9/api")
    provider = sandstorm.get_async_provider("daytona")
    assert isinstance(provider, DaytonaProvider)
    assert provider.config.api_url == "http://127.0.0.1:9/api"
