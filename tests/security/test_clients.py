"""The client address: the peer, or X-Forwarded-For only as written by trusted proxies."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from api.clients import client_address, parse_networks
from api.ratelimit import address_key
from tests.conftest import PASSWORD, AppFactory
from tests.security.conftest import LOGIN, attempt, retry_after

PROXIES = parse_networks(["10.0.0.0/8", "::1"])


def connection(peer: str, forwarded: list[str] | None = None) -> HTTPConnection:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded or []]
    return HTTPConnection(
        {"type": "http", "client": (peer, 50000), "headers": headers, "method": "GET", "path": "/"}
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),
        ("203.0.113.9", [], "203.0.113.9"),
        # Behind a trusted proxy: the nearest hop that is not a proxy.
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.3"], "198.51.100.7"),
        ("10.0.0.2", ["6.6.6.6", "198.51.100.7, 10.0.0.3"], "198.51.100.7"),
        # Ports and brackets as some proxies write them; IPv4 mapped into IPv6.
        ("10.0.0.2", ["198.51.100.7:4711"], "198.51.100.7"),
        ("10.0.0.2", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("::1", ["::ffff:198.51.100.7"], "198.51.100.7"),
        # A trusted proxy with no header, or with nothing usable in it.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["unknown"], "10.0.0.2"),
        ("10.0.0.2", ["6.6.6.6, garbage"], "10.0.0.2"),
        # Every hop trusted: the leftmost one.
        ("10.0.0.2", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert client_address(connection(peer, forwarded), PROXIES) == expected


def test_without_trusted_proxies_forwarded_headers_are_ignored() -> None:
    assert client_address(connection("127.0.0.1", ["1.2.3.4"]), ()) == "127.0.0.1"


def test_addresses_are_bounded_for_storage() -> None:
    zone = "fe80::1%" + "x" * 100
    assert client_address(connection(zone), ()) == "fe80::1"
    assert len(client_address(connection("a" * 100), ()) or "") == 45


def test_a_whole_ipv6_64_counts_as_one_client() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("198.51.100.7") == "198.51.100.7"
    assert address_key(None) == "unknown"


async def test_a_spoofed_forwarded_for_changes_nothing_from_an_untrusted_peer(
    app_factory: AppFactory,
) -> None:
    api = await app_factory(login_max_attempts_per_ip=3)
    await api.create_user()

    for i in range(3):
        spoofed = {"X-Forwarded-For": f"198.51.100.{i}"}
        result = await attempt(api, "user@example.com", PASSWORD, headers=spoofed)
        assert result.data["login"]["session"]["ipAddress"] == "127.0.0.1"
    refused = await attempt(
        api, "user@example.com", PASSWORD, headers={"X-Forwarded-For": "198.51.100.99"}
    )
    assert retry_after(refused) > 0


async def test_a_trusted_proxy_names_the_client(app_factory: AppFactory) -> None:
    api = await app_factory(trusted_proxies=["127.0.0.1"], login_max_attempts_per_ip=2)
    await api.create_user()

    for address in ("198.51.100.1", "198.51.100.1", "198.51.100.2"):
        result = await api.gql(
            LOGIN,
            {"e": "user@example.com", "p": PASSWORD},
            headers={"X-Forwarded-For": f"6.6.6.6, {address}"},
        )
        assert result.data["login"]["session"]["ipAddress"] == address
    # The first client has used its two attempts; the proxy itself is not throttled.
    refused = await attempt(
        api, "user@example.com", PASSWORD, headers={"X-Forwarded-For": "198.51.100.1"}
    )
    assert refused.codes == ["RATE_LIMITED"]
