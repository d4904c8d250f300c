"""The SSRF guard and the retry schedule, on their own."""

from __future__ import annotations

import ipaddress
from email.utils import formatdate

import pytest

from lunos_events.durations import parse_schedule
from lunos_events.errors import InvalidRequest
from lunos_events.url_guard import TargetNotAllowed, UnsafeTarget, address_allowed, resolve_target
from lunos_events.webhooks.schedule import parse_retry_after, retry_delay

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.5",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "ff02::1",
        "::",
        "fec0::1",  # site-local
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::7f00:1",  # local-use NAT64, /96 layout
        "64:ff9b:1:7f00:0:100::",  # local-use NAT64, /48 layout of 127.0.0.1
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "64:ff9b:1:808:8:800:808:808",  # local-use NAT64: 8.8.8.8 in both layouts
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), allow_private=False)


def test_allow_private_admits_private_but_never_multicast_or_unspecified() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), allow_private=True)
    assert address_allowed(ipaddress.ip_address("10.0.0.1"), allow_private=True)
    assert not address_allowed(ipaddress.ip_address("224.0.0.1"), allow_private=True)
    assert not address_allowed(ipaddress.ip_address("0.0.0.0"), allow_private=True)


async def test_names_are_resolved_before_the_check_and_the_address_is_pinned() -> None:
    with pytest.raises(TargetNotAllowed) as refused:
        await resolve_target("http://localhost:8080/hook", allow_private=False)
    assert "127.0.0.1" not in refused.value.message and "::1" not in refused.value.message
    target = await resolve_target("https://localhost:8443/hook?x=1", allow_private=True)
    assert target.url in ("https://127.0.0.1:8443/hook?x=1", "https://[::1]:8443/hook?x=1")
    assert target.host_header == "localhost:8443"
    assert target.tls_hostname == "localhost"
    with pytest.raises(UnsafeTarget):
        await resolve_target("http://no-such-host.invalid/hook", allow_private=True)
    for bad in ("ftp://example.com/", "http:///nohost", "http://example.com:99999/"):
        with pytest.raises(InvalidRequest):
            await resolve_target(bad, allow_private=True)


def test_schedule_parsing_and_retry_delays() -> None:
    assert parse_schedule("5s,5m,30m,2h,5h,10h,10h") == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert parse_schedule("250ms, 1.5s") == (0.25, 1.5)
    assert parse_schedule("") == ()
    with pytest.raises(ValueError):
        parse_schedule("5 minutes")
    schedule = (10.0, 100.0)
    assert 9 <= retry_delay(schedule, 1) <= 11
    assert 90 <= retry_delay(schedule, 2) <= 110
    assert retry_delay(schedule, 3) is None
    assert retry_delay(schedule, 1, retry_after=2.0) == 2.0
    assert retry_delay(schedule, 3, retry_after=2.0) is None


def test_retry_after_values() -> None:
    assert parse_retry_after("7", now=0) == 7
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("99999999", now=0) == 24 * 3600
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
