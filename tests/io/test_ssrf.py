"""SSRF guard: address vetting table, resolution rules, and end-to-end refusal."""

from __future__ import annotations

import pytest
import trio

from gateway.io import ssrf
from gateway.io.http_client import BlockedAddress, HttpClient
from gateway.io.http_server import HttpServer, Response

BLOCKED = [
    "127.0.0.1", "127.255.0.9", "0.0.0.0", "10.0.0.1", "10.255.255.255", "172.16.0.1",
    "172.31.255.254", "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.169.254",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8",
    "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9",
    "::1", "::", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:100.64.0.1",
    "64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b:1::808:808", "2002:7f00:1::",
    "2002:a00:1::1", "2002:a9fe:a9fe::", "fe80::1", "fe80::1%lo", "fc00::1", "fd12::1",
    "ff02::1", "2001:db8::1", "2001::1", "100::1", "::7f00:1",
    "not-an-ip",
]
ALLOWED = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "172.32.0.1", "2606:4700::1111",
    "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_addresses(address):
    assert ssrf.blocked_reason(address) is not None
    assert not ssrf.is_public(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_allowed(address):
    assert ssrf.blocked_reason(address) is None


def test_unwrap_embedded_ipv4():
    import ipaddress as ip
    assert ssrf.unwrap(ip.ip_address("::ffff:127.0.0.1")) == ip.ip_address("127.0.0.1")
    assert ssrf.unwrap(ip.ip_address("64:ff9b::a00:1")) == ip.ip_address("10.0.0.1")
    assert ssrf.unwrap(ip.ip_address("2002:7f00:1::")) == ip.ip_address("127.0.0.1")
    assert ssrf.unwrap(ip.ip_address("8.8.8.8")) == ip.ip_address("8.8.8.8")


class FakeResolver(trio.abc.HostnameResolver):
    """Answers from a table; no network. Records every lookup."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        self.calls.append(name)
        out = []
        for addr in self.table[name]:
            fam = trio.socket.AF_INET6 if ":" in addr else trio.socket.AF_INET
            sockaddr = (addr, port, 0, 0) if ":" in addr else (addr, port)
            out.append((fam, trio.socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    async def getnameinfo(self, sockaddr, flags):
        raise NotImplementedError


async def test_resolve_public_refuses_if_any_address_private():
    resolver = FakeResolver({"mixed.test": ["8.8.8.8", "10.0.0.1"],
                             "good.test": ["8.8.8.8", "2001:4860:4860::8888"],
                             "mapped.test": ["::ffff:127.0.0.1"]})
    trio.socket.set_custom_hostname_resolver(resolver)
    try:
        with pytest.raises(BlockedAddress):
            await ssrf.resolve_public("mixed.test", 80)
        with pytest.raises(BlockedAddress):
            await ssrf.resolve_public("mapped.test", 80)
        assert await ssrf.resolve_public("good.test", 443) == [
            "8.8.8.8", "2001:4860:4860::8888"]
        # IP literals are vetted without a lookup
        assert await ssrf.resolve_public("8.8.4.4", 80) == ["8.8.4.4"]
        assert await ssrf.resolve_public("[2606:4700::1111]", 80) == ["2606:4700::1111"]
        with pytest.raises(BlockedAddress):
            await ssrf.resolve_public("[::1]", 80)
        assert resolver.calls == ["mixed.test", "mapped.test", "good.test"]
    finally:
        trio.socket.set_custom_hostname_resolver(None)


async def test_client_refuses_loopback_end_to_end_without_connecting():
    async def handler(request):
        return Response.text("should not be reached")

    server = HttpServer(handler, "127.0.0.1", 0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            client = HttpClient(allow_private=False)
            for url in (f"http://127.0.0.1:{port}/", f"http://[::ffff:127.0.0.1]:{port}/",
                        f"http://localhost:{port}/"):
                with pytest.raises(BlockedAddress):
                    await client.request("GET", url)
            assert server.connections_accepted == 0
            # the same client with the guard off reaches it
            open_client = HttpClient(allow_private=True)
            assert (await open_client.request("GET", f"http://127.0.0.1:{port}/")).status == 200
            await client.aclose()
            await open_client.aclose()
            nursery.cancel_scope.cancel()


async def test_client_dials_vetted_ip_and_keeps_host_header(monkeypatch):
    """The name is resolved once (by the guard); the connection goes to that IP and
    the Host header keeps the name. A second lookup (DNS rebinding) would fail."""
    seen = []

    async def handler(request):
        seen.append(request.headers["host"])
        return Response.text("ok")

    async def fake_resolve_public(host, port):
        assert host == "hooks.example.test"
        return ["127.0.0.1"]                    # pretend this was the vetted address

    monkeypatch.setattr(ssrf, "resolve_public", fake_resolve_public)
    resolver = FakeResolver({})                 # any real lookup raises KeyError
    server = HttpServer(handler, "127.0.0.1", 0)
    trio.socket.set_custom_hostname_resolver(resolver)
    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.serve)
                client = HttpClient(allow_private=False)
                resp = await client.request("GET", f"http://hooks.example.test:{port}/cb")
                assert resp.status == 200 and resp.body == b"ok"
                assert seen == [f"hooks.example.test:{port}"]
                assert resolver.calls == []
                await client.aclose()
                nursery.cancel_scope.cancel()
    finally:
        trio.socket.set_custom_hostname_resolver(None)
