"""Twilio-style SIDs: two letters + 32 lowercase hex digits.

Random SIDs are 128 random bits (``os.urandom``, as uuid4 but cheaper); stable SIDs (phone numbers defined in the config) are
derived from their inputs so every gateway and every restart agrees on them.
"""

import hashlib
import re
import os

SID_RE = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def new_sid(prefix: str) -> str:
    return prefix + os.urandom(16).hex()


def stable_sid(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return prefix + digest[:32]


def is_sid(value: str, prefix: str | None = None) -> bool:
    if not SID_RE.match(value or ""):
        return False
    return prefix is None or value.startswith(prefix)
