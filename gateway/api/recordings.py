"""The Recordings resource: ``<Record>`` audio and metadata, Twilio's 2010-04-01 shape.

Owns: the routes (registered by ``register(app, ctx)``)
``GET …/Recordings.json`` (filter ``CallSid``; key ``recordings``),
``GET …/Calls/{CA}/Recordings.json``, ``GET|DELETE …/Recordings/{RE}.json`` and the
media ``GET …/Recordings/{RE}`` / ``…/{RE}.wav`` (``audio/x-wav``), and the Recording
JSON.

Rules:
- Every route needs the account's Basic auth, media included (a deliberate choice:
  Twilio serves media without auth unless "HTTP Basic Authentication for media" is
  on; a self-hosted gateway keeps recordings private). ``RecordingUrl`` values are
  therefore fetched with the account's credentials.
- ``.mp3`` is not supported (404, as for a missing recording); another account's
  recording is 404 exactly like a missing one (20404).
- The store comes from ``ctx.voice.recordings`` (a ``gateway.voice.recordings.
  RecordingStore``); without a voice service every recording is 404 and lists are empty.

Error handling: none here; store errors reach ``ApiApp`` (503).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.core import ids
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response

_AC = r"(?P<account>AC[0-9a-fA-F]{32})"
_BASE = r"^/2010-04-01/Accounts/" + _AC


def recording_json(rec, media_base: str) -> dict[str, Any]:
    base = f"{render.account_base(rec.account_sid)}/Recordings/{rec.sid}"
    created = render.rfc2822(rec.date_created)
    return {
        "account_sid": rec.account_sid,
        "api_version": render.API_VERSION,
        "call_sid": rec.call_sid,
        "conference_sid": None,
        "channels": rec.channels,
        "date_created": created,
        "date_updated": created,
        "start_time": render.rfc2822(rec.date_created - rec.duration),
        "duration": str(rec.duration),
        "sid": rec.sid,
        "price": None,
        "price_unit": "USD",
        "status": rec.status,
        "source": rec.source,
        "error_code": None,
        "encryption_details": None,
        "track": "both",
        "uri": f"{base}.json",
        "media_url": f"{media_base}{base}",
        "subresource_uris": {
            "add_on_results": f"{base}/AddOnResults.json",
            "transcriptions": f"{base}/Transcriptions.json",
        },
    }


class RecordingsResource:
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    @property
    def store(self):
        return getattr(getattr(self.ctx, "voice", None), "recordings", None)

    def _media_base(self) -> str:
        store = self.store
        return store.public_url if store is not None else ""

    async def _get(self, req: Request, account: str, sid: str):
        store = self.store
        rec = await store.get(sid) if store is not None and ids.is_sid(sid, "RE") else None
        if rec is None or rec.account_sid != account:
            raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found",
                              404)
        return rec

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(recording_json(await self._get(req, account, sid),
                                            self._media_base()))

    async def delete(self, req: Request, account: str, sid: str) -> Response:
        rec = await self._get(req, account, sid)
        await self.store.delete(rec)
        return Response.empty(204)

    async def media(self, req: Request, account: str, sid: str, ext: str | None = None) -> Response:
        rec = await self._get(req, account, sid)
        wav = await self.store.read(rec)
        if wav is None:
            raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found",
                              404)
        return Response(200, [("Content-Type", "audio/x-wav"),
                              ("Content-Disposition", f'inline; filename="{rec.sid}.wav"')],
                        wav)

    async def list(self, req: Request, account: str, call: str | None = None) -> Response:
        query = req.query_params()
        page = paging.parse_page(query, 50, 1000)
        call_sid = call or forms.value(query, "CallSid")
        filters = [("CallSid", call_sid)] if call_sid and not call else []
        store = self.store
        rows = await store.list(account, call_sid) if store is not None else []
        start = page.page * page.page_size
        chunk = rows[start:start + page.page_size]
        path = render.account_base(account) + (
            f"/Calls/{call}/Recordings.json" if call else "/Recordings.json")
        media = self._media_base()
        env = paging.envelope_2010("recordings", [recording_json(r, media) for r in chunk],
                                   path, filters,
                                   paging.PageRequest(page.page_size, page.page, None),
                                   len(rows) > start + page.page_size)
        return Response.json(env)


def register(app, ctx) -> RecordingsResource:
    """Add the Recordings routes to an ``ApiApp``."""
    res = RecordingsResource(ctx)
    app.route(_BASE + r"/Recordings\.json$", {"GET": res.list})
    app.route(_BASE + r"/Calls/(?P<call>CA[0-9a-fA-F]{32})/Recordings\.json$",
              {"GET": res.list})
    app.route(_BASE + r"/Recordings/(?P<sid>RE[0-9a-fA-F]{32})\.json$",
              {"GET": res.fetch, "DELETE": res.delete})
    app.route(_BASE + r"/Recordings/(?P<sid>RE[0-9a-fA-F]{32})(?P<ext>\.wav)?$",
              {"GET": res.media}, name="Recordings/{Sid}.wav")
    return res
