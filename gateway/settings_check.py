"""Validation machinery for ``gateway.settings``: field checks and the TOML -> dataclass builder.

Owns:
- the *field checks*: small functions ``check(value) -> str | None`` (``None`` = fine,
  otherwise the reason) attached to dataclass fields through ``field(metadata=...)``;
- ``build(cls, raw, where, problems)``: turns a TOML table into a frozen dataclass by
  walking the class's type hints (str, int, float, bool, ``tuple[str, ...]``,
  ``dict[str, float]``, nested dataclasses, ``Nested | None``, ``tuple[Nested, ...]``),
  reporting unknown keys, wrong types and missing required keys;
- ``read_secret`` for ``*_file`` keys;
- ``CROSS_CHECKS`` (checks spanning sections, run on the built ``Settings`` tree) is
  in ``gateway.settings_cross``.

Rules: nothing here raises on bad input; every problem is appended to ``problems`` as
``"KEY: why"`` (the caller prefixes the file name) so one run reports every problem.
No I/O except reading secret files and ``os.access`` probes done by ``writable_dir``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], "str | None"]

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE_RE = re.compile(r"^\d{5,6}$")
HEX32_RE = re.compile(r"^[0-9a-fA-F]{32}$")
DLR_STATES = ("DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD", "ENROUTE")
TOLL_FREE_NPA = ("800", "833", "844", "855", "866", "877", "888")


def opt(default: Any, *checks: Check, repr: bool = True) -> Any:
    """A dataclass field with a default and field checks (``repr=False`` for secrets)."""
    meta = {"checks": checks}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta, repr=repr)


def req(*checks: Check) -> Any:
    """A required dataclass field with field checks."""
    return dataclasses.field(metadata={"checks": checks})


# -- field checks -------------------------------------------------------------------------

def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"{v!r} is not one of {', '.join(choices)}"
    return check


def at_least(lo: float) -> Check:
    def check(v: Any) -> str | None:
        return None if v >= lo else f"{v!r} is below the minimum {lo}"
    return check


def between(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"{v!r} is not between {lo} and {hi}"
    return check


def port(v: Any) -> str | None:
    return None if 0 < v < 65536 else f"{v!r} is not a TCP/UDP port (1-65535)"


def nonempty(v: Any) -> str | None:
    return None if v else "must not be empty"


nonempty.whole = True  # type: ignore[attr-defined]  # applies to an array, not its items


def hostport(v: str) -> str | None:
    """``HOST:PORT`` with HOST a name, an IPv4 address or ``[IPv6]``; port 0 allowed."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})", v)
    bad = f"{v!r} is not HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)"
    if not m or int(m.group(2)) > 65535:
        return bad
    host = m.group(1)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return bad
    return None


def hostport_or_empty(v: str) -> str | None:
    """Empty (feature off) or ``HOST:PORT``."""
    return hostport(v) if v else None


def split_hostport(v: str) -> tuple[str, int]:
    """``"[::1]:80"`` -> ``("::1", 80)``; assumes ``hostport(v)`` passed."""
    host, _, p = v.rpartition(":")
    return host.strip("[]"), int(p)


def url(v: str) -> str | None:
    if v == "" or re.fullmatch(r"https?://[^\s/?#]+[^\s]*", v):
        return None
    return f"{v!r} is not an http(s) URL"


def http_method(v: str) -> str | None:
    return None if v in ("GET", "POST") else f"{v!r} is not GET or POST"


def e164(v: str) -> str | None:
    return None if E164_RE.match(v) else f"{v!r} is not E.164 (+ and up to 15 digits)"


def sender(v: str) -> str | None:
    if E164_RE.match(v) or SHORT_CODE_RE.match(v):
        return None
    return f"{v!r} is not E.164 or a 5-6 digit short code"


ALPHA_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 +\-_&]{1,11}$")


def alpha_sender_id(v: str) -> str | None:
    if ALPHA_RE.match(v):
        return None
    return (f"{v!r} is not an alphanumeric sender ID (1-11 of A-Z a-z 0-9 space - + _ &, "
            "at least one letter)")


def sid(prefix: str) -> Check:
    def check(v: str) -> str | None:
        if v.startswith(prefix) and HEX32_RE.match(v[2:]):
            return None
        return f"{v!r} is not a {prefix} SID ({prefix} + 32 hex digits)"
    return check


