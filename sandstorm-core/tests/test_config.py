"""Provider configuration: keyword arguments first, then the environment."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from sandstorm import ProviderConfig, ProviderConfigError, env_field


class ExampleConfig(ProviderConfig):
    env_prefix = "EXAMPLE_"

    api_key: SecretStr = env_field("EXAMPLE_API_KEY", "LEGACY_KEY")
    region: str = "eu"
    retries: int = 3


def test_keywords_win_over_the_environment() -> None:
    config = ExampleConfig.load({"region": "us"}, {"EXAMPLE_REGION": "ap", "EXAMPLE_API_KEY": "k"})
    assert config.region == "us"
    assert config.api_key.get_secret_value() == "k"


def test_environment_fills_gaps_in_declared_order() -> None:
    config = ExampleConfig.load({}, {"LEGACY_KEY": "old", "EXAMPLE_RETRIES": "7"})
    assert config.api_key.get_secret_value() == "old"
    assert config.retries == 7


def test_errors_name_the_field_and_never_echo_values() -> None:
    with pytest.raises(ProviderConfigError) as info:
        ExampleConfig.load({"api_key": "sk-very-secret", "retries": "many", "colour": "red"}, {})
    message = str(info.value)
    assert "retries" in message
    assert "colour" in message
    assert "known fields" in message
    assert "sk-very-secret" not in message
    assert "many" not in message


def test_missing_required_secret_is_a_config_error() -> None:
    with pytest.raises(ProviderConfigError, match="api_key"):
        ExampleConfig.load({}, {})


def test_secret_is_hidden_in_repr() -> None:
    config = ExampleConfig.load({"api_key": "sk-very-secret"}, {})
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config.model_dump())
