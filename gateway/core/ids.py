"""Twilio-style SIDs: two letters + 32 lowercase hex digits.

Random SIDs are 128 bits from a PRNG seeded by ``os.urandom``; stable SIDs (phone numbers defined in the config) are
derived from their inputs so every gateway and every restart agrees on them.
"""

import hashlib
import os
import random
import re

SID_RE = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


_rng = random.Random(os.urandom(32))
_bits = _rng.getrandbits


def new_sid(prefix: str) -> str:
    """``prefix`` + 32 hex digits from a PRNG seeded with 256 bits of os.urandom: SIDs
    must be unique, not secret (access needs the account's credentials)."""
    return f"{prefix}{_bits(128):032x}"


def new_token() -> str:
    """32 hex digits, unique per process lifetime (idempotency tokens)."""
    return f"{_bits(128):032x}"


def stable_sid(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return prefix + digest[:32]


def is_sid(value: str, prefix: str | None = None) -> bool:
    if not SID_RE.match(value or ""):
        return False
    return prefix is None or value.startswith(prefix)
