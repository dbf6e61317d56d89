"""SIP over TLS configuration (RFC 3261 §26.2, §19.1): the SSL contexts a ``SipUA`` uses.

Owns: ``SipTls`` (the listener address and server context, the default client context,
per-trunk client contexts), ``server_context``/``client_context`` and ``from_settings``.

Rules:
- Clients verify the peer by default (system CAs, or a PEM ``ca`` file) with SNI and
  host name check = the name the destination was given as (the trunk host);
  ``verify=False`` turns both off (lab trunks only).
- No client certificate is asked for on the listener (carriers authenticate by IP/digest).
- Minimum TLS 1.2 both ways.
Error handling: contexts are built at start; a bad file raises ``ssl.SSLError``/``OSError``
then (``check-config`` reports it before).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from gateway import settings_check as sc

Addr = tuple[str, int]


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca: str = "", verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class SipTls:
    listen: Addr | None = None                  # None = no TLS listener
    server: ssl.SSLContext | None = None
    client: ssl.SSLContext | None = None        # for peers that are not configured trunks
    trunks: dict[Addr, ssl.SSLContext] = field(default_factory=dict)
    handshake_timeout: float = 10.0

    def client_for(self, host: str, port: int) -> ssl.SSLContext:
        ctx = self.trunks.get((host.lower(), port))
        if ctx is None:
            if self.client is None:
                self.client = client_context()
            ctx = self.client
        return ctx


def from_settings(settings) -> SipTls:
    """``[sip] tls_*`` and the ``transport = "tls"`` trunks -> ``SipTls``."""
    sip = settings.sip
    tls = SipTls()
    if sip.tls_listen:
        tls.listen = sc.split_hostport(sip.tls_listen)
        tls.server = server_context(sip.tls_cert, sip.tls_key)
    for c in settings.carriers:
        trunk = getattr(c, "sip", None)
        if trunk is not None and trunk.transport == "tls":
            tls.trunks[(trunk.host.lower(), trunk.port)] = client_context(
                trunk.tls_ca, trunk.tls_verify)
    return tls
