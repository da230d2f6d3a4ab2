"""Who is calling: the client address (proxy-aware) and user agent recorded on sessions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.requests import HTTPConnection

MAX_USER_AGENT = 512

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None = None
    user_agent: str | None = None


def parse_networks(entries: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(conn: HTTPConnection, trusted: tuple[Network, ...]) -> str | None:
    """The peer address, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies."""
    peer = conn.client.host if conn.client else None
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(conn.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


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
