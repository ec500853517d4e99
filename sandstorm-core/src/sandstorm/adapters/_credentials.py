"""Credentials in URLs: taken out before a URL is used, shown, logged or audited."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["redact_credentials", "scrub_credentials", "split_credentials"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_MIN_SECRET = 3
"""Shorter secrets are not replaced in text: ``"a"`` would blank out every letter a."""


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user-info, and the username and password apart, percent-decoded.

    The host is kept exactly as written (IPv6 brackets, port, case): only the user-info goes.
    A URL without user-info comes back unchanged with ``(None, None)``; so does text that is
    not a URL. A username without a password gives ``password=None``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostport))
    return clean, unquote(user), unquote(password) if colon else None


def redact_credentials(url: str) -> str:
    """``url`` with its user-info replaced by ``***`` (for messages, logs and audit records)."""
    clean, user, password = split_credentials(url)
    if user is None and password is None:
        return url
    scheme, sep, rest = clean.partition("://")
    return f"{scheme}{sep}***@{rest}" if sep else clean


def scrub_credentials(text: str, *secrets: str) -> str:
    """``text`` with every URL user-info and each of ``secrets`` replaced by ``***``.

    Each secret is also replaced in its percent-decoded and percent-encoded forms, the ways a
    tool may echo it back. Secrets shorter than three characters are left alone.
    """
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        if len(secret) < _MIN_SECRET:
            continue
        forms = {secret, unquote(secret)}
        forms |= {quote(form, safe="") for form in forms}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
    return text
