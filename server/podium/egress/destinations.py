"""Where outbound requests may go.

A workflow names URLs; without a check it could reach the server's own
network (cloud metadata at 169.254.169.254, an admin port on 127.0.0.1, a
database on 10.x). So the host is resolved here, every address is checked,
and the request is then made to that checked address (never resolved again,
so DNS cannot answer differently the second time). By default only global
(public) addresses are allowed: private, loopback, link-local, shared,
multicast, reserved and unspecified ones are refused. `--http-allow` adds
networks (`127.0.0.1`, `10.0.0.0/8`, `::1`) that are allowed anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The URL may not be called (its message names the host, never a secret)."""


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str
    port: int
    address: Address
    # Path with query, as given.
    target: str

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """`--http-allow` values; ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"--http-allow {entry!r}: expected an IP address or network (10.0.0.0/8)"
            ) from None
    return networks


class DestinationPolicy:
    __slots__ = ("allowed",)

    def __init__(self, allowed: Iterable[Network] = ()) -> None:
        self.allowed = list(allowed)

    def permits(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed):
            return True
        return address.is_global and not address.is_multicast

    async def resolve(self, url: str) -> Destination:
        """The checked destination of `url`, or DestinationRefused."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise DestinationRefused(f"invalid URL: {error}") from None
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused("only http:// and https:// URLs may be called")
        host = parts.hostname
        if not host:
            raise DestinationRefused("the URL has no host")
        if parts.username or parts.password:
            raise DestinationRefused("credentials in the URL are not allowed (use a secret header)")
        port = port or (443 if parts.scheme == "https" else 80)
        addresses = await _addresses(host, port)
        if not addresses:
            raise DestinationRefused(f"host {host!r} does not resolve")
        permitted = [a for a in addresses if self.permits(a)]
        if not permitted:
            shown = ", ".join(sorted({str(a) for a in addresses}))
            raise DestinationRefused(
                f"destination {host!r} ({shown}) is not allowed: private, loopback and "
                "link-local addresses are refused unless the server allows them (--http-allow)"
            )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return Destination(parts.scheme, host, port, permitted[0], target)


async def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found