def prefix(v: str) -> str | None:
    return None if re.fullmatch(r"\+\d{0,15}", v) else f"{v!r} is not a route prefix ('+' then digits)"


def redis_url(v: str) -> str | None:
    if v == "" or re.fullmatch(r"(rediss?://\S*|unix://\S+)", v):
        return None
    return f"{v!r} is not redis://, rediss:// or unix:// URL"


def sender_class(number: str) -> str:
    """The sender class a number implies: short code, toll-free (NANP 8XX) or long code."""
    if SHORT_CODE_RE.match(number):
        return "short_code"
    if number.startswith("+1") and number[2:5] in TOLL_FREE_NPA:
        return "toll_free"
    return "long_code"


# -- files ----------------------------------------------------------------------------------

def resolve(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base, path)


def read_secret(name: str, config_dir: str) -> tuple[str | None, str | None]:
    """(secret, None) or (None, why). Relative names resolve against $CREDENTIALS_DIRECTORY
    when set, else against the config file's directory; one trailing newline is dropped."""
    base = os.environ.get("CREDENTIALS_DIRECTORY") or config_dir
    path = resolve(name, base)
    try:
        with open(path, encoding="utf-8") as f:
            data = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return None, f"cannot read secret file {path!r}: {getattr(e, 'strerror', None) or e}"
    data = data.rstrip("\r\n")
    if not data:
        return None, f"secret file {path!r} is empty"
    return data, None


def writable_dir(path: str) -> str | None:
    """Why the directory holding ``path`` cannot be created/written, or None."""
    d = os.path.dirname(os.path.abspath(path))
    probe = d
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == d else f"cannot be created ({probe!r} is not writable)"
        return f"directory {d!r} {what}"
    return None


# -- the builder ----------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _type_name(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "an array"
    return "a table"


def _convert(tp: Any, v: Any, where: str, problems: list[str]) -> Any:
    """TOML value -> Python value of type ``tp``; appends a problem and returns
    ``dataclasses.MISSING`` when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):      # Nested | None
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return _convert(inner, v, where, problems)
    if dataclasses.is_dataclass(tp):
        if isinstance(v, dict):
            return build(tp, v, where, problems)
    elif origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if isinstance(v, list):
            out = [_convert(item_tp, x, f"{where}[{i}]", problems) for i, x in enumerate(v)]
            return tuple(x for x in out if x is not dataclasses.MISSING)
    elif origin is dict:
        val_tp = typing.get_args(tp)[1]
        if isinstance(v, dict):
            conv = {k: _convert(val_tp, x, f"{where}.{k}", problems) for k, x in v.items()}
            return {k: x for k, x in conv.items() if x is not dataclasses.MISSING}
    elif tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif isinstance(v, tp):
        return v
    shown = f"{v!r}" if not isinstance(v, (dict, list)) else type(v).__name__
    problems.append(f"{where}: {shown} should be {_type_name(tp)}")
    return dataclasses.MISSING


def build(cls: type, raw: dict, where: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from TOML table ``raw``; every problem goes to ``problems``.
    Fields that fail keep their default so checks further on still run."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)
              if f.init and not f.metadata.get("internal")}
    dot = f"{where}." if where else ""
    for key in raw:
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{dot}{key}: unknown key{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{dot}{name}"
        if name in raw:
            value = _convert(hints[name], raw[name], key, problems)
            if value is dataclasses.MISSING:
                continue
            for check in f.metadata.get("checks", ()):
                each = isinstance(value, tuple) and not getattr(check, "whole", False)
                for i, item in enumerate(value if each else (value,)):
                    why = check(item)
                    if why:
                        problems.append(f"{key}{f'[{i}]' if each else ''}: {why}")
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{key}: missing (required)")
            kwargs[name] = _placeholder(hints[name])
    return cls(**kwargs)


def _placeholder(tp: Any) -> Any:
    if dataclasses.is_dataclass(tp):
        return build(tp, {}, "", [])
    origin = typing.get_origin(tp)
    return {tuple: (), dict: {}}.get(origin, {str: "", int: 0, float: 0.0, bool: False}.get(tp))


# checks spanning sections live in settings_cross (they use the helpers above)
