"""Phone numbers: E.164 and short-code checks, normalisation, sender classes.

Rules:
- E.164 is ``+`` then 2–15 digits, the first not 0 (``^\\+[1-9]\\d{1,14}$``).
- A short code is 5 or 6 digits, no ``+``.
- ``normalize`` removes spaces, dashes, dots and parentheses and keeps a leading ``+``;
  it never invents a country code (``5551234567`` stays invalid E.164).
- Sender classes are ``long_code``, ``toll_free``, ``short_code``; the configured class
  of a number wins, otherwise it is guessed from its shape. ``alphanumeric`` is the class
  of alphanumeric sender IDs (``[[alpha_senders]]``), never guessed.
- An alphanumeric sender ID (Twilio's AlphaSender rule) is 1-11 characters of A-Z a-z
  0-9, space, ``-``, ``+``, ``_``, ``&``, at least one of them a letter (so it can never
  be mistaken for a number). It is never normalised.
- Queue key: a number is its own key; an alphanumeric sender ID is ``"AC…|ID"`` (two
  accounts may both send as ``ACME``; their queues stay apart).
- SMPP source address type: E.164 → TON 1/NPI 1, short code → TON 3/NPI 1, other
  digits → TON 0/NPI 1, alphanumeric → TON 5/NPI 0 (SMPP 3.4 §5.2.5-6).
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
ALPHANUMERIC = "alphanumeric"
SENDER_CLASSES = (LONG_CODE, TOLL_FREE, SHORT_CODE)

ALPHA_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 +\-_&]{1,11}$")
#: SMPP 3.4 type of number / numbering plan indicator
TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL, TON_ALPHANUMERIC = 0, 1, 3, 5
NPI_UNKNOWN, NPI_E164 = 0, 1

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


def is_alpha_sender(s: str) -> bool:
    """A well-formed alphanumeric sender ID (see the module rules)."""
    return bool(s) and ALPHA_RE.match(s) is not None


def looks_alpha(s: str) -> bool:
    """``From`` meant as a sender ID rather than a number: it holds a letter."""
    return any(c.isalpha() for c in s)


def sender_key(account: str, sender: str) -> str:
    """The sender queue key: the number itself, or ``"AC…|ID"`` for a sender ID."""
    if not sender or sender[0] == "+" or sender.isdigit():
        return sender
    return f"{account}|{sender}"


def source_ton_npi(sender: str) -> tuple[int, int]:
    """SMPP ``source_addr_ton``/``source_addr_npi`` for a ``From``."""
    if sender.startswith("+"):
        return TON_INTERNATIONAL, NPI_E164
    if sender.isdigit():
        return (TON_NATIONAL if len(sender) <= 6 else TON_UNKNOWN), NPI_E164
    return TON_ALPHANUMERIC, NPI_UNKNOWN


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
