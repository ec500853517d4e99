"""The pytest plugin of the Sandstorm conformance kit (``pytest11`` entry point ``sandstorm``).

Inert unless used: it adds options, markers and ``sandstorm_*`` fixtures, and collects no
tests. ``pytest --sandstorm-provider=NAME`` with no test paths runs the kit's whole contract
(:mod:`sandstorm_testkit.suite`) against the provider installed under ``NAME``.
"""

from __future__ import annotations

import importlib.util

import pytest

from ._settings import SETTINGS_KEY, KitSettings, settings_from_config

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_collection_modifyitems",
    "pytest_runtest_setup",
    "sandstorm_settings",
    "sandstorm_run_id",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sandstorm", "Sandstorm conformance kit")
    group.addoption(
        "--sandstorm-provider",
        metavar="NAME",
        default=None,
        help="run the conformance contract against the installed provider NAME "
        "(with no test paths, runs the kit's whole suite)",
    )
    group.addoption(
        "--sandstorm-config",
        metavar="FILE",
        default=None,
        help="JSON or TOML file of keyword arguments for the provider's config",
    )
    group.addoption(
        "--sandstorm-live",
        action="store_true",
        default=False,
        help="enable tests marked `live` and use the `sandstorm-live` hypothesis profile",
    )
    group.addoption(
        "--sandstorm-expected-failures",
        metavar="FILE",
        default=None,
        help="TOML or JSON file mapping test names to the reason the provider deviates; "
        "each becomes a strict expected failure (default: the [tool.sandstorm-testkit] "
        "expected-failures table of ./pyproject.toml, if any)",
    )
    group.addoption(
        "--sandstorm-timeout",
        metavar="SECONDS",
        type=float,
        default=300.0,
        help="longest each phase (setup, call, teardown) of a contract test may take; a "
        "provider that hangs fails that test and the session goes on (default 300)",
    )
    group.addoption(
        "--sandstorm-report",
        metavar="PATH",
        default=None,
        help="write a capability matrix to PATH (JSON) and a Markdown sibling (.md)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): the test needs these sandstorm capabilities; it is "
        "skipped when the provider does not declare one of them",
    )
    config.addinivalue_line(
        "markers",
        "undeclared(capability): the test runs only when the provider does NOT declare "
        "the capability (it checks that CapabilityNotSupported is raised)",
    )
    config.addinivalue_line(
        "markers",
        "live: talks to a real remote service; contract tests run only with --sandstorm-live",
    )
    from ._hypothesis import register_profiles

    register_profiles()
    settings = settings_from_config(config)
    config.stash[SETTINGS_KEY] = settings
    from . import _bounded

    if not config.pluginmanager.is_registered(_bounded):
        config.pluginmanager.register(_bounded, "sandstorm-bounded")
    if settings.provider_name and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [_suite_path()]
    if settings.report is not None:
        from ._report import CapabilityReport

        config.pluginmanager.register(CapabilityReport(settings), "sandstorm-report")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from ._marks import apply_expected_failures

    apply_expected_failures(items, config.stash[SETTINGS_KEY].expected_failures)


def pytest_runtest_setup(item: pytest.Item) -> None:
    from ._marks import is_contract_item

    if not is_contract_item(item) or item.get_closest_marker("live") is None:
        return
    if not item.config.stash[SETTINGS_KEY].live:
        pytest.skip("live test: pass --sandstorm-live to run it")


@pytest.fixture(scope="session")
def sandstorm_settings(pytestconfig: pytest.Config) -> KitSettings:
    """The kit's resolved command-line options."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def sandstorm_run_id(sandstorm_settings: KitSettings) -> str:
    """A short id unique to this pytest session; every workspace the kit makes carries it."""
    return sandstorm_settings.run_id


def _suite_path() -> str:
    spec = importlib.util.find_spec("sandstorm_testkit.suite")
    assert spec is not None
    assert spec.origin is not None
    return spec.origin
