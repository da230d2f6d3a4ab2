"""Who is calling: the client address (proxy-aware) and user agent recorded on sessions."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from starlette.requests import HTTPConnection

MAX_USER_AGENT = 512
# The audit and session columns hold 45 characters: the longest textual IPv6 address.
MAX_ADDRESS = 45

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None = None
    user_agent: str | None = None


def parse_networks(entries: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """An IP address as a proxy or a socket gives it, or None.

    Accepts the forms proxies write: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:5678`; drops an
    IPv6 zone and unwraps IPv4-mapped IPv6, so one client always has one spelling.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


@functools.lru_cache(maxsize=4096)
def _peer(host: str, trusted: tuple[Network, ...]) -> tuple[str | None, bool]:
    """The socket peer's spelling as recorded, and whether it is a trusted proxy: the same for
    every request from it, so worked out once (the parse, the network test and the address's
    text cost a refresh about 2% of its time on the event loop)."""
    peer = parse_address(host)
    if peer is None:
        # Not an IP at all (a test client, a unix socket): keep it, bounded.
        return clean_text(host, MAX_ADDRESS), False
    return str(peer), _is_trusted(peer, trusted)


def _peer_host(conn: HTTPConnection) -> str | None:
    # The ASGI scope's (host, port), read as it is: `conn.client` builds a named tuple of it.
    client = conn.scope.get("client")
    return client[0] if client else None


def peer_is_trusted(conn: HTTPConnection, trusted: tuple[Network, ...]) -> bool:
    """Whether the connection comes straight from one of the trusted proxies."""
    host = _peer_host(conn)
    return host is not None and _peer(host, trusted)[1]


def client_address(conn: HTTPConnection, trusted: tuple[Network, ...]) -> str | None:
    """The peer address, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies.

    X-Forwarded-For is read right to left, since each proxy appends the address it saw: the
    first hop that is not a trusted proxy is the client. Anything left of it was written by the
    client itself and is never believed. A peer that is not a trusted proxy is the client,
    whatever headers it sends.
    """
    host = _peer_host(conn)
    if host is None:
        return None
    spelled, peer_trusted = _peer(host, trusted)
    if not peer_trusted:
        return spelled
    forwarded = ",".join(conn.headers.getlist("x-forwarded-for"))
    hops = [hop for hop in forwarded.split(",") if hop.strip()]
    nearest = parse_address(host)
    for text in reversed(hops):
        hop = parse_address(text)
        if hop is None:
            # A trusted proxy passed on something that is no address: stop at what it said
            # last, rather than believe whatever stands further left.
            break
        nearest = hop
        if not _is_trusted(hop, trusted):
            break
    return str(nearest)


def is_unicode_text(text: str) -> bool:
    """No lone surrogate: what JSON's `\\ud800` escape or a command line's undecodable bytes
    make, and which argon2, the database and every UTF-8 encoder refuse."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: str | None, limit: int) -> str | None:
    """Client-supplied text made safe to store: no NUL (PostgreSQL refuses it), bounded length."""
    if value is None:
        return None
    return value.replace("\x00", "")[:limit] or None


def client_info(conn: HTTPConnection, trusted: tuple[Network, ...]) -> ClientInfo:
    return ClientInfo(
        ip_address=client_address(conn, trusted),
        user_agent=clean_text(conn.headers.get("user-agent"), MAX_USER_AGENT),
    )
