"""SIP header value grammar (RFC 3261 §19, §20, §25): URIs, name-addr, Via, CSeq.

Owns: parsing and formatting of the structured header values the transaction and dialog
layers need — ``Uri`` (sip/sips/tel, user, host, port, params), ``NameAddr`` (display
name, URI, header params such as ``tag``), ``Via`` (transport, sent-by, ``branch``,
``received``, ``rport``), ``CSeq``, and comma splitting that respects quotes and <>.

Rules:
- Pure functions on ``str``; no I/O. Tolerant of optional whitespace and case in
  parameter names (kept lower-case); parameter values keep their case.
- Anything unparseable raises ``SipError(400)`` (defined here, re-exported by ``sip``),
  never another exception type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class SipError(ValueError):
    """A message (or header) we cannot accept; ``status`` is the SIP response to send
    back (400 for malformed, 505 for a wrong version, 513 for too large, ...)."""

    def __init__(self, status: int = 400, reason: str = "Bad Request"):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


_VIA_HEAD = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+(\S+)\s*$", re.I)

_TOKEN_EXTRA = set("-.!%*_+`'~")


def is_token(s: str) -> bool:
    return bool(s) and all(c.isascii() and (c.isalnum() or c in _TOKEN_EXTRA) for c in s)


def split_commas(value: str) -> list[str]:
    """Split a comma-joined header value, ignoring commas inside quotes and <...>."""
    out, cur, quote, angle, esc = [], [], False, False, False
    for c in value:
        if esc:
            cur.append(c)
            esc = False
            continue
        if quote and c == "\\":
            esc = True
        elif c == '"':
            quote = not quote
        elif not quote and c == "<":
            angle = True
        elif not quote and c == ">":
            angle = False
        elif c == "," and not quote and not angle:
            item = "".join(cur).strip()
            if item:
                out.append(item)
            cur = []
            continue
        cur.append(c)
    item = "".join(cur).strip()
    if item:
        out.append(item)
    if quote:
        raise SipError(400, "unbalanced quotes")
    return out


def parse_params(text: str) -> dict[str, str | None]:
    """``;a=b;c`` (leading ';' optional) -> {"a": "b", "c": None}."""
    params: dict[str, str | None] = {}
    for part in _split_unquoted(text, ";"):
        part = part.strip()
        if not part:
            continue
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        if not is_token(name):
            raise SipError(400, f"bad parameter {name!r}")
        params[name] = val.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _split_unquoted(text: str, sep: str) -> list[str]:
    out, cur, quote = [], [], False
    for c in text:
        if c == '"':
            quote = not quote
        if c == sep and not quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def _split_hostport(hp: str) -> tuple[str, int | None]:
    hp = hp.strip()
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0:
            raise SipError(400, "bad IPv6 reference")
        host, rest = hp[: end + 1], hp[end + 1:]
        if rest and not rest.startswith(":"):
            raise SipError(400, "bad host:port")
        port_s = rest[1:] if rest else ""
    else:
        host, _, port_s = hp.partition(":")
    if not host or any(c in host for c in ' <>"\t'):
        raise SipError(400, f"bad host {hp!r}")
    if port_s == "":
        return host, None
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise SipError(400, f"bad port {port_s!r}")
    return host, int(port_s)


@dataclass
class Uri:
    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    raw: str = ""

    @classmethod
    def parse(cls, text: str) -> Uri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or not is_token(scheme) or not rest:
            raise SipError(400, f"bad URI {text!r}")
        scheme = scheme.lower()
        if any(c in text for c in " \t\r\n<>"):
            raise SipError(400, f"bad URI {text!r}")
        if scheme not in ("sip", "sips"):
            # tel: and unknown schemes: keep opaque, no host semantics
            return cls(scheme=scheme, host="", user=rest.split(";")[0], raw=text)
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            hostpart, userinfo = rest, None
        hostpart, _, hdrs = hostpart.partition("?")
        user = password = None
        if userinfo is not None:
            user, _, pw = userinfo.partition(":")
            password = pw or None
            if not user:
                raise SipError(400, "empty user in URI")
        hostport, _, ptext = hostpart.partition(";")
        host, port = _split_hostport(hostport)
        return cls(scheme, host, user, password, port, parse_params(ptext), hdrs, text)

    def __str__(self) -> str:
        if self.scheme not in ("sip", "sips"):
            return self.raw
        s = f"{self.scheme}:"
        if self.user is not None:
            s += self.user + (f":{self.password}" if self.password else "") + "@"
        s += self.host + (f":{self.port}" if self.port else "")
        s += format_params(self.params)
        return s + (f"?{self.headers}" if self.headers else "")

    def hostport(self, default_port: int = 5060) -> tuple[str, int]:
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        port = self.port or (5061 if self.scheme == "sips" else default_port)
        return host, port


@dataclass
class NameAddr:
    uri: Uri
    display: str = ""
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display = ""
        if text.startswith('"'):
            i, chars = 1, []
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise SipError(400, "unterminated display name")
            display, text = "".join(chars), text[i + 1:].strip()
            if not text.startswith("<"):
                raise SipError(400, "display name without <URI>")
        if "<" in text:
            lt = text.index("<")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipError(400, "unterminated <URI>")
            display = display or text[:lt].strip()
            uri, rest = Uri.parse(text[lt + 1: gt]), text[gt + 1:].strip()
            if rest and not rest.startswith(";"):
                raise SipError(400, "junk after name-addr")
            return cls(uri, display, parse_params(rest))
        # addr-spec: URI params are header params (RFC 3261 §20.10)
        uri_part, _, ptext = text.partition(";")
        return cls(Uri.parse(uri_part), "", parse_params(ptext))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        disp = f'"{self.display}" ' if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"


@dataclass
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        head, _, ptext = text.partition(";")
        m = _VIA_HEAD.match(head)
        if not m:
            raise SipError(400, f"bad Via {text!r}")
        host, port = _split_hostport(m.group(2))
        return cls(m.group(1).upper(), host, port, parse_params(ptext))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    def response_address(self) -> tuple[str, int]:
        """Where responses go (RFC 3261 §18.2.2, RFC 3581): received / rport win."""
        host = self.params.get("received") or self.host
        if host.startswith("["):
            host = host[1:-1]
        rport = self.params.get("rport")
        if rport and rport.isdigit():
            return host, int(rport)
        return host, self.port or 5060


@dataclass
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
            raise SipError(400, f"bad CSeq {text!r}")
        seq = int(parts[0])
        if seq >= 2**31:
            raise SipError(400, "CSeq out of range")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
