"""Phone numbers: E.164 and short-code checks, normalisation, sender classes.

Rules:
- E.164 is ``+`` then 2–15 digits, the first not 0 (``^\\+[1-9]\\d{1,14}$``).
- A short code is 5 or 6 digits, no ``+``.
- ``normalize`` removes spaces, dashes, dots and parentheses and keeps a leading ``+``;
  it never invents a country code (``5551234567`` stays invalid E.164).
- Sender classes are ``long_code``, ``toll_free``, ``short_code``; the configured class
  of a number wins, otherwise it is guessed from its shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE_RE = re.compile(r"^\d{5,6}$")
_STRIP_RE = re.compile(r"[\s\-().]")

LONG_CODE = "long_code"
TOLL_FREE = "toll_free"
SHORT_CODE = "short_code"
SENDER_CLASSES = (LONG_CODE, TOLL_FREE, SHORT_CODE)

#: North American toll-free area codes
TOLL_FREE_NANP = frozenset({"800", "833", "844", "855", "866", "877", "888"})


def normalize(s: str) -> str:
    """Strip spaces, dashes, dots and parentheses; keep a leading '+'."""
    return _STRIP_RE.sub("", s or "")


def is_e164(s: str) -> bool:
    return bool(s) and E164_RE.match(s) is not None


def is_short_code(s: str) -> bool:
    return bool(s) and SHORT_CODE_RE.match(s) is not None


def is_valid_address(s: str) -> bool:
    """An E.164 number or a short code (what 'To' and 'From' may be after normalising)."""
    return is_e164(s) or is_short_code(s)


def guess_sender_class(number: str) -> str:
    if is_short_code(number):
        return SHORT_CODE
    if number.startswith("+1") and number[2:5] in TOLL_FREE_NANP:
        return TOLL_FREE
    return LONG_CODE


def sender_class(number: str, configured: Mapping[str, str] | None = None) -> str:
    """The class of ``number``: from ``configured`` (number → class) or guessed."""
    if configured is not None:
        cls = configured.get(number)
        if cls is not None:
            return cls
    return guess_sender_class(number)
