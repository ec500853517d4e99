"""One pooled ``httpx.AsyncClient`` per provider, with retries for requests safe to repeat."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from sandstorm import (
    ProviderAPIError,
    ProviderUnavailable,
    RateLimited,
    SandstormError,
)

from ._config import DaytonaConfig, RetryPolicy
from ._errors import error_from_response, error_from_transport
from ._pool import lean_transport

__all__ = ["WIRE_VERSION", "DaytonaHTTP", "Retryable"]

log = logging.getLogger("sandstorm.daytona")

WIRE_VERSION = "0.226.1"
"""The Daytona SDK version whose wire format this client speaks (sent as a header)."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Retryable(Exception):
    """Internal: a failure that the retry loop may try again; wraps the mapped error."""

    def __init__(self, error: SandstormError) -> None:
        super().__init__(str(error))
        self.error = error


def _wait(policy: RetryPolicy) -> Any:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        error = exc.error if isinstance(exc, Retryable) else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return float(error.retry_after) + random.uniform(0, policy.jitter)
        backoff = policy.initial_backoff * 2 ** (state.attempt_number - 1)
        return float(min(policy.max_backoff, backoff) + random.uniform(0, policy.jitter))

    return wait


class DaytonaHTTP:
    """Sends main-API and toolbox requests; maps every failure to the Sandstorm tree.

    A request is retried (backoff with jitter, ``Retry-After`` honoured, bounded by the
    policy's deadline) when it is safe to repeat: a 429 (the server refused it), a
    connection that was never established, or -- for idempotent requests only -- a
    502/503/504 or a connection lost mid-request.
    """

    def __init__(self, config: DaytonaConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.api_url = config.api_url
        headers = {
            "Authorization": f"Bearer {config.api_key.get_secret_value()}",
            "Accept": "application/json",
            "X-Daytona-Source": "sdk-python",
            "X-Daytona-SDK-Version": WIRE_VERSION,
            "User-Agent": f"sandstorm-daytona/0.1.0 sdk-python/{WIRE_VERSION}",
        }
        if config.organization_id:
            headers["X-Daytona-Organization-ID"] = config.organization_id
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_connections,
        )
        self.client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout),
            limits=limits,
            transport=transport or lean_transport(limits),
        )
        # Requests wait here rather than in httpcore's pool queue, whose bookkeeping costs
        # grow with the square of the number of waiting requests.
        self._slots = asyncio.Semaphore(config.max_connections)

    def __repr__(self) -> str:
        return f"DaytonaHTTP(api_url={self.api_url!r})"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The headers every request carries (used for WebSocket upgrades)."""
        return dict(self.client.headers)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    def api(self, path: str) -> str:
        """The full URL of a main-API path."""
        return f"{self.api_url}{path}"

    async def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request (with retries); return the reply or raise a mapped error.

        Statuses in ``ok`` are returned to the caller even though they are errors. The
        reply's ``extensions["sandstorm_attempts"]`` says which try it answered.
        """
        if self.client.is_closed:
            raise ProviderUnavailable("the provider is closed", provider="daytona")
        safe = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        policy = self.config.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
            wait=_wait(policy),
            retry=retry_if_exception(lambda exc: isinstance(exc, Retryable)),
            reraise=True,
        )
        request_timeout = httpx.Timeout(timeout) if timeout is not None else None
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        async with self._slots:
                            response = await self.client.request(
                                method,
                                url,
                                json=json,
                                params=params,
                                files=files,
                                data=data,
                                headers=headers,
                                timeout=request_timeout or httpx.USE_CLIENT_DEFAULT,
                            )
                    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                        raise Retryable(error_from_transport(exc, what)) from exc
                    except httpx.TransportError as exc:
                        lost = error_from_transport(exc, what)
                        if safe:
                            raise Retryable(lost) from exc
                        raise lost from exc
                    if response.is_success or response.status_code in ok:
                        response.extensions["sandstorm_attempts"] = (
                            attempt.retry_state.attempt_number
                        )
                        return response
                    error = error_from_response(response, what)
                    if response.status_code == 429 or (
                        safe and response.status_code in _RETRY_STATUSES
                    ):
                        log.debug("%s: %s, retrying", what, response.status_code)
                        raise Retryable(error)
                    raise error
        except Retryable as exc:
            raise exc.error from exc.__cause__
        raise AssertionError("unreachable")  # pragma: no cover


def is_not_found(exc: BaseException) -> bool:
    """True for a mapped 404."""
    return isinstance(exc, ProviderAPIError) and exc.status == 404


def is_not_started(exc: BaseException) -> bool:
    """True for the toolbox's answer about a sandbox that is not running: 400 "... Is the
    Sandbox started?" (runner ``apps/runner/pkg/api/controllers/proxy.go``)."""
    if not isinstance(exc, ProviderAPIError) or exc.status != 400:
        return False
    text = exc.message.lower()
    return "is the sandbox started" in text or "not started" in text
