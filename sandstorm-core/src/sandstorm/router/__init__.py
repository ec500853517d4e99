"""The ``router`` provider: capability, cost and health routing between member providers.

>>> from sandstorm.router import RouterConfig, Route
>>> config = RouterConfig.load({"routes": [{"provider": "local"}]}, environ={})
>>> config.routes[0].member
'local'
"""

from __future__ import annotations

from ._breaker import BreakerState, CircuitBreaker
from ._config import BreakerConfig, Route, RouterConfig, load_routes_file
from ._policy import Call, RoutingDecision
from ._provider import LABEL_ROUTE, MemberHealth, RouterProvider

__all__ = [
    "LABEL_ROUTE",
    "BreakerConfig",
    "BreakerState",
    "Call",
    "CircuitBreaker",
    "MemberHealth",
    "Route",
    "RouterConfig",
    "RouterProvider",
    "RoutingDecision",
    "load_routes_file",
]
