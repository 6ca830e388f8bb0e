"""Outbound requests: where tool services (OpenAPI, MCP over HTTP) may connect.

The ``outbound_hosts`` setting lists the destinations; ``OutboundPolicy`` is that list parsed
once. A destination is a host name (or address) and a port; it is allowed when *every* address
its name resolves to is allowed by some entry:

- ``*`` (optionally ``*:443``): any host, but only on public addresses;
- ``*.example.com``: any name under example.com (not example.com itself), on public addresses;
- ``api.example.com`` (optionally ``:port``): that name, at whatever addresses it resolves to;
- ``10.1.2.3``, ``[::1]:8080``, ``10.0.0.0/8``: those addresses, whatever name led there.

Loopback, private, link-local, cloud metadata, shared (CGNAT), unspecified, multicast,
reserved and other special-purpose addresses (and their IPv4-in-IPv6 forms) are never public,
so only an entry naming the host or the address reaches them.

Services check their URLs when they are registered (``OutboundPolicy.check``: nothing
connects), and every connection they open is checked again as it opens: the HTTP clients'
transports (``httpx_transport``, ``httpx2_transport``) resolve the name, check the addresses
and connect to a checked address, so redirects and DNS answers that change after registration
(DNS rebinding) cannot reach anything else. Environment proxies (``HTTP(S)_PROXY``) are not
used: the check is about the address tactful connects to, and through a proxy that address
would be the proxy's.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import anyio
import httpcore
import httpcore2
import httpx
import httpx2
import idna

from tactful.errors import ValidationError
from tactful.tools.base import ToolError

__all__ = ["OutboundPolicy", "OutboundRefused", "address_kind", "resolve"]

S = TypeVar("S")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "outbound_hosts (TACTFUL_OUTBOUND_HOSTS)"
# A name that does not resolve within this long is unreachable (when no connect timeout is given).
_RESOLVE_TIMEOUT_S = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Addresses that are not public, by what they are (first match names them). Python's own
# ``is_global`` misses several of these on 3.11 (192.0.0.192, fec0::/10, IPv4-in-IPv6 forms).
_NOT_PUBLIC: tuple[tuple[str, tuple[Network, ...]], ...] = (
    (
        "cloud metadata",
        _networks(
            "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
            "169.254.170.2/32",  # AWS ECS task metadata
            "169.254.170.23/32",  # AWS EKS pod identity
            "100.100.100.200/32",  # Alibaba Cloud
            "192.0.0.192/32",  # Oracle Cloud
            "fd00:ec2::254/128",  # AWS over IPv6
            "fd00:ec2::23/128",
        ),
    ),
    ("unspecified", _networks("0.0.0.0/8", "::/128")),
    ("loopback", _networks("127.0.0.0/8", "::1/128")),
    ("private", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("link-local", _networks("169.254.0.0/16", "fe80::/10")),
    ("shared (carrier-grade NAT)", _networks("100.64.0.0/10")),
    ("multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("reserved", _networks("240.0.0.0/4", "fec0::/10")),
    (
        "special-purpose",
        _networks(
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "64:ff9b:1::/48",
            "100::/64",
            "2001::/23",
            "2001:db8::/32",
            "3fff::/20",
        ),
    ),
)
# IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64): judged by the IPv4 inside.
_IPV4_INSIDE = _networks("::ffff:0:0/96", "::/96", "64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def address_kind(address: Address) -> str | None:
    """What a non-public address is ("loopback", "private", "cloud metadata", ...); None when
    the address is public. IPv6 forms of an IPv4 address are judged by that IPv4 address."""
    inner = _ipv4_inside(address)
    if inner is not None:
        kind = address_kind(inner)
        return f"{kind} (in IPv6 form)" if kind else None
    for kind, networks in _NOT_PUBLIC:
        if any(address in network for network in networks):
            return kind
    # A catch-all for special ranges the table above does not name.
    return None if address.is_global else "special-purpose"


def _ipv4_inside(address: Address) -> ipaddress.IPv4Address | None:
    # "::" and "::1" sit in the IPv4-compatible range but are IPv6's own unspecified and loopback.
    if not isinstance(address, ipaddress.IPv6Address) or int(address) <= 1:
        return None
    if any(address in network for network in _IPV4_INSIDE):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


class OutboundRefused(ToolError, ValidationError):
    """A tool service tried to reach a destination ``outbound_hosts`` does not allow.

    A ``ToolError`` when a call is refused (the turn goes on, the trace says why) and a
    ``ValidationError`` when a service is registered (a 422 over REST).
    """


@dataclass(frozen=True)
class _Entry:
    """One parsed entry of ``outbound_hosts``."""

    text: str
    kind: Literal["any", "suffix", "name", "network"]
    name: str = ""  # the host name, or the suffix (".example.com") of a wildcard
    network: Network | None = None
    port: int | None = None

    def names(self, host: str) -> bool:
        """Whether the entry speaks of this host at all (its port and addresses aside)."""
        match self.kind:
            case "any":
                return True
            case "suffix":
                return host.endswith(self.name)
            case "name":
                return host == self.name
        return False

    def allows(self, host: str, port: int | None, address: Address) -> bool:
        """Whether the entry lets ``host`` connect to ``address`` on ``port`` (None: any)."""
        if self.port is not None and port is not None and self.port != port:
            return False
        if self.kind == "network":
            assert self.network is not None
            inner = _ipv4_inside(address)
            return address in self.network or (inner is not None and inner in self.network)
        if not self.names(host):
            return False
        # A wildcard reaches public addresses only; a name written out is trusted with its own.
        return self.kind == "name" or address_kind(address) is None


class OutboundPolicy:
    """Where tool services may connect: ``outbound_hosts`` parsed once (default ``["*"]``:
    any host on a public address). A malformed entry is a ``ValueError`` naming it."""

    def __init__(self, entries: Iterable[str] = ("*",)) -> None:
        self._entries = tuple(_parse(text) for text in entries)

    @property
    def entries(self) -> list[str]:
        """The entries as written."""
        return [entry.text for entry in self._entries]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutboundPolicy) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def __repr__(self) -> str:
        return f"OutboundPolicy({self.entries!r})"

    def refusal(self, host: str, port: int, addresses: Sequence[Address]) -> str | None:
        """Why ``host:port`` at these addresses is refused, with how to allow it; None when
        every address is allowed."""
        host = _host(host)
        for address in addresses:
            if not any(entry.allows(host, port, address) for entry in self._entries):
                return self._why(host, port, address)
        return None

    async def addresses(
        self, host: str, port: int, timeout_s: float | None = None
    ) -> list[Address]:
        """The addresses of ``host``, once every one of them is allowed (in resolver order).

        Raises ``OutboundRefused`` (nothing connected) or ``OSError`` when the name does not
        resolve. A name no entry could allow is refused before it is looked up.
        """
        host = _host(host)
        if not any(e.names(host) or e.kind == "network" for e in self._entries):
            raise OutboundRefused(self._why(host, port, None))
        found = await resolve(host, port, timeout_s)
        why = self.refusal(host, port, found)
        if why is not None:
            raise OutboundRefused(why)
        return found

    async def check(self, url: str) -> None:
        """Raise ``OutboundRefused`` unless ``url`` (http or https) may be reached; resolves
        the host but connects nowhere, so it says nothing of what listens there."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise OutboundRefused(f"{url!r} is not a URL: {exc}") from None
        if parsed.scheme not in _DEFAULT_PORTS or not parsed.raw_host:
            raise OutboundRefused(f"{url!r} is not an http:// or https:// URL with a host")
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        try:
            await self.addresses(parsed.raw_host.decode("ascii"), port)
        except OutboundRefused as exc:
            raise OutboundRefused(f"{url} may not be reached: {exc}") from None
        except OSError as exc:
            raise ToolError(f"{url} cannot be reached: {exc}") from None

    def httpx_transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport whose every connection goes to an address this policy allows."""
        return _HttpxTransport(self)

    def httpx2_transport(self) -> httpx2.AsyncBaseTransport:
        """The same for httpx2 (the MCP SDK's HTTP client)."""
        return _Httpx2Transport(self)

    def _why(self, host: str, port: int, address: Address | None) -> str:
        where = _entry_text(host)
        hint = f'to allow it, add "{_entry_text(host, port)}" (this port) or "{where}" to {SETTING}'
        if not self._entries:
            return f"{SETTING} is empty, so tool services may connect nowhere"
        if address is None:
            return f"{host} is not in outbound_hosts; {hint}"
        other_ports = {e.port for e in self._entries if e.allows(host, None, address)}
        if other_ports:
            ports = " or ".join(str(p) for p in sorted(p for p in other_ports if p is not None))
            return f"{host} is allowed on port {ports} only, not {port}; {hint}"
        kind = address_kind(address)
        if kind is None:
            return f"{host} is not in outbound_hosts; {hint}"
        if str(address) == host:
            return f"{address} is a {kind} address, which only an entry naming it allows; {hint}"
        return (
            f"{host} resolves to {address}, a {kind} address, which only an entry naming it "
            f'allows; to allow it, add "{_entry_text(host, port)}" (this port), "{where}" or '
            f'"{_entry_text(str(address))}" to {SETTING}'
        )


def _parse(text: str) -> _Entry:
    """One entry, or a ``ValueError`` that says what is wrong with it."""
    raw = text.strip().lower()

    def bad(why: str) -> ValueError:
        return ValueError(f"outbound_hosts entry {text!r}: {why}")

    if not raw:
        raise bad("it is empty")
    if "://" in raw:
        raise bad("write a host (and port), not a URL: e.g. 'api.example.com:443'")
    if "%" in raw:
        raise bad("write the address without a scope id ('%...')")
    network = _network(raw)
    if network is not None:
        return _Entry(text, "network", network=network)
    port: int | None = None
    host = raw
    if raw.startswith("["):
        inside, _, rest = raw[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise bad("after ']' only ':port' may follow")
        host = inside
        if rest:
            port = _port(rest[1:])
            if port is None:
                raise bad(f"{rest[1:]!r} is not a port (1-65535)")
        network = _network(host)
        if network is None or network.version != 6:
            raise bad("brackets hold an IPv6 address or network")
        return _Entry(text, "network", network=network, port=port)
    if ":" in raw:
        host, _, port_text = raw.rpartition(":")
        port = _port(port_text)
        if port is None:
            raise bad(f"{port_text!r} is not a port (1-65535)")
        if ":" in host:
            raise bad("an IPv6 address with a port needs brackets: '[::1]:8080'")
    network = _network(host)
    if network is not None:
        return _Entry(text, "network", network=network, port=port)
    if "/" in host:
        raise bad("it is not a network: write one like '10.0.0.0/8', with no host bits set")
    if host == "*":
        return _Entry(text, "any", port=port)
    wildcard = host.startswith("*.")
    name = _ascii_name(host[2:] if wildcard else host)
    if name is None or "*" in name:
        raise bad(
            "it is not a host name, an IP address or a network ('*' only as '*' or '*.example.com')"
        )
    if wildcard:
        return _Entry(text, "suffix", name="." + name, port=port)
    return _Entry(text, "name", name=name, port=port)


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def _ascii_name(name: str) -> str | None:
    """A host name as URLs carry it (lower case, IDNA, no trailing dot), or None."""
    name = name.rstrip(".")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    return name if len(name) <= 253 and _NAME.match(name) else None


def _host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _entry_text(host: str, port: int | None = None) -> str:
    """How an entry for this host (and port) is written."""
    bracketed = f"[{host}]" if ":" in host else host
    if port is None:
        return host
    return f"{bracketed}:{port}"


async def resolve(host: str, port: int, timeout_s: float | None = None) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates.

    Looked up off the event loop; ``OSError`` when the name does not resolve in time.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        with anyio.fail_after(timeout_s or _RESOLVE_TIMEOUT_S):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise OSError(
            f"{host} did not resolve within {timeout_s or _RESOLVE_TIMEOUT_S:g}s"
        ) from None
    except socket.gaierror as exc:
        raise OSError(f"{host} does not resolve ({exc.strerror or exc})") from None
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} resolves to no address")
    return found


# -- the HTTP clients' side ------------------------------------------------------------------
#
# httpx and httpx2 build their connection pools with no way to pass httpcore's network
# backend, so each transport rebuilds its (direct, never proxied) pool with a backend that
# checks every connection as it opens. Pools stay keyed by host name, so a TLS connection is
# only ever reused for the name its certificate was verified for.


async def _connect(
    policy: OutboundPolicy,
    host: str,
    port: int,
    timeout: float | None,
    connect: Callable[[str], Awaitable[S]],
    failures: tuple[type[Exception], ...],
) -> S:
    """Connect to the first checked address of ``host`` that answers; ``failures`` are the
    library's connect errors (a name that does not resolve is the first of them)."""
    try:
        addresses = await policy.addresses(host, port, timeout)
    except OutboundRefused as exc:
        raise OutboundRefused(f"{_entry_text(host, port)} may not be reached: {exc}") from None
    except OSError as exc:
        raise failures[0](str(exc)) from None
    failed: Exception | None = None
    for address in addresses:
        try:
            return await connect(str(address))
        except failures as exc:
            failed = exc  # the next checked address may answer (e.g. ::1, then 127.0.0.1)
    assert failed is not None
    raise failed


class _HttpcoreBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        def connect(address: str) -> Awaitable[httpcore.AsyncNetworkStream]:
            return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

        failures = (httpcore.ConnectError, httpcore.ConnectTimeout)
        return await _connect(self._policy, host, port, timeout, connect, failures)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused(f"tool services may not connect to the unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Httpcore2Backend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        def connect(address: str) -> Awaitable[httpcore2.AsyncNetworkStream]:
            return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

        failures = (httpcore2.ConnectError, httpcore2.ConnectTimeout)
        return await _connect(self._policy, host, port, timeout, connect, failures)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise OutboundRefused(f"tool services may not connect to the unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _HttpxTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy) -> None:
        context = httpx.create_ssl_context()
        super().__init__(verify=context)
        # httpx's own defaults (httpx.Limits()): 100 connections, 20 kept alive for 5 s.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_HttpcoreBackend(policy),
        )


class _Httpx2Transport(httpx2.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy) -> None:
        context = httpx2.create_ssl_context()
        super().__init__(verify=context)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_Httpcore2Backend(policy),
        )
