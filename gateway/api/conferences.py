"""The Conferences resource and its Participants, Twilio's 2010-04-01 shape.

Owns: the routes (registered by ``register(app, ctx)``)
``GET …/Conferences.json`` (filters ``FriendlyName``, ``Status``, ``DateCreated``,
``DateCreated<``, ``DateCreated>``, ``DateUpdated`` and its bounds; key ``conferences``),
``GET|POST …/Conferences/{CF}.json``, ``GET …/Conferences/{CF}/Participants.json``
(filters ``Muted``, ``Hold``; key ``participants``) and
``GET|POST|DELETE …/Conferences/{CF}/Participants/{CA}.json``, and their JSON.

Rules:
- Rooms come from ``ctx.voice.conferences`` (a ``gateway.voice.conference.
  ConferenceHub``): live rooms from memory, ended ones from their stored records, so a
  completed conference stays listable and fetchable. Without a voice service lists are
  empty and every SID is 404.
- Conference ``POST Status=completed`` ends the room (``reason_conference_ended``
  ``conference-ended-via-api``; every participant's call goes on after its ``<Dial>``);
  on a completed room it changes nothing. Another ``Status`` -> 20422.
  ``AnnounceUrl``/``AnnounceMethod`` are accepted and ignored (logged): no announcement
  is played.
- Participants are the calls in the room now (Twilio lists no past participants), all
  ``connected``. ``POST Muted`` mutes/unmutes from the next 20 ms tick, ``Hold`` holds
  (silence both ways; ``HoldUrl`` is not played), ``EndConferenceOnExit`` changes the
  flag; ``AnnounceUrl``, ``WaitUrl``, ``BeepOnExit``, ``Coaching``, ``CallSidToCoach``
  are ignored. ``DELETE`` kicks: 204, the call goes on with the ``<Dial action>`` or the
  next verb. A call not in the room -> 404 (20404).
- Another account's conference is 404 exactly like a missing one; paging is offset
  paging (``Page``/``PageSize``) like the other in-memory lists.

Error handling: none here; store errors reach ``ApiApp`` (503).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.core import ids
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response

log = logging.getLogger("gateway.api")

_AC = r"(?P<account>AC[0-9a-fA-F]{32})"
_BASE = r"^/2010-04-01/Accounts/" + _AC
_CF = r"(?P<sid>CF[0-9a-fA-F]{32})"
STATUSES = ("init", "in-progress", "completed")


def conference_json(rec: dict) -> dict[str, Any]:
    base = f"{render.account_base(rec['account_sid'])}/Conferences/{rec['sid']}"
    return {
        "account_sid": rec["account_sid"],
        "api_version": render.API_VERSION,
        "call_sid_ending_conference": rec.get("call_sid_ending_conference"),
        "date_created": render.rfc2822(rec["date_created"]),
        "date_updated": render.rfc2822(rec["date_updated"]),
        "friendly_name": rec["friendly_name"],
        "reason_conference_ended": rec.get("reason_conference_ended"),
        "region": "us1",
        "sid": rec["sid"],
        "status": rec["status"],
        "subresource_uris": {"participants": f"{base}/Participants.json",
                             "recordings": f"{base}/Recordings.json"},
        "uri": f"{base}.json",
    }


def participant_json(room, p) -> dict[str, Any]:
    base = f"{render.account_base(room.account_sid)}/Conferences/{room.sid}"
    return {
        "account_sid": room.account_sid,
        "call_sid": p.sid,
        "call_sid_to_coach": None,
        "coaching": False,
        "conference_sid": room.sid,
        "date_created": render.rfc2822(p.date_created),
        "date_updated": render.rfc2822(p.date_updated),
        "end_conference_on_exit": p.opts.end_conference_on_exit,
        "hold": p.hold,
        "label": None,
        "muted": p.muted,
        "queue_time": "0",
        "start_conference_on_enter": p.opts.start_conference_on_enter,
        "status": "connected",
        "uri": f"{base}/Participants/{p.sid}.json",
    }


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _not_found(req: Request) -> TwilioError:
    return TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)


def _page(req: Request, key: str, rows: list, path: str, filters, render_row) -> Response:
    page = paging.parse_page(req.query_params(), 50, 1000)
    start = page.page * page.page_size
    chunk = rows[start:start + page.page_size]
    env = paging.envelope_2010(key, [render_row(r) for r in chunk], path, filters,
                               paging.PageRequest(page.page_size, page.page, None),
                               len(rows) > start + page.page_size)
    return Response.json(env)


class ConferencesResource:
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    @property
    def hub(self):
        return getattr(getattr(self.ctx, "voice", None), "conferences", None)

    async def _record(self, req: Request, account: str, sid: str) -> dict:
        hub = self.hub
        rec = await hub.record(sid) if hub is not None else None
        if rec is None or rec.get("account_sid") != account:
            raise _not_found(req)
        return rec

    # -- conferences ----------------------------------------------------------------
    async def list(self, req: Request, account: str) -> Response:
        query = req.query_params()
        filters: list[tuple[str, str]] = []
        name = forms.value(query, "FriendlyName")
        status = forms.value(query, "Status")
        if status is not None and status not in STATUSES:
            raise TwilioError(20422, f"Invalid Status {status!r}: init, in-progress or "
                                     "completed")
        preds = []
        if name:
            filters.append(("FriendlyName", name))
            preds.append(lambda r: r["friendly_name"] == name)
        if status:
            filters.append(("Status", status))
            preds.append(lambda r: r["status"] == status)
        for field in ("DateCreated", "DateUpdated"):
            attr = "date_created" if field == "DateCreated" else "date_updated"
            for suffix, ok in (("", str.__eq__), ("<", str.__le__), (">", str.__ge__)):
                day = forms.day(query, field + suffix)
                if day:
                    filters.append((field + suffix, day))
                    preds.append(lambda r, a=attr, d=day, f=ok: f(_day(r[a]), d))
        hub = self.hub
        rows = await hub.records(account) if hub is not None else []
        rows = [r for r in rows if all(p(r) for p in preds)]
        return _page(req, "conferences", rows,
                     f"{render.account_base(account)}/Conferences.json", filters,
                     conference_json)

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(conference_json(await self._record(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        rec = await self._record(req, account, sid)
        form = req.form()
        status = forms.value(form, "Status")
        if status is not None and status != "completed":
            raise TwilioError(20422, "Status can only be updated to 'completed'.")
        if forms.value(form, "AnnounceUrl"):
            log.info("conference %s: AnnounceUrl ignored (announcements not supported)", sid)
        room = self.hub.live(sid)
        if status == "completed" and room is not None:
            room.end("conference-ended-via-api")
            rec = room.record()
        return Response.json(conference_json(rec))

    # -- participants ---------------------------------------------------------------
    async def _room(self, req: Request, account: str, sid: str):
        await self._record(req, account, sid)            # 404 unless the account's
        return self.hub.live(sid)

    async def _participant(self, req: Request, account: str, sid: str, call: str):
        room = await self._room(req, account, sid)
        p = room.parts.get(call) if room is not None and ids.is_sid(call, "CA") else None
        if p is None:
            raise _not_found(req)
        return room, p

    async def participants(self, req: Request, account: str, sid: str) -> Response:
        room = await self._room(req, account, sid)
        query = req.query_params()
        filters: list[tuple[str, str]] = []
        want: dict[str, bool] = {}
        for name in ("Muted", "Hold"):
            if forms.value(query, name):
                want[name.lower()] = forms.boolean(query, name)
                filters.append((name, str(want[name.lower()]).lower()))
        rows = sorted(room.parts.values(), key=lambda p: (p.date_created, p.sid)) \
            if room is not None else []
        rows = [p for p in rows if all(getattr(p, k) == v for k, v in want.items())]
        path = f"{render.account_base(account)}/Conferences/{sid}/Participants.json"
        return _page(req, "participants", rows, path, filters,
                     lambda p: participant_json(room, p))

    async def participant(self, req: Request, account: str, sid: str, call: str) -> Response:
        room, p = await self._participant(req, account, sid, call)
        return Response.json(participant_json(room, p))

    async def update_participant(self, req: Request, account: str, sid: str,
                                 call: str) -> Response:
        room, p = await self._participant(req, account, sid, call)
        form = req.form()
        muted = forms.boolean(form, "Muted") if forms.value(form, "Muted") else None
        hold = forms.boolean(form, "Hold") if forms.value(form, "Hold") else None
        if forms.value(form, "EndConferenceOnExit"):
            p.opts = dataclasses.replace(
                p.opts, end_conference_on_exit=forms.boolean(form, "EndConferenceOnExit"))
        room.update(call, muted=muted, hold=hold)
        return Response.json(participant_json(room, p))

    async def kick(self, req: Request, account: str, sid: str, call: str) -> Response:
        room, _ = await self._participant(req, account, sid, call)
        room.kick(call)
        return Response.empty(204)


def register(app, ctx) -> ConferencesResource:
    """Add the Conferences and Participants routes to an ``ApiApp``."""
    res = ConferencesResource(ctx)
    app.route(_BASE + r"/Conferences\.json$", {"GET": res.list})
    app.route(_BASE + r"/Conferences/" + _CF + r"\.json$",
              {"GET": res.fetch, "POST": res.update})
    app.route(_BASE + r"/Conferences/" + _CF + r"/Participants\.json$",
              {"GET": res.participants})
    app.route(_BASE + r"/Conferences/" + _CF + r"/Participants/(?P<call>[^/]+)\.json$",
              {"GET": res.participant, "POST": res.update_participant, "DELETE": res.kick})
    return res
