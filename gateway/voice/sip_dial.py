"""``<Dial><Sip>``: a child leg INVITEd straight to a SIP URI (no carrier trunk).

Owns: ``parse_target(uri) -> SipTarget`` (request URI, host, port, transport, custom
headers), ``place(svc, call, rtp, timeout, sip) -> (OutboundCall | None, failed
status | None, SIP status code, final response headers)`` — ``dial.py`` calls it for ``<Sip>`` nouns instead of
``svc.place`` (the trunk path), so ``<Sip>`` rings in parallel with ``<Number>``s — and
``header_params(headers)``, the ``DialSipHeader_<name>`` action parameters.

Rules (Twilio's ``<Sip>`` noun):
- ``sip[s]:user@host[:port][;transport=udp|tcp|tls][?X-Name=value&...]``: transport
  defaults to UDP for ``sip:``, TLS for ``sips:`` (``sips:`` with ``transport=tcp`` is TLS
  too, RFC 3261 §26.2.2; ``sips:`` over UDP is refused); port defaults to 5061 over TLS,
  else 5060. The ``?`` part is not sent in the Request-URI: each ``X-…`` (and
  ``User-to-User``) entry becomes a header of the INVITE, percent-decoded; other names
  are dropped (logged).
- TLS: the callee's certificate is verified against the system CAs, or ``[sip] tls_ca``
  (a configured TLS trunk at the same host:port uses its own ``tls_ca``/``tls_verify``),
  with SNI and host name check = the URI's host (the name, though the INVITE goes to the
  vetted IP). A certificate that does not verify fails the attempt (503 -> ``failed``).
- ``username``/``password``: digest credentials for a 401/407 challenge (the SIP core
  answers the challenge itself).
- SSRF guard (CONTRACT §7 lets the gateway reach carrier trunks only): ``<Sip>`` is
  refused unless ``[sip] allow_sip_dial = true``; even then the host must resolve to
  public addresses only, unless ``[webhooks] allow_private = true`` (the same switch
  that lets webhooks reach loopback/private hosts — dev and tests). The vetted IP is
  what the INVITE goes to (no second resolution), whatever the transport.
- ``DialSipHeader_<name>``: the ``X-`` headers of the callee's final response (name as
  received, e.g. ``DialSipHeader_X-Trace``), as Twilio passes them to the Dial action.
- The child ``Call``'s ``To`` is the URI without its ``?`` part.
Error handling: a refused/unresolvable target is ``(None, "failed", 0, [])``; SIP
failures are ``(None, status_for_sip(code), code, headers)``; nothing raises but
cancellation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote

import trio

from gateway.codec import sdp as sdpc
from gateway.core import call as C
from gateway.io import ssrf
from gateway.io.http_common import BlockedAddress, ConnectError

log = logging.getLogger("gateway.voice")

HEADER_OK = ("x-", "user-to-user")
MAX_HEADER_BYTES = 1024


@dataclass(frozen=True, slots=True)
class SipTarget:
    request_uri: str
    user: str
    host: str
    port: int
    transport: str                       # "udp" | "tcp" | "tls"
    headers: tuple[tuple[str, str], ...]


def parse_target(uri: str) -> SipTarget:
    """Split a ``<Sip>`` URI; ``ValueError`` when it cannot be dialled."""
    uri = uri.strip()
    scheme, colon, _ = uri.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips"):
        raise ValueError(f"{uri!r}: only sip: and sips: URIs can be dialled")
    base, _, query = uri.partition("?")
    rest = base[len(scheme) + 1:]
    hostpart, _, params = rest.partition(";")
    user, at, hostport = hostpart.rpartition("@")
    if not at:
        user, hostport = "", hostpart
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_s = tail.lstrip(":")
    else:
        host, _, port_s = hostport.partition(":")
    if not host:
        raise ValueError(f"{uri!r}: no host")
    transport = "tls" if scheme == "sips" else "udp"
    for p in params.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "transport":
            transport = v.strip().lower()
    if scheme == "sips" and transport == "tcp":
        transport = "tls"                # RFC 3261 §26.2.2: sips over TCP = TLS
    if transport not in ("udp", "tcp", "tls") or (scheme == "sips" and transport != "tls"):
        raise ValueError(f"{uri!r}: transport {transport!r} not supported "
                         "(udp, tcp, tls; sips: needs tls)")
    try:
        port = int(port_s) if port_s else (5061 if transport == "tls" else 5060)
    except ValueError:
        raise ValueError(f"{uri!r}: bad port") from None
    if not 0 < port < 65536:
        raise ValueError(f"{uri!r}: bad port")
    headers = []
    size = 0
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        name, value = unquote(name).strip(), unquote(value).strip()
        if not name.lower().startswith(HEADER_OK) or not name.replace("-", "").isalnum():
            log.info("<Sip> %s: header %r dropped (only X- and User-to-User)", base, name)
            continue
        size += len(name) + len(value)
        if size > MAX_HEADER_BYTES or any(c in value for c in "\r\n"):
            raise ValueError(f"{uri!r}: custom headers too long or malformed")
        headers.append((name, value))
    return SipTarget(base, user, host, port, transport, tuple(headers))


async def _vet(svc, host: str, port: int) -> str | None:
    """The IP to send to, or None (refused / unresolvable; logged)."""
    try:
        if svc.gw.settings.webhooks.allow_private:
            info = await trio.socket.getaddrinfo(host, port, trio.socket.AF_INET)
            return info[0][4][0]
        return (await ssrf.resolve_public(host, port))[0]
    except (BlockedAddress, ConnectError, OSError) as exc:
        log.warning("<Dial><Sip> to %s refused: %s", host, exc)
        return None


def header_params(headers) -> list[tuple[str, str]]:
    """``DialSipHeader_X-Name`` action parameters from a final response's headers."""
    return [(f"DialSipHeader_{name}", value) for name, value in headers
            if name.lower().startswith("x-")]


async def place(svc, call: C.Call, rtp, timeout: float, sip) -> tuple:
    """INVITE ``sip.uri`` -> (OutboundCall, None, code, []) once it rings or answers, else
    (None, failed status, SIP code or 0, the final response's headers)."""
    if not getattr(svc, "allow_sip_dial", False):
        log.warning("call sid=%s <Dial><Sip> refused: [sip] allow_sip_dial is false",
                    call.parent_call_sid)
        return None, C.FAILED, 0, []
    try:
        target = parse_target(sip.uri)
    except ValueError as exc:
        log.warning("call sid=%s <Dial><Sip>: %s", call.parent_call_sid, exc)
        return None, C.FAILED, 0, []
    ip = await _vet(svc, target.host, target.port)
    if ip is None:
        return None, C.FAILED, 0, []
    if target.transport == "tls":        # SNI + certificate check against the URI's name
        svc.ua.streams.names[(ip, target.port)] = target.host
    auth = (sip.username, sip.password or "") if sip.username else None
    out = await svc.ua.invite(
        target.request_uri, (ip, target.port), from_user=call.from_,
        sdp_offer=sdpc.offer(svc.host, rtp.port), auth=auth, timeout=timeout,
        headers=list(target.headers), transport=target.transport)
    call.sip_call_id = out.call_id
    try:
        progress = await out.wait_progress()
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await out.cancel()
        raise
    if progress in ("ringing", "answered"):
        return out, None, out.status_code, []
    code = out.status_code
    status = C.NO_ANSWER if code == 408 else C.status_for_sip(code)
    return None, status, code, out.final_headers
