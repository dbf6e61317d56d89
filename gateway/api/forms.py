"""Reading Twilio form parameters: single values, booleans, ints, URLs, dates.

Owns: turning ``dict[str, list[str]]`` (urlencoded body or query) into typed values,
and the Twilio error code for each malformed parameter.

Rules:
- Parameter names are case-sensitive, as Twilio's; the last value of a repeated
  single-valued parameter wins (what most form parsers do), ``all_values`` keeps every one.
- An empty string is a value (``Body=`` redacts), ``None`` means "absent".
- Every malformed value raises ``TwilioError`` (status 400) naming the parameter.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gateway.core.errors import TwilioError

INVALID_PARAMETER = 20422
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Form = dict[str, list[str]]


def value(form: Form, name: str) -> str | None:
    values = form.get(name)
    if not values:
        return None
    return values[-1]


def all_values(form: Form, name: str) -> list[str]:
    return [v for v in form.get(name, []) if v != ""]


def boolean(form: Form, name: str, default: bool = False) -> bool:
    raw = value(form, name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise TwilioError(INVALID_PARAMETER, f"Invalid boolean value for '{name}': {raw!r}")


def integer(
    form: Form, name: str, default: int, lo: int, hi: int, code: int = INVALID_PARAMETER
) -> int:
    raw = value(form, name)
    if raw is None or raw.strip() == "":
        return default
    try:
        n = int(raw.strip())
    except ValueError:
        raise TwilioError(code, f"Invalid value for '{name}': {raw!r} is not an integer") from None
    if not lo <= n <= hi:
        raise TwilioError(code, f"Invalid value for '{name}': {n} is not between {lo} and {hi}")
    return n


@functools.lru_cache(maxsize=1024)      # callback URLs repeat on every create
def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def url(form: Form, name: str, code: int) -> str | None:
    """An absolute http(s) URL, or None when absent/empty."""
    raw = value(form, name)
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not is_http_url(raw):
        raise TwilioError(code, f"The {name} URL {raw!r} is not a valid http(s) URL")
    return raw


def method(form: Form, name: str) -> str | None:
    raw = value(form, name)
    if raw is None or raw == "":
        return None
    up = raw.strip().upper()
    if up not in ("GET", "POST"):
        raise TwilioError(21209, f"Invalid {name}: {raw!r} (GET or POST)")
    return up


def timestamp(raw: str, name: str, code: int) -> float:
    """ISO 8601 (``2030-01-01T12:00:00Z``, offsets allowed, naive = UTC) -> epoch s."""
    try:
        dt = datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise TwilioError(code, f"Invalid {name}: {raw!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def day(form: Form, name: str) -> str | None:
    """A ``YYYY-MM-DD`` filter value (a full ISO timestamp is cut to its day)."""
    raw = value(form, name)
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()[:10]
    if not _DAY_RE.match(raw):
        raise TwilioError(INVALID_PARAMETER, f"Invalid {name}: expected YYYY-MM-DD")
    try:
        datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise TwilioError(INVALID_PARAMETER, f"Invalid {name}: {raw!r} is not a date") from None
    return raw
