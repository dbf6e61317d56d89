"""Process logging: one line per event on stderr, text or JSON lines.

Owns the root handler and the line formats.

- ``setup(level="info", fmt="text", stream=None)`` (level: a name, any case, or an int)
  installs (or replaces) the gateway's one
  handler on the root logger. Text: ``2024-05-01T12:00:00.123Z INFO gateway.smpp bound
  carrier=a window=64``; JSON (``--log-format json``): ``{"ts": ..., "level": ...,
  "logger": ..., "msg": ..., "carrier": "a", ...}`` via orjson.
- ``set_level(level)`` changes the root level only (config reload), handler untouched.
- ``log_event(logger, msg, level=logging.INFO, **fields)`` logs one event with structured
  fields (carrier, sid, status, error_code, ...). Plain ``logger.info("x %s", y)`` works too.
- Exceptions (``exc_info``) stay on the same line: escaped in text, an ``exc`` field in JSON.

Rules (redaction): callers MUST NOT pass message bodies, auth tokens, passwords or
Authorization headers to logging. As a guard, fields whose names are in ``REDACTED_KEYS``
(``body``, ``auth_token``, ``password``, ``token``, ``authorization``, ``secret`` ...) are
replaced with ``"[redacted]"`` by a filter on the handler, whatever the logger.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

REDACTED_KEYS = frozenset({
    "body", "auth_token", "password", "token", "authorization", "secret", "api_key",
    "short_message", "message_payload", "text",
})
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
_FIELDS = "gateway_fields"          # LogRecord attribute holding the structured fields
_HANDLER_MARK = "_gateway_handler"


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (never bodies or secrets; see module doc)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={_FIELDS: fields}, stacklevel=2)


class RedactFilter(logging.Filter):
    """Replaces the values of sensitive field names; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, _FIELDS, None)
        if fields and not REDACTED_KEYS.isdisjoint(fields):
            setattr(record, _FIELDS, {k: ("[redacted]" if k in REDACTED_KEYS else v)
                                      for k, v in fields.items()})
        return True


def _timestamp(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


def _text_value(v: Any) -> str:
    s = v if isinstance(v, str) else str(v)
    if s == "" or any(c in s for c in ' ="\\\n\r\t'):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
                   .replace("\r", "\\r").replace("\t", "\\t") + '"'
    return s


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace("\n", "\\n")
        parts = [_timestamp(record), record.levelname, record.name, msg]
        fields = dict(getattr(record, _FIELDS, None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items())
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage()}
        for k, v in (getattr(record, _FIELDS, None) or {}).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup(level: str | int = "info", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Install the gateway handler on the root logger (replacing a previous one)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r} is not text or json")
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        lvl = LEVELS[level.lower()]
    else:
        lvl = level
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(lvl)
    return handler


def set_level(level: str) -> None:
    """Change the process log level (a name from ``LEVELS``, any case) at run time."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    logging.getLogger().setLevel(LEVELS[level.lower()])
