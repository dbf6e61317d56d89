"""Twilio's default opt-out keywords and replies.

Rules:
- The whole body is the keyword: trimmed, case-insensitive ("stop " and "Stop" match,
  "please stop" does not).
- stop: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT — the recipient is opted out of
  the receiving sender (the caller keeps that per sender, and later sends fail 21610).
- start: START, YES, UNSTOP — opted in again.
- help: HELP, INFO — answered with the help text; no state change.
- ``REPLIES[kind]`` are Twilio's default auto-replies.
"""

from __future__ import annotations

STOP = "stop"
START = "start"
HELP = "help"

KEYWORDS: dict[str, str] = {
    **{k: STOP for k in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")},
    **{k: START for k in ("START", "YES", "UNSTOP")},
    **{k: HELP for k in ("HELP", "INFO")},
}

REPLIES: dict[str, str] = {
    STOP: "You have successfully been unsubscribed. You will not receive any more "
    "messages from this number. Reply START to resubscribe.",
    START: "You have successfully been re-subscribed to messages from this number. "
    "Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    HELP: "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


def classify(body: str | None) -> str | None:
    """"stop" | "start" | "help" when the whole body is a keyword, else None."""
    if not body:
        return None
    return KEYWORDS.get(body.strip().upper())
