"""SSRF guard for user-supplied webhook/media URLs: which IP addresses may be dialled.

Owns: vetting one IP address (``blocked_reason``) and resolving a host to addresses
that are all public (``resolve_public``).

Rules (reference/reliability.md §5):
- Unwrap first: IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002::/16), NAT64 (64:ff9b::/96),
  Teredo client (2001::/32) — the embedded IPv4 address is what gets vetted.
- Refuse loopback, private, link-local, CGNAT 100.64/10, multicast, reserved,
  unspecified, documentation/benchmark ranges, and anything ``ipaddress`` does not call
  global. The explicit network list keeps this right on Python builds whose
  ``is_global`` tables are wrong (CVE-2024-4032, fixed only in 3.11.10).
- A host is refused if ANY of its resolved addresses is refused (no picking the good
  one: DNS answers are attacker-controlled). Callers connect to the vetted IP itself,
  never re-resolving, so a rebinding DNS answer cannot slip in between.
"""

from __future__ import annotations

import ipaddress
import socket

import trio

from gateway.io.http_common import BlockedAddress, ConnectError

__all__ = ["blocked_reason", "is_public", "resolve_public", "unwrap"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_DENY = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)]
_V6_DENY = [ipaddress.ip_network(n) for n in (
    "::/96",            # unspecified, loopback, IPv4-compatible (deprecated)
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215)
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments (Teredo is unwrapped before this)
    "2001:db8::/32", "3fff::/20",   # documentation
    "5f00::/16",        # SRv6 SIDs
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address embedded in a mapped/6to4/NAT64/Teredo IPv6 address, else ip."""
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip in _SIX_TO_FOUR:
            return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
        if ip in _TEREDO:
            return ipaddress.IPv4Address(~int(ip) & 0xFFFFFFFF)
    return ip


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why this address must not be dialled, or None when it is public."""
    if isinstance(address, str):
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
    else:
        ip = address
    inner = unwrap(ip)
    for cand in (inner, ip) if inner is not ip else (ip,):
        deny = _V4_DENY if cand.version == 4 else _V6_DENY
        for net in deny:
            if cand in net:
                return f"{cand} is in {net}"
    if inner is not ip:
        return None if inner.is_global else f"{inner} (inside {ip}) is not global"
    for flag in ("is_loopback", "is_private", "is_link_local", "is_multicast",
                 "is_reserved", "is_unspecified"):
        if getattr(ip, flag):
            return f"{ip} {flag[3:].replace('_', '-')}"
    if not ip.is_global:
        return f"{ip} is not global"
    return None


def is_public(address: str | IPAddress) -> bool:
    return blocked_reason(address) is None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def resolve_public(host: str, port: int) -> list[str]:
    """Resolve host; every address must be public, else BlockedAddress.

    Returns the vetted IP strings in resolver order. An IP literal is vetted
    without a lookup. Resolution failure raises ConnectError.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if _is_ip(literal):
        addrs = [literal]
    else:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, OSError) as exc:
            raise ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addrs = []
        for info in infos:
            addr = info[4][0]
            if addr not in addrs:
                addrs.append(addr)
        if not addrs:
            raise ConnectError(f"{host!r} resolved to no address")
    for addr in addrs:
        why = blocked_reason(addr)
        if why is not None:
            raise BlockedAddress(f"{host} -> {why}")
    return addrs
