"""Webhook target URLs and the SSRF guard.

A URL is checked when it is registered and again, after DNS resolution, at every delivery; the
delivery then connects to the address that was checked (not to a second lookup), so a name that
re-resolves to an internal address between the check and the connection gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from lunos_events.errors import InvalidRequest

MAX_URL_CHARS = 2048
ALLOWED_SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(InvalidRequest):
    """The URL points at an address it may not reach (loopback, private, ...)."""


class TargetNotAllowed(UnsafeTarget):
    """The host resolved, to an address the URL may not reach: retrying will not change that."""


# Which address a refusal was about is not said: it would let any user map internal names.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use prefix


@dataclass(frozen=True)
class ResolvedTarget:
    url: str  # the URL to connect to: the checked address in place of the host name
    host_header: str  # the original host (and port), sent as `Host`
    tls_hostname: str | None  # the name to present and check in TLS, for https


def check_url_syntax(
    url: object, what: str = "webhook url", schemes: tuple[str, ...] = ALLOWED_SCHEMES
) -> str:
    """The URL if it is an absolute URL of `schemes` with a host; InvalidRequest otherwise.

    `what` names the URL in messages ("webhook url", "parameters.image.url").
    """
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"The {what} must be a non-empty string")
    if len(url) > MAX_URL_CHARS or not url.isprintable() or " " in url:
        raise InvalidRequest(f"The {what} must be at most {MAX_URL_CHARS} printable characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise InvalidRequest(f"The {what} is malformed") from None
    if parts.scheme.lower() not in schemes:
        raise UnsafeTarget(f"The {what} must use {' or '.join(schemes)}")
    if not parts.hostname:
        raise InvalidRequest(f"The {what} must have a host")
    if parts.username or parts.password:
        raise InvalidRequest(f"The {what} must not carry credentials")
    return url


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries to (mapped, 6to4, Teredo, NAT64), or None.

    A relay or translator on the path would connect to them, so they are what must be checked.
    """
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return [address.teredo[1]]  # the client, de-obfuscated by the ipaddress module
    value = int(address)
    if address in _NAT64:
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if address in _NAT64_LOCAL:
        # The operator picks the prefix length inside the /48; the two usual layouts are the /96
        # (IPv4 last) and the /48 itself (IPv4 in bits 48-63 and 72-87): both must be allowed.
        as_48 = ((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF), ipaddress.IPv4Address(as_48)]
    return None


def address_allowed(address: IPAddress, allow_private: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return all(address_allowed(v4, allow_private) for v4 in inner)
    if address.is_multicast or address.is_unspecified:
        return False
    if allow_private:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False  # fec0::/10: deprecated, but routed inside some networks
    return address.is_global and not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_reserved
    )


async def resolve_addresses(host: str, port: int, what: str = "webhook host") -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"The {what} {host!r} does not resolve: {exc}") from None
    # Scope ids (fe80::1%eth0) are dropped: such addresses are refused anyway unless private is allowed.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


@dataclass(frozen=True)
class Guard:
    """What a kind of URL may reach: its name in messages, its schemes, the setting allowing private."""

    what: str = "webhook url"
    schemes: tuple[str, ...] = ALLOWED_SCHEMES
    allow_private_setting: str = "LUNOS_WEBHOOK_ALLOW_PRIVATE"


WEBHOOKS = Guard()


async def resolve_target(url: str, allow_private: bool, guard: Guard = WEBHOOKS) -> ResolvedTarget:
    """Resolve the URL's host and refuse it unless every address it resolves to is allowed."""
    check_url_syntax(url, guard.what, guard.schemes)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    host_name = guard.what.removesuffix(" url") + " host"
    addresses = await resolve_addresses(host, port, host_name)
    if not addresses:
        raise UnsafeTarget(f"The {host_name} {host!r} does not resolve")
    if not all(address_allowed(a, allow_private) for a in addresses):
        # The address is not named: the answer would let any user map internal names.
        raise TargetNotAllowed(f"The {guard.what}'s target is not allowed: only public addresses are reached")
    pinned = addresses[0]
    literal = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return ResolvedTarget(
        url=urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=parts.netloc.rpartition("@")[2],
        tls_hostname=host if scheme == "https" else None,
    )
