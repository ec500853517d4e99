"""The router's configuration: routes (member providers) and the policy between them."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._config import ProviderConfig, env_field
from .._errors import ProviderConfigError

__all__ = ["BreakerConfig", "Route", "RouterConfig", "load_routes_file"]

Order = Literal["priority", "cheapest", "fastest"]


class Route(BaseModel):
    """One member provider of a router: which provider, its own config, its trust zone.

    ``trust`` names the zone the member runs in (default ``"local"`` for the ``local``
    provider, ``"remote"`` for any other). A call whose first-choice member is in one zone
    only goes to a member of another zone when that member lists the zone in
    ``accept_fallback_from`` (``"*"``: any zone).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, description="registered provider name, e.g. 'daytona'")
    name: str | None = Field(
        default=None, description="member name, unique in the router (default: the provider's)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict, repr=False, description="the member's own config keywords"
    )
    trust: str | None = Field(default=None, description="trust zone of the member")
    accept_fallback_from: tuple[str, ...] = Field(
        default=(), description="trust zones whose calls may fall back to this member"
    )

    @field_validator("provider")
    @classmethod
    def _not_router(cls, value: str) -> str:
        if value == "router":
            raise ValueError("a router cannot route to another router")
        return value

    @property
    def member(self) -> str:
        """The member's name in the router."""
        return self.name or self.provider

    @property
    def zone(self) -> str:
        """The member's trust zone."""
        if self.trust:
            return self.trust
        return "local" if self.provider == "local" else "remote"


class BreakerConfig(BaseModel):
    """The per-member circuit breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: int = Field(default=3, ge=1, description="consecutive failures that open it")
    reset_after: float = Field(
        default=10.0, gt=0, description="seconds open before a half-open probe"
    )
    quota_cooldown: float = Field(
        default=300.0, gt=0, description="seconds a member is skipped after QuotaExceeded"
    )


OrderFunction = Callable[..., Any]


class RouterConfig(ProviderConfig):
    """Configuration of the ``router`` provider.

    ``routes`` is the ordered member list: a list of :class:`Route` (or dicts), or a
    string: a JSON list, or the path of a TOML file whose ``[[routes]]`` tables (and
    top-level ``order``/``breaker`` keys) configure the router. It falls back to
    ``SANDSTORM_ROUTES``. ``order`` is ``"priority"``, ``"cheapest"``, ``"fastest"``, a
    function ``(candidates, call) -> ordered candidates`` or ``"module:function"``.
    """

    routes: tuple[Route, ...] = env_field(
        "SANDSTORM_ROUTES",
        min_length=1,
        description="the members, in priority order (list, JSON list or TOML file path)",
    )
    order: Order | str | OrderFunction = env_field(
        "SANDSTORM_ROUTER_ORDER",
        default="priority",
        description="priority, cheapest, fastest, a function or 'module:function'",
    )
    breaker: BreakerConfig = BreakerConfig()
    latency_alpha: float = Field(
        default=0.3, gt=0, le=1, description="weight of the newest latency in the average"
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_routes(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        routes = values.get("routes")
        if not isinstance(routes, str | Path):
            return values
        text = str(routes).strip()
        if text.startswith(("[", "{")):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"routes is not a valid JSON list: {exc.msg}") from None
            if isinstance(parsed, dict):
                raise ValueError(
                    "routes is a JSON object; it takes a JSON list of routes "
                    '(one route: [{"provider": ...}])'
                )
            return {**values, "routes": parsed}
        data = load_routes_file(text)
        merged = {k: v for k, v in data.items() if k != "routes" and k not in values}
        return {**values, **merged, "routes": data.get("routes", [])}

    @field_validator("routes")
    @classmethod
    def _unique(cls, routes: tuple[Route, ...]) -> tuple[Route, ...]:
        seen: set[str] = set()
        for route in routes:
            if route.member in seen:
                raise ValueError(
                    f"two routes are called {route.member!r}: give each a distinct name="
                )
            seen.add(route.member)
        return routes

    @field_validator("order")
    @classmethod
    def _order(cls, value: Any) -> Any:
        if callable(value) or value in ("priority", "cheapest", "fastest"):
            return value
        if isinstance(value, str) and ":" in value:
            module, _, attr = value.partition(":")
            try:
                target = getattr(__import__(module, fromlist=[attr]), attr)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"cannot import order function {value!r}: {exc}") from None
            if not callable(target):
                raise ValueError(f"order function {value!r} is not callable")
            return target
        raise ValueError(
            "order must be 'priority', 'cheapest', 'fastest', a function or 'module:function'"
        )


def load_routes_file(path: str | Path) -> dict[str, Any]:
    """The router settings in the TOML file at ``path`` (``[[routes]]`` tables and policy)."""
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProviderConfigError(
            f"routes file {str(file)!r} does not exist (routes= takes a list of routes, a "
            "JSON list or the path of a TOML file with [[routes]] tables)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProviderConfigError(f"cannot read routes file {str(file)!r}: {exc}") from None
