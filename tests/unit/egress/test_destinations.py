"""The destination allow-list: which addresses outbound calls may reach, by
address and by host name, with and without --http-allow."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.egress.destinations import DestinationPolicy, DestinationRefused, parse_networks

DEFAULT = DestinationPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::",
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    assert not DEFAULT.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.permits(ipaddress.ip_address(address))


def test_allowed_networks_admit_only_themselves() -> None:
    policy = DestinationPolicy(parse_networks(["127.0.0.1", "10.1.0.0/16"]))
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("10.1.200.3"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"))
    assert not policy.permits(ipaddress.ip_address("10.2.0.1"))
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"))


def test_a_bad_allow_entry_names_itself() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        parse_networks(["nonsense"])


@given(st.ip_addresses())
def test_an_address_is_permitted_only_if_global(address: ipaddress.IPv4Address) -> None:
    unmapped = getattr(address, "ipv4_mapped", None) or address
    assert DEFAULT.permits(address) == (unmapped.is_global and not unmapped.is_multicast)


async def test_a_host_name_is_checked_by_what_it_resolves_to() -> None:
    with pytest.raises(DestinationRefused, match="localhost"):
        await DEFAULT.resolve("http://localhost:8080/x")
    allowed = DestinationPolicy(parse_networks(["127.0.0.1"]))
    destination = await allowed.resolve("http://localhost:8080/x?y=1")
    assert str(destination.address) == "127.0.0.1"
    assert destination.pinned_url == "http://127.0.0.1:8080/x?y=1"
    assert destination.host_header == "localhost:8080"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
        "http://user:pw@93.184.216.34/",
        "http://[::1/",
        "http://no-such-host.invalid/",
    ],
)
async def test_urls_that_cannot_be_called_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await DEFAULT.resolve(url)
