"""Twilio list paging: page size, page tokens, and the list envelopes.

Owns: ``PageSize``/``Page``/``PageToken`` parsing, the opaque page token, and the
2010-04-01 envelope (relative ``uri``/``first_page_uri``/``next_page_uri``/
``previous_page_uri``, ``page``, ``page_size``, ``start``, ``end``) and the
Messaging v1 ``meta`` envelope (absolute URLs).

Rules:
- ``PageSize`` default 50, 1..1000; above 1000 -> 20007 "Page size too large".
- A page token is ``PA`` + urlsafe base64 of ``"<direction>:<seq>"``; only ``after``
  (older than ``seq``, i.e. ``seq < before_seq``) exists, since lists are newest
  first. Anything else -> 21481 Invalid PageToken.
- ``next_page_uri`` carries the filters, ``PageSize``, ``Page=page+1`` and a token;
  following it is O(page) whatever the depth. ``previous_page_uri`` has no token: it
  is ``Page=page-1`` resolved by offset (bounded, see ``ApiLimits.max_offset_rows``).
- The twilio library accepts a page only with status 200 and exactly one key outside
  its meta keys, so envelopes hold nothing else.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.api import forms
from gateway.core.errors import TwilioError

PAGE_SIZE_TOO_LARGE = 20007
INVALID_PAGE_TOKEN = 21481


@dataclass(frozen=True, slots=True)
class PageRequest:
    page_size: int
    page: int
    before_seq: int | None     # from PageToken; None = from the newest


def encode_token(before_seq: int) -> str:
    raw = f"after:{before_seq}".encode()
    return "PA" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> int:
    if not token.startswith("PA"):
        raise TwilioError(INVALID_PAGE_TOKEN, "Invalid PageToken")
    body = token[2:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        kind, _, seq = raw.partition(":")
        if kind != "after":
            raise ValueError(kind)
        n = int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TwilioError(INVALID_PAGE_TOKEN, "Invalid PageToken") from None
    if n < 0:
        raise TwilioError(INVALID_PAGE_TOKEN, "Invalid PageToken")
    return n


def parse_page(query: forms.Form, default_size: int = 50, max_size: int = 1000) -> PageRequest:
    raw = forms.value(query, "PageSize")
    if raw is not None and raw.strip().isdigit() and int(raw) > max_size:
        raise TwilioError(
            PAGE_SIZE_TOO_LARGE, f"Page size too large: PageSize must be at most {max_size}"
        )
    size = forms.integer(query, "PageSize", default_size, 1, max_size)
    page = forms.integer(query, "Page", 0, 0, 10**9)
    token = forms.value(query, "PageToken")
    before = decode_token(token) if token else None
    return PageRequest(page_size=size, page=page, before_seq=before)


def _with(path: str, params: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def envelope_2010(
    key: str,
    items: list[dict[str, Any]],
    path: str,
    filters: list[tuple[str, str]],
    req: PageRequest,
    has_more: bool,
    next_before_seq: int | None = None,
) -> dict[str, Any]:
    """A 2010-04-01 list page; the next link carries a token when ``next_before_seq``
    is given (seq-ordered lists), else plain ``Page=page+1`` (small in-memory lists)."""
    size = [("PageSize", str(req.page_size))]
    this = filters + size + [("Page", str(req.page))]
    if req.before_seq is not None:
        this.append(("PageToken", encode_token(req.before_seq)))
    nxt = None
    if has_more:
        params = filters + size + [("Page", str(req.page + 1))]
        if next_before_seq is not None:
            params.append(("PageToken", encode_token(next_before_seq)))
        nxt = _with(path, params)
    prev = None
    if req.page > 0:
        prev = _with(path, filters + size + [("Page", str(req.page - 1))])
    start = req.page * req.page_size
    return {
        key: items,
        "end": start + max(len(items) - 1, 0),
        "first_page_uri": _with(path, filters + size + [("Page", "0")]),
        "next_page_uri": nxt,
        "page": req.page,
        "page_size": req.page_size,
        "previous_page_uri": prev,
        "start": start,
        "uri": _with(path, this),
    }


def envelope_v1(
    key: str, items: list[dict[str, Any]], url: str, req: PageRequest, has_more: bool
) -> dict[str, Any]:
    """A Messaging v1 page with its ``meta`` object (absolute URLs; offset paging)."""
    size = [("PageSize", str(req.page_size))]
    return {
        key: items,
        "meta": {
            "first_page_url": _with(url, size + [("Page", "0")]),
            "key": key,
            "next_page_url": _with(url, size + [("Page", str(req.page + 1))]) if has_more else None,
            "page": req.page,
            "page_size": req.page_size,
            "previous_page_url": (
                _with(url, size + [("Page", str(req.page - 1))]) if req.page > 0 else None
            ),
            "url": _with(url, size + [("Page", str(req.page))]),
        },
    }
