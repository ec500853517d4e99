"""The Daytona API's checks of sandbox network allow-lists, shared by provider and emulator.

A copy of ``apps/api/src/sandbox/utils/network-validation.util.ts`` (Daytona v0.190): the
API answers 400 with these messages. The provider runs the same checks before it sends a
create, so a bad policy fails fast with a ``ProviderConfigError``; the emulator runs them
to answer as the service does.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ENTRIES", "check_domain_allow_list", "check_network_allow_list"]

MAX_ENTRIES = 10
"""At most this many networks, and as many domains, per sandbox."""

# Node's net.isIPv4: four dotted decimal octets 0-255 without leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_DOMAIN = re.compile(r"(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}")
_LEADING_INT = re.compile(r"\s*([+-]?[0-9]+)")


def _js_parse_int(text: str) -> int | None:
    """JavaScript's ``parseInt(text, 10)``; None for NaN."""
    found = _LEADING_INT.match(text)
    return int(found.group(1)) if found else None


def check_network_allow_list(value: str) -> None:
    """Raise ``ValueError`` (the API's message) unless ``value`` is a valid
    ``networkAllowList``: comma-separated IPv4 CIDRs, at most :data:`MAX_ENTRIES`."""
    networks = [item.strip() for item in value.split(",")]
    for network in networks:
        if not network:
            continue
        parts = network.split("/")
        address = parts[0]
        prefix_text = parts[1] if len(parts) > 1 else ""
        if not _IPV4.fullmatch(address):
            raise ValueError(
                f'Invalid IP address: "{address}" in network "{network}". '
                "Must be a valid IPv4 address"
            )
        if not prefix_text:
            raise ValueError(
                f'Invalid network format: "{network}". Missing CIDR prefix length (e.g., /24)'
            )
        prefix = _js_parse_int(prefix_text)
        if prefix is not None and not 0 <= prefix <= 32:
            raise ValueError(
                f"Invalid CIDR prefix length: {network}. Prefix must be between 0 and 32"
            )
    if len(networks) > MAX_ENTRIES:
        raise ValueError(f"Network allow list cannot contain more than {MAX_ENTRIES} networks")


def check_domain_allow_list(value: str) -> None:
    """Raise ``ValueError`` (the API's message) unless ``value`` is a valid
    ``domainAllowList``: comma-separated domain names (``*.`` allowed in front), at most
    :data:`MAX_ENTRIES`."""
    domains = [item.strip() for item in value.split(",")]
    for domain in domains:
        if domain and not _DOMAIN.fullmatch(domain):
            raise ValueError(f'Invalid domain: "{domain}". Must be a valid domain name')
    if len(domains) > MAX_ENTRIES:
        raise ValueError(f"Domain allow list cannot contain more than {MAX_ENTRIES} domains")
