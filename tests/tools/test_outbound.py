"""Outbound requests (``tactful.tools.outbound``): the policy parsed from ``outbound_hosts``,
the check when a service is registered, and every connection checked as it opens (redirect
hops, DNS answers that change after registration), for httpx (OpenAPI) and httpx2 (MCP).

Only loopback is reachable here: public addresses appear as data in the policy's decisions
and as made-up DNS answers, and are never connected to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import httpx2
import pydantic
import pytest
from openapi_service import Served, serve_openapi_service

import tactful
from tactful.domain import ToolSpec
from tactful.errors import ValidationError
from tactful.llm.scripted import HashingEmbedder
from tactful.tools import ToolContext, ToolError, ToolRegistry, ToolResult, ToolService, outbound
from tactful.tools.openapi import OpenAPIService
from tactful.tools.outbound import Address, OutboundPolicy, OutboundRefused, address_kind

CONTEXT = ToolContext(agent_id="a", session_id="s", customer_id="c")
PUBLIC = "93.184.216.34"
HOW = "to outbound_hosts (TACTFUL_OUTBOUND_HOSTS)"


def ip(text: str) -> Address:
    return ipaddress.ip_address(text)


def allowed(entries: list[str], host: str, port: int, *addresses: str) -> bool:
    return OutboundPolicy(entries).refusal(host, port, [ip(a) for a in addresses]) is None


# -- which addresses are public -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "reserved"),
        ("192.0.2.1", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("2001:db8::1", "special-purpose"),
        # IPv4 addresses in IPv6 clothing: mapped, compatible, NAT64 and 6to4 forms.
        ("::ffff:127.0.0.1", "loopback (in IPv6 form)"),
        ("::ffff:169.254.169.254", "cloud metadata (in IPv6 form)"),
        ("::ffff:10.0.0.1", "private (in IPv6 form)"),
        ("::7f00:1", "loopback (in IPv6 form)"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata (in IPv6 form)"),
        ("2002:c0a8:101::1", "private (in IPv6 form)"),
    ],
)
def test_addresses_that_are_not_public_say_what_they_are(address: str, kind: str) -> None:
    assert address_kind(ip(address)) == kind


@pytest.mark.parametrize(
    "address",
    [PUBLIC, "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses(address: str) -> None:
    assert address_kind(ip(address)) is None


# -- what the entries allow ---------------------------------------------------------------------


def test_the_default_reaches_public_addresses_only() -> None:
    assert OutboundPolicy().entries == ["*"]
    assert allowed(["*"], "api.example.com", 443, PUBLIC, "2606:2800:220:1::1")
    for address in ("127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "::ffff:127.0.0.1"):
        assert not allowed(["*"], "api.example.com", 443, address), address
    # Every address counts: one private answer among public ones is a refusal.
    assert not allowed(["*"], "api.example.com", 443, PUBLIC, "10.0.0.5")
    assert not allowed([], "api.example.com", 443, PUBLIC)


def test_names_and_wildcards() -> None:
    assert allowed(["api.example.com"], "api.example.com", 443, PUBLIC)
    assert allowed(["API.example.com."], "api.example.com.", 80, PUBLIC)
    assert not allowed(["api.example.com"], "www.example.com", 443, PUBLIC)
    # A name written out is trusted with whatever it resolves to.
    assert allowed(["orders.internal"], "orders.internal", 8080, "10.1.2.3")
    assert allowed(["localhost"], "localhost", 8080, "127.0.0.1", "::1")
    # A wildcard covers names under the domain, at public addresses only.
    assert allowed(["*.example.com"], "a.b.example.com", 443, PUBLIC)
    assert not allowed(["*.example.com"], "example.com", 443, PUBLIC)
    assert not allowed(["*.example.com"], "evil-example.com", 443, PUBLIC)
    assert not allowed(["*.example.com"], "internal.example.com", 443, "10.0.0.5")
    assert allowed(["bücher.example"], "xn--bcher-kva.example", 443, PUBLIC)


def test_ports() -> None:
    assert allowed(["api.example.com:8443"], "api.example.com", 8443, PUBLIC)
    assert not allowed(["api.example.com:8443"], "api.example.com", 443, PUBLIC)
    assert allowed(["*:443"], "example.org", 443, PUBLIC)
    assert not allowed(["*:443"], "example.org", 80, PUBLIC)
    assert allowed(["127.0.0.1:8000"], "127.0.0.1", 8000, "127.0.0.1")
    assert not allowed(["127.0.0.1:8000"], "127.0.0.1", 8001, "127.0.0.1")
    assert allowed(["[::1]:8080"], "::1", 8080, "::1")
    assert not allowed(["[::1]:8080"], "::1", 8081, "::1")
    assert allowed(["[fd00::/8]:443"], "orders.internal", 443, "fd12::1")


def test_addresses_and_networks() -> None:
    assert allowed(["10.0.0.0/8"], "orders.internal", 80, "10.20.30.40")
    assert not allowed(["10.0.0.0/8"], "orders.internal", 80, "10.20.30.40", PUBLIC)
    assert allowed(["10.0.0.0/8", "*"], "orders.internal", 80, "10.20.30.40", PUBLIC)
    assert allowed(["127.0.0.1"], "localhost", 80, "127.0.0.1")
    assert not allowed(["127.0.0.1"], "localhost", 80, "127.0.0.1", "::1")
    assert allowed(["127.0.0.1"], "::ffff:127.0.0.1", 80, "::ffff:127.0.0.1")
    assert allowed(["fd00::/8"], "orders.internal", 80, "fd12::1")
    assert allowed(["::1"], "::1", 80, "::1")
    # Named explicitly, even the metadata address is allowed: the operator said so.
    assert allowed(["169.254.169.254"], "169.254.169.254", 80, "169.254.169.254")


def test_a_refusal_names_the_address_and_the_entries_that_would_allow_it() -> None:
    refusal = OutboundPolicy().refusal("orders.internal", 8080, [ip(PUBLIC), ip("10.1.2.3")])
    assert refusal == (
        "orders.internal resolves to 10.1.2.3, a private address, which only an entry naming "
        'it allows; to allow it, add "orders.internal:8080" (this port), "orders.internal" or '
        f'"10.1.2.3" {HOW}'
    )
    assert OutboundPolicy().refusal("::1", 8080, [ip("::1")]) == (
        "::1 is a loopback address, which only an entry naming it allows; to allow it, add "
        f'"[::1]:8080" (this port) or "::1" {HOW}'
    )
    assert OutboundPolicy(["api.example.com"]).refusal("evil.example", 443, [ip(PUBLIC)]) == (
        "evil.example is not in outbound_hosts; to allow it, add "
        f'"evil.example:443" (this port) or "evil.example" {HOW}'
    )
    assert OutboundPolicy(["127.0.0.1:8000"]).refusal("127.0.0.1", 9000, [ip("127.0.0.1")]) == (
        "127.0.0.1 is allowed on port 8000 only, not 9000; to allow it, add "
        f'"127.0.0.1:9000" (this port) or "127.0.0.1" {HOW}'
    )
    assert OutboundPolicy([]).refusal("a.example", 443, [ip(PUBLIC)]) == (
        "outbound_hosts (TACTFUL_OUTBOUND_HOSTS) is empty, so tool services may connect nowhere"
    )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("https://api.example.com", "write a host (and port), not a URL"),
        ("10.0.0.1/8", "it is not a network: write one like '10.0.0.0/8'"),
        ("10.0.0.0/33", "it is not a network"),
        ("api example.com", "it is not a host name, an IP address or a network"),
        ("api.*.example.com", "'*' only as '*' or '*.example.com'"),
        ("**", "it is not a host name"),
        ("*.", "it is not a host name"),
        ("api.example.com:0", "'0' is not a port (1-65535)"),
        ("api.example.com:65536", "'65536' is not a port"),
        ("api.example.com:https", "'https' is not a port"),
        ("[127.0.0.1]:80", "brackets hold an IPv6 address or network"),
        ("[::1]8080", "after ']' only ':port' may follow"),
        ("::1:8080x", "'8080x' is not a port"),
        ("fe80::1%eth0", "without a scope id"),
    ],
)
def test_malformed_entries_are_refused_with_their_reason(entry: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        OutboundPolicy([entry])
    assert str(caught.value).startswith(f"outbound_hosts entry {entry!r}: ")
    assert says in str(caught.value)


def test_the_setting_is_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_OUTBOUND_HOSTS", "api.example.com, 10.0.0.0/8,[::1]:8080")
    settings = tactful.Settings()
    assert settings.outbound_hosts == ["api.example.com", "10.0.0.0/8", "[::1]:8080"]
    assert OutboundPolicy(settings.outbound_hosts).entries == settings.outbound_hosts
    monkeypatch.setenv("TACTFUL_OUTBOUND_HOSTS", "api.example.com,10.0.0.1/8")
    with pytest.raises(pydantic.ValidationError, match=r"outbound_hosts entry '10.0.0.1/8'"):
        tactful.Settings()
    monkeypatch.delenv("TACTFUL_OUTBOUND_HOSTS")
    assert tactful.Settings().outbound_hosts == ["*"]


def test_a_refusal_is_a_tool_error_at_call_time_and_bad_input_at_registration() -> None:
    refused = OutboundRefused("no")
    assert isinstance(refused, ToolError)
    assert isinstance(refused, ValidationError)


# -- checking a URL (registration) --------------------------------------------------------------


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """Made-up DNS answers by name (other names resolve for real); tests change them."""
    answers: dict[str, list[str]] = {}
    real = outbound.resolve

    async def resolve(host: str, port: int, timeout_s: float | None = None) -> list[Address]:
        if host in answers:
            return [ip(a) for a in answers[host]]
        return await real(host, port, timeout_s)

    monkeypatch.setattr(outbound, "resolve", resolve)
    yield answers


async def test_loopback_and_metadata_urls_are_refused_in_every_spelling() -> None:
    policy = OutboundPolicy()
    with pytest.raises(OutboundRefused) as caught:
        await policy.check("http://localhost:8080/mcp")
    assert str(caught.value) == (
        "http://localhost:8080/mcp may not be reached: localhost resolves to 127.0.0.1, a "
        "loopback address, which only an entry naming it allows; to allow it, add "
        f'"localhost:8080" (this port), "localhost" or "127.0.0.1" {HOW}'
    )
    for url in (
        "http://127.0.0.1/",
        "https://[::1]:8443/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:8800/",
    ):
        with pytest.raises(OutboundRefused, match=r"may not be reached: "):
            await policy.check(url)
    for url in ("file:///etc/passwd", "ftp://example.com/", "gopher://example.com/", "http:///"):
        with pytest.raises(OutboundRefused, match=r"is not an http:// or https:// URL"):
            await policy.check(url)
    await OutboundPolicy(["localhost:8080"]).check("http://localhost:8080/mcp")
    await OutboundPolicy(["127.0.0.0/8"]).check("http://2130706433/")


async def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused(
    dns: dict[str, list[str]],
) -> None:
    policy = OutboundPolicy()
    dns["api.example.com"] = ["10.0.0.5"]
    with pytest.raises(OutboundRefused, match=r"api.example.com resolves to 10.0.0.5, a private"):
        await policy.check("https://api.example.com/openapi.json")
    dns["api.example.com"] = [PUBLIC, "169.254.169.254"]
    with pytest.raises(OutboundRefused, match=r"169.254.169.254, a cloud metadata address"):
        await policy.check("https://api.example.com/openapi.json")
    dns["api.example.com"] = [PUBLIC]
    await policy.check("https://api.example.com/openapi.json")  # checked; nothing connects


async def test_a_name_no_entry_allows_is_not_even_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[str] = []

    async def resolve(host: str, port: int, timeout_s: float | None = None) -> list[Address]:
        looked_up.append(host)
        return [ip(PUBLIC)]

    monkeypatch.setattr(outbound, "resolve", resolve)
    with pytest.raises(OutboundRefused, match=r"other.example is not in outbound_hosts"):
        await OutboundPolicy(["api.example.com"]).check("https://other.example/")
    assert looked_up == []


async def test_a_name_that_does_not_resolve_cannot_be_reached() -> None:
    with pytest.raises(ToolError, match=r"cannot be reached: nowhere.invalid does not resolve"):
        await OutboundPolicy(["nowhere.invalid"]).check("http://nowhere.invalid/")


class _Wanders(ToolService):
    """A service whose URL changes once it has listed its tools (as an OpenAPI spec may name
    its own server)."""

    name = "wanders"

    def __init__(self) -> None:
        self.urls = ["https://api.example.com/openapi.json"]
        self.closed = False

    def outbound_urls(self) -> list[str]:
        return self.urls

    async def list_tools(self) -> list[ToolSpec]:
        self.urls = ["http://127.0.0.1:9/"]
        return []

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        raise AssertionError("never called")

    async def close(self) -> None:
        self.closed = True


async def test_a_service_is_checked_again_once_it_knows_its_urls(
    dns: dict[str, list[str]],
) -> None:
    dns["api.example.com"] = [PUBLIC]
    registry = ToolRegistry()
    service = _Wanders()
    with pytest.raises(OutboundRefused, match=r"^tool service 'wanders': http://127.0.0.1:9/ may"):
        await registry.register_service(service)
    assert service.closed
    assert registry.services() == []


# -- every connection (call time) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def first() -> Iterator[Served]:
    with serve_openapi_service() as served:
        yield served


@pytest.fixture(scope="module")
def second() -> Iterator[Served]:
    with serve_openapi_service() as served:
        yield served


def hostport(served: Served) -> str:
    return served.base_url.removeprefix("http://")


async def test_a_redirect_to_a_destination_not_allowed_is_refused_at_the_hop(
    first: Served, second: Served
) -> None:
    first.state.moved_to = f"{second.base_url}/health"
    received = list(second.state.requests)
    only_first = OutboundPolicy([hostport(first)])
    service = OpenAPIService("orders", spec_url=first.spec_url, outbound=only_first)
    try:
        with pytest.raises(OutboundRefused) as caught:
            await service.call("moved", {}, CONTEXT)
    finally:
        await service.close()
    first_port, second_port = (hostport(s).split(":")[1] for s in (first, second))
    assert str(caught.value) == (
        f"OpenAPI service 'orders' did not send GET /moved: {hostport(second)} may not be "
        f"reached: 127.0.0.1 is allowed on port {first_port} only, not {second_port}; to allow "
        f'it, add "{hostport(second)}" (this port) or "127.0.0.1" {HOW}'
    )
    assert first.state.requests[-1] == "GET /moved"
    assert second.state.requests == received

    both = OpenAPIService(
        "orders",
        spec_url=first.spec_url,
        outbound=OutboundPolicy([hostport(first), hostport(second)]),
    )
    try:
        assert (await both.call("moved", {}, CONTEXT)).data == {"status": "ok"}
    finally:
        await both.close()
    assert second.state.requests[-1] == "GET /health"


async def test_httpx2_the_mcp_client_checks_every_hop_too(first: Served, second: Served) -> None:
    first.state.moved_to = f"{second.base_url}/health"
    received = list(second.state.requests)
    only_first = OutboundPolicy([hostport(first)]).httpx2_transport()
    async with httpx2.AsyncClient(transport=only_first, follow_redirects=True) as client:
        with pytest.raises(OutboundRefused, match=rf"^{hostport(second)} may not be reached: "):
            await client.get(f"{first.base_url}/moved")
        with pytest.raises(OutboundRefused, match=rf"^{hostport(second)} may not be reached: "):
            await client.get(f"{second.base_url}/health")
        assert (await client.get(f"{first.base_url}/health")).json() == {"status": "ok"}
    assert second.state.requests == received
    both = OutboundPolicy([hostport(first), hostport(second)]).httpx2_transport()
    async with httpx2.AsyncClient(transport=both, follow_redirects=True) as client:
        assert (await client.get(f"{first.base_url}/moved")).json() == {"status": "ok"}
    assert second.state.requests[-1] == "GET /health"


def _internal(served: Served) -> OpenAPIService:
    """The orders API under a made-up name; only the test's DNS answers for it."""
    port = hostport(served).split(":")[1]
    return OpenAPIService(
        "internal", served.app.openapi(), base_url=f"http://orders.example:{port}"
    )


