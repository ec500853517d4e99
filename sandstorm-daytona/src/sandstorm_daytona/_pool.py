"""httpx's connection pool, with bookkeeping that costs one pass over the connections.

httpcore 1.0's ``AsyncConnectionPool`` re-examines every connection each time a request
starts or ends: it asks each whether it has expired (for an idle HTTP/1.1 connection, a
``poll`` of its socket and an address look-up) and counts the idle ones once per idle
connection, so the work per request grows with the square of the pool's size. Profiled
with 256 concurrent runs, that was the largest item of the provider's client CPU at 16
connections, and most of it at 128. :class:`LeanPool` assigns requests as httpcore does
(first available connection to the origin, else a new one under the limit, else one in
place of an idle one), but asks a connection whether it has expired only when about to
hand it a request, and keeps the connections in the order they were last used, so a
request costs a short scan and about one ``poll``.
"""

from __future__ import annotations

import httpcore
import httpx

__all__ = ["WRITTEN_FOR", "LeanPool", "lean_transport"]

WRITTEN_FOR = "1.0."
"""The httpcore releases whose private pool internals :class:`LeanPool` overrides; with
any other, httpx's own pool is used unchanged."""


class LeanPool(httpcore.AsyncConnectionPool):
    """``httpcore.AsyncConnectionPool`` with one pass of bookkeeping per request."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        # Connections handed a request move to the end: the scan meets the least recently
        # used first, idle in all likelihood, instead of walking past the busy ones.
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = idle = None
            for connection in list(connections):
                if connection.is_closed():
                    connections.remove(connection)
                elif connection.can_handle_request(origin) and connection.is_available():
                    connections.remove(connection)
                    if connection.has_expired():  # the server closed it, or keep-alive ran out
                        closing.append(connection)
                    else:
                        chosen = connection
                        break
                elif idle is None and connection.is_idle():
                    idle = connection
            if chosen is None and len(connections) >= self._max_connections and idle:
                connections.remove(idle)
                closing.append(idle)
            if chosen is None and len(connections) < self._max_connections:
                chosen = self.create_connection(origin)
            if chosen is not None:
                connections.append(chosen)
                pool_request.assign_to_connection(chosen)
        return closing


def lean_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's default transport with ``limits``, its pool a :class:`LeanPool` (unless
    this httpcore is not a release :class:`LeanPool` was written against)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    if (
        type(pool) is httpcore.AsyncConnectionPool
        and httpcore.__version__.startswith(WRITTEN_FOR)
        and hasattr(pool, "_assign_requests_to_connections")
    ):
        pool.__class__ = LeanPool
    return transport
