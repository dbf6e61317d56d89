"""Voice TwiML attribute readers: one verb or noun's XML attributes -> typed values.

Owns: ``bad`` (the 12200 ``TwimlError``), ``int_attr``, ``bool_attr``, ``method``,
``opt``, ``keys``, ``digits`` — shared by ``twiml_voice`` (verbs) and ``twiml_dial``
(``<Dial>`` and its nouns). Pure; no I/O.

Rules: an absent or blank attribute is its default; a value that cannot be used
(``timeout="soon"``, out of range, ``method="PUT"``, a key outside 0-9 * #) raises
``TwimlError`` code 12200 (Twilio's schema validation error) naming the tag and value.
"""

from __future__ import annotations

from gateway.codec.twiml import SCHEMA_WARNING, TwimlError, _Node

DTMF = frozenset("0123456789*#")


def bad(message: str) -> TwimlError:
    return TwimlError(message, SCHEMA_WARNING)


def int_attr(node: _Node, name: str, default: int, lo: int = 0, hi: int = 10**7) -> int:
    raw = node.attrs.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise bad(f"<{node.tag} {name}={raw!r}>: not an integer") from None
    if not lo <= value <= hi:
        raise bad(f"<{node.tag} {name}={raw!r}>: out of range {lo}..{hi}")
    return value


def bool_attr(node: _Node, name: str, default: bool) -> bool:
    raw = node.attrs.get(name)
    if raw is None or raw.strip() == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    raise bad(f"<{node.tag} {name}={raw!r}>: expected true or false")


def method(node: _Node, name: str = "method") -> str:
    raw = node.attrs.get(name)
    value = (raw or "POST").strip().upper()
    if value not in ("GET", "POST"):
        raise bad(f"<{node.tag} {name}={raw!r}>: expected GET or POST")
    return value


def opt(node: _Node, name: str) -> str | None:
    raw = node.attrs.get(name)
    return raw.strip() if raw and raw.strip() else None


def keys(node: _Node, name: str, default: str) -> str:
    raw = node.attrs.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if any(ch not in DTMF for ch in raw):
        raise bad(f"<{node.tag} {name}={raw!r}>: only 0-9, * and # allowed")
    return raw


def digits(node: _Node, name: str) -> str:
    raw = (node.attrs.get(name) or "").strip()
    if any(ch not in DTMF and ch not in "wW" for ch in raw):
        raise bad(f"<{node.tag} {name}={raw!r}>: only 0-9, *, #, w and W allowed")
    return raw


def events(node: _Node, name: str = "statusCallbackEvent") -> tuple[str, ...]:
    """A space- (or comma-) separated event list."""
    return tuple((node.attrs.get(name) or "").replace(",", " ").split())