async def test_a_dns_answer_that_changes_after_registration_is_refused_when_connecting(
    dns: dict[str, list[str]], first: Served
) -> None:
    service = _internal(first)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        dns["orders.example"] = [PUBLIC]  # public when it is registered (nothing connects)...
        specs = await server.add_service(service)
        assert "internal:reset" in {spec.id for spec in specs}
        dns["orders.example"] = ["127.0.0.1"]  # ...loopback when it is called (DNS rebinding)
        received, resets = list(first.state.requests), first.state.resets
        with pytest.raises(OutboundRefused) as caught:
            await service.call("reset", {}, CONTEXT)
    port = hostport(first).split(":")[1]
    assert str(caught.value).startswith(
        f"OpenAPI service 'internal' did not send POST /admin/reset: orders.example:{port} may "
        "not be reached: orders.example resolves to 127.0.0.1, a loopback address"
    )
    assert first.state.requests == received
    assert first.state.resets == resets


async def test_a_server_applies_its_own_setting_and_connects_to_the_checked_address(
    dns: dict[str, list[str]], first: Served
) -> None:
    # orders.example exists only in the test's DNS: a request can only arrive through the
    # address the policy checked. The service's own default policy gives way to the server's.
    dns["orders.example"] = ["127.0.0.2", "127.0.0.1"]  # the first does not answer
    settings = tactful.Settings(transient=True, outbound_hosts=["orders.example"])
    service = _internal(first)
    resets = first.state.resets
    async with tactful.Server(settings=settings, embedder=HashingEmbedder(), offline=True) as s:
        await s.add_service(service)
        assert (await service.call("reset", {}, CONTEXT)).data == {"reset": True}
    assert first.state.resets == resets + 1


