"""Map Daytona HTTP replies and transport failures onto the Sandstorm error tree."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
from pydantic import ValidationError

from sandstorm import (
    AuthenticationError,
    NetworkError,
    ProviderAPIError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    ResourceAllocationError,
    SandstormError,
)

from ._wire import ApiErrorBody

__all__ = ["error_from_response", "error_from_transport", "parse_retry_after", "request_id_of"]

PROVIDER = "daytona"
_REQUEST_ID_HEADERS = ("x-request-id", "x-daytona-request-id", "request-id", "x-amzn-requestid")
_QUOTA_WORDS = ("quota", "exceed", "limit reached", "maximum number", "too many sandboxes")
_RESOURCE_WORDS = ("cpu", "memory", "disk", "gpu", "resource", "capacity", "no available runner")


def request_id_of(response: httpx.Response) -> str | None:
    """The request id the server put on ``response``, if any."""
    for name in _REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's own message and error code from an error reply."""
    text = response.text
    try:
        body = ApiErrorBody.model_validate_json(text)
    except ValidationError:
        return (text.strip()[:500] or response.reason_phrase or "no message"), None
    message: Any = body.message
    if isinstance(message, list):
        message = ", ".join(str(m) for m in message)
    message = message or body.error or response.reason_phrase or "no message"
    return str(message), body.code


def error_from_response(response: httpx.Response, what: str) -> SandstormError:
    """The Sandstorm error for a non-2xx ``response`` to the operation ``what``.

    404 is returned as a plain :class:`ProviderAPIError` here; callers that know which
    object was missing turn it into ``WorkspaceNotFound`` and friends.
    """
    status = response.status_code
    message, code = server_message(response)
    text = f"{what}: {message}" + (f" [{code}]" if code else "")
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "status": status,
        "request_id": request_id_of(response),
    }
    lowered = message.lower()
    if status == 401:
        return AuthenticationError(text, **kwargs)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimited(text, retry_after=retry_after, **kwargs)
    if status in (400, 403, 422) and any(word in lowered for word in _QUOTA_WORDS):
        return QuotaExceeded(text, **kwargs)
    if status in (400, 409, 422) and any(word in lowered for word in _RESOURCE_WORDS):
        return ResourceAllocationError(text, **kwargs)
    if status == 403:
        return AuthenticationError(text, **kwargs)
    if status >= 500:
        return ProviderUnavailable(text, **kwargs)
    return ProviderAPIError(text, **kwargs)


def error_from_transport(exc: httpx.TransportError, what: str) -> NetworkError:
    """A :class:`NetworkError` for a connection that failed, without the URL's secrets."""
    kind = type(exc).__name__
    detail = str(exc) or kind
    return NetworkError(f"{what}: {kind}: {detail}", provider=PROVIDER)
