"""``X-Twilio-Signature`` and Twilio's webhook connection-override fragment.

Owns: signing the webhooks the gateway sends (status callbacks, inbound SMS, voice),
checking a signature the same way ``twilio.request_validator.RequestValidator`` does,
and reading the ``#ct=..&rt=..&tt=..&rc=..&rp=..`` fragment of a webhook URL.

Rules (reference/twilio.md §4–5):
- Signed string = the URL without its fragment, then, for each parameter name in
  sorted order (code points, case-sensitive), name + value for each of its *distinct*
  values in sorted order. Key = auth token; ``base64(HMAC-SHA1)``.
- Parameters may be a mapping of name → str or name → list of str (repeated keys), or
  a sequence of (name, value) pairs.
- The fragment is never sent and never signed; ``parse_overrides`` reads it. Values
  outside Twilio's ranges are clamped and noted in ``problems``; unknown keys and an
  invalid ``rp`` (Twilio: 11243) are noted and the default kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlparse, urlsplit, urlunsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
RETRY_POLICIES = frozenset({"4xx", "5xx", "ct", "rt", "all"})


def _grouped(params: Any) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    if not params:
        return groups
    pairs: Iterable[tuple[str, Any]]
    pairs = params.items() if isinstance(params, Mapping) else params
    for name, value in pairs:
        values = groups.setdefault(name, set())
        if isinstance(value, (list, tuple)):
            values.update(value)
        else:
            values.add(value)
    return groups


def strip_fragment(url: str) -> tuple[str, str]:
    """(url without '#…', fragment)."""
    base, _, frag = url.partition("#")
    return base, frag


def compute_signature(auth_token: str, url: str, params: Any = None) -> str:
    """The X-Twilio-Signature for a POST of ``params`` to ``url`` (fragment excluded)."""
    s = strip_fragment(url)[0]
    groups = _grouped(params)
    parts = [s]
    for name in sorted(groups):
        for value in sorted(groups[name]):
            parts.append(name)
            parts.append(value)
    mac = hmac.new(auth_token.encode("utf-8"), "".join(parts).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL without and with its port, exactly as twilio-python's validate() tries."""
    u = urlparse(url)
    if u.port:
        without = u._replace(netloc=u.netloc.split(":")[0]).geturl()
        return [without, u.geturl()]
    port = 443 if u.scheme == "https" else 80
    return [u.geturl(), u._replace(netloc=f"{u.netloc}:{port}").geturl()]


def drop_userinfo(url: str) -> str:
    """``https://user:pw@host/x`` → ``https://host/x`` (Twilio signs without userinfo)."""
    u = urlsplit(url)
    if "@" not in u.netloc:
        return url
    return urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2]))


def validate(auth_token: str, url: str, params: Any, signature: str) -> bool:
    """True when ``signature`` matches ``url`` with or without its port (as twilio-python)."""
    url = strip_fragment(url)[0]
    sig = (signature or "").encode()
    return any(
        hmac.compare_digest(compute_signature(auth_token, u, params).encode(), sig)
        for u in _port_variants(url)
    )


# --- connection overrides ----------------------------------------------------------------

#: key → (min, max, default); timeouts in milliseconds
RANGES: dict[str, tuple[int, int, int]] = {
    "ct": (100, 10000, 5000),
    "rt": (100, 15000, 15000),
    "tt": (100, 15000, 15000),
    "rc": (0, 5, 1),
}


@dataclass(frozen=True, slots=True)
class ConnectionOverrides:
    ct: int = 5000                    # connect timeout, ms
    rt: int = 15000                   # read timeout (first byte and between packets), ms
    tt: int = 15000                   # total time including retries, ms
    rc: int = 1                       # retries
    rp: frozenset[str] = frozenset({"ct"})  # retry on: 4xx, 5xx, ct, rt, all
    sni: bool = True
    edges: tuple[str, ...] = ()
    present: frozenset[str] = frozenset()   # keys the fragment set
    problems: tuple[str, ...] = field(default=())

    @property
    def connect_timeout(self) -> float:
        return self.ct / 1000.0

    @property
    def read_timeout(self) -> float:
        return self.rt / 1000.0

    @property
    def total_timeout(self) -> float:
        return self.tt / 1000.0

    def retries_on(self, what: str) -> bool:
        """``what``: "4xx" | "5xx" | "ct" (connect/TLS failure) | "rt" (no response)."""
        return "all" in self.rp or what in self.rp


def parse_overrides(url_or_fragment: str) -> ConnectionOverrides:
    """Read Twilio's ``#k=v&k=v`` connection overrides from a URL (or a bare fragment)."""
    frag = url_or_fragment
    if "#" in frag:
        frag = strip_fragment(frag)[1]
    elif "://" in frag:
        frag = ""
    values: dict[str, Any] = {}
    problems: list[str] = []
    present: set[str] = set()
    for key, raw in parse_qsl(frag, keep_blank_values=True):
        if key in RANGES:
            lo, hi, _ = RANGES[key]
            try:
                v = int(raw)
            except ValueError:
                problems.append(f"{key}={raw!r} is not an integer")
                continue
            if not lo <= v <= hi:
                problems.append(f"{key}={v} outside {lo}..{hi}, clamped")
                v = min(hi, max(lo, v))
            values[key] = v
        elif key == "rp":
            policies = frozenset(p.strip() for p in raw.split(",") if p.strip())
            if not policies or not policies <= RETRY_POLICIES:
                problems.append(f"rp={raw!r} invalid (Twilio error 11243)")
                continue
            values["rp"] = policies
        elif key == "sni":
            if raw not in ("y", "n"):
                problems.append(f"sni={raw!r} not y/n")
                continue
            values["sni"] = raw == "y"
        elif key == "e":
            values["edges"] = tuple(p for p in raw.split(",") if p)
        else:
            problems.append(f"unknown key {key!r}")
            continue
        present.add(key)
    return ConnectionOverrides(**values, present=frozenset(present), problems=tuple(problems))


def sign_webhook(auth_token: str, url: str, params: Any) -> tuple[str, str, ConnectionOverrides]:
    """(URL to request — fragment removed, X-Twilio-Signature, connection overrides).

    The signature covers the URL without fragment and without userinfo (the URL the
    receiving server sees); the returned URL keeps userinfo for HTTP Basic auth.
    """
    clean = strip_fragment(url)[0]
    sig = compute_signature(auth_token, drop_userinfo(clean), params)
    return clean, sig, parse_overrides(url)