async def test_a_service_registered_with_the_sdk_is_refused_before_it_connects(
    first: Served,
) -> None:
    received = list(first.state.requests)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        with pytest.raises(ValidationError) as caught:
            await server.add_service(OpenAPIService("orders", spec_url=first.spec_url))
        assert "orders:get_order" not in server.runtime.engine.tools
    assert str(caught.value).startswith(
        f"tool service 'orders': {first.spec_url} may not be reached: 127.0.0.1 is a loopback"
    )
    assert first.state.requests == received


async def test_proxies_from_the_environment_are_not_used(
    first: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check is about the address tactful connects to; through a proxy it would be the
    # proxy's. Requests go straight to the checked address instead.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    policy = OutboundPolicy([hostport(first)])
    service = OpenAPIService("orders", spec_url=first.spec_url, outbound=policy)
    try:
        assert (await service.call("health_health_get", {}, CONTEXT)).data == {"status": "ok"}
    finally:
        await service.close()
    async with httpx2.AsyncClient(transport=policy.httpx2_transport()) as client:
        assert (await client.get(f"{first.base_url}/health")).json() == {"status": "ok"}


async def test_a_services_headers_do_not_follow_a_redirect_to_another_origin(
    first: Served, second: Served
) -> None:
    first.state.moved_to = f"{second.base_url}/health"
    both = OutboundPolicy([hostport(first), hostport(second)])
    service = OpenAPIService(
        "orders", spec_url=first.spec_url, outbound=both, headers={"X-Api-Key": "s3cret"}
    )
    try:
        assert (await service.call("moved", {}, CONTEXT)).data == {"status": "ok"}
    finally:
        await service.close()
    assert first.state.headers[-1]["x-api-key"] == "s3cret"
    assert second.state.requests[-1] == "GET /health"
    assert "x-api-key" not in second.state.headers[-1]
