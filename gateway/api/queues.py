"""The Queues resource and its Members, Twilio's 2010-04-01 shape.

Owns: the routes (registered by ``register(app, ctx)``)
``GET|POST …/Queues.json`` (key ``queues``), ``GET|POST|DELETE …/Queues/{QU}.json``,
``GET …/Queues/{QU}/Members.json`` (key ``queue_members``) and
``GET|POST …/Queues/{QU}/Members/{CA|Front}.json``, and their JSON.

Rules:
- Queues live in ``ctx.voice.queues`` (a ``gateway.voice.queues.QueueHub``); ``<Enqueue>``
  creates them by name too. Create: ``FriendlyName`` required (1..64 characters, unique
  in the account), ``MaxSize`` 1..5000, default 1000 (the twilio library's documented
  range). Update changes either. Delete: 204; a queue with members -> 400.
- ``current_size``/``average_wait_time`` are computed at request time; members are
  listed oldest first with ``position`` 1.. and ``wait_time`` in seconds. ``Front`` is
  the oldest member not yet being dequeued.
- Member ``POST Url`` (``Method`` default POST): dequeues that call, which then runs the
  ``Url`` document (``<Enqueue action>`` not requested). A member already being
  dequeued, or none, -> 404.
- Another account's queue is 404 exactly like a missing one; paging is offset paging
  (``Page``/``PageSize``) like the other in-memory lists.
Error handling: none here; store errors reach ``ApiApp`` (503).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.api import forms, render
from gateway.api.conferences import _page
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response
from gateway.voice.queues import DEFAULT_MAX_SIZE, MAX_MAX_SIZE, QueueNotEmpty

_AC = r"(?P<account>AC[0-9a-fA-F]{32})"
_BASE = r"^/2010-04-01/Accounts/" + _AC
_QU = r"(?P<sid>QU[0-9a-fA-F]{32})"
MISSING = 20001                  # "Missing required parameter" (Twilio's generic code)
INVALID = forms.INVALID_PARAMETER


def queue_json(q) -> dict[str, Any]:
    base = f"{render.account_base(q.account_sid)}/Queues/{q.sid}"
    return {
        "account_sid": q.account_sid,
        "average_wait_time": q.average_wait(),
        "current_size": len(q.members),
        "date_created": render.rfc2822(q.date_created),
        "date_updated": render.rfc2822(q.date_updated),
        "friendly_name": q.friendly_name,
        "max_size": q.max_size,
        "sid": q.sid,
        "subresource_uris": {"members": f"{base}/Members.json"},
        "uri": f"{base}.json",
    }


def member_json(q, m) -> dict[str, Any]:
    return {
        "call_sid": m.call_sid,
        "date_enqueued": render.rfc2822(m.date_enqueued),
        "position": q.position(m),
        "queue_sid": q.sid,
        "uri": f"{render.account_base(q.account_sid)}/Queues/{q.sid}/Members/{m.call_sid}.json",
        "wait_time": m.waited(),
    }


def _not_found(req: Request) -> TwilioError:
    return TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)


def _name(form) -> str | None:
    name = forms.value(form, "FriendlyName")
    if name is not None and not 1 <= len(name.strip()) <= 64:
        raise TwilioError(INVALID, "FriendlyName must be 1 to 64 characters")
    return name.strip() if name is not None else None


class QueuesResource:
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    @property
    def hub(self):
        return getattr(getattr(self.ctx, "voice", None), "queues", None)

    async def _queue(self, req: Request, account: str, sid: str):
        hub = self.hub
        q = await hub.get(account, sid) if hub is not None else None
        if q is None:
            raise _not_found(req)
        return q

    async def _unique(self, account: str, name: str, sid: str | None = None) -> None:
        other = await self.hub.by_name(account, name)
        if other is not None and other.sid != sid:
            raise TwilioError(INVALID, f"A queue named {name!r} already exists")

    # -- queues ---------------------------------------------------------------------
    async def list(self, req: Request, account: str) -> Response:
        hub = self.hub
        rows = await hub.list(account) if hub is not None else []
        return _page(req, "queues", rows, f"{render.account_base(account)}/Queues.json", [],
                     queue_json)

    async def create(self, req: Request, account: str) -> Response:
        form = req.form()
        name = _name(form)
        if not name:
            raise TwilioError(MISSING, "Missing required parameter FriendlyName in the post body")
        size = forms.integer(form, "MaxSize", DEFAULT_MAX_SIZE, 1, MAX_MAX_SIZE)
        if self.hub is None:
            raise TwilioError(20404, "Voice is not available on this gateway", 404)
        await self._unique(account, name)
        q = await self.hub.create(account, name, size)
        return Response.json(queue_json(q), status=201)

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(queue_json(await self._queue(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        q = await self._queue(req, account, sid)
        form = req.form()
        name = _name(form)
        size = forms.integer(form, "MaxSize", q.max_size, 1, MAX_MAX_SIZE)
        if name:
            await self._unique(account, name, sid)
        await self.hub.update(q, name=name or None, max_size=size)
        return Response.json(queue_json(q))

    async def delete(self, req: Request, account: str, sid: str) -> Response:
        q = await self._queue(req, account, sid)
        try:
            await self.hub.delete(q)
        except QueueNotEmpty:
            raise TwilioError(INVALID, "The queue is not empty; only an empty queue can be "
                                       "deleted") from None
        return Response.empty(204)

    # -- members --------------------------------------------------------------------
    async def members(self, req: Request, account: str, sid: str) -> Response:
        q = await self._queue(req, account, sid)
        rows = list(q.members.values())
        path = f"{render.account_base(account)}/Queues/{sid}/Members.json"
        return _page(req, "queue_members", rows, path, [], lambda m: member_json(q, m))

    async def _member(self, req: Request, account: str, sid: str, call: str):
        q = await self._queue(req, account, sid)
        m = (q.waiting() or [None])[0] if call == "Front" else q.members.get(call)
        if m is None:
            raise _not_found(req)
        return q, m

    async def member(self, req: Request, account: str, sid: str, call: str) -> Response:
        q, m = await self._member(req, account, sid, call)
        return Response.json(member_json(q, m))

    async def update_member(self, req: Request, account: str, sid: str,
                            call: str) -> Response:
        q, m = await self._member(req, account, sid, call)
        form = req.form()
        url = forms.url(form, "Url", 21205)
        if url is None:
            raise TwilioError(MISSING, "Missing required parameter Url in the post body")
        body = member_json(q, m)
        if self.hub.redirect(q, m.call_sid, url, forms.method(form, "Method") or "POST") is None:
            raise _not_found(req)
        return Response.json(body)


def register(app, ctx) -> QueuesResource:
    """Add the Queues and Members routes to an ``ApiApp``."""
    res = QueuesResource(ctx)
    app.route(_BASE + r"/Queues\.json$", {"GET": res.list, "POST": res.create})
    app.route(_BASE + r"/Queues/" + _QU + r"\.json$",
              {"GET": res.fetch, "POST": res.update, "DELETE": res.delete})
    app.route(_BASE + r"/Queues/" + _QU + r"/Members\.json$", {"GET": res.members})
    app.route(_BASE + r"/Queues/" + _QU + r"/Members/(?P<call>CA[0-9a-fA-F]{32}|Front)\.json$",
              {"GET": res.member, "POST": res.update_member})
    return res
