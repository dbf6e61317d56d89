"""Messaging v1 Services, read-only: ``GET /v1/Services``, ``/v1/Services/{MG}``, and a
service's ``AlphaSenders`` (list, fetch by ``AI`` sid).

Owns: exposing the configured messaging services in Twilio's Messaging v1 JSON shape so
``client.messaging.v1.services.list()/fetch()`` work with ``client.messaging.base_url``
pointed at the gateway.

Rules:
- v1 has no account in the path: the authenticated account's services are listed;
  another account's service is 404 (20404).
- URLs in v1 are absolute, built from the request's ``Host`` (scheme from
  ``X-Forwarded-Proto``, default http); dates ISO 8601; paging by ``meta``.
- Services come from the config: create/update/delete answer 405. A service's
  AlphaSenders list holds its ``alpha_sender`` (0 or 1 entries), with the stable ``AI``
  sid of ``(account, sender_id)``.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.api import paging, render
from gateway.api.context import ApiContext, ApiLimits
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response


def request_origin(req: Request) -> str:
    host = req.headers.get("host") or "localhost"
    proto = (req.headers.get("x-forwarded-proto") or "http").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "http"
    return f"{proto}://{host}"


class ServicesResource:
    def __init__(self, ctx: ApiContext, limits: ApiLimits) -> None:
        self.ctx = ctx
        self.limits = limits

    async def list(self, req: Request, account: str) -> Response:
        page = paging.parse_page(
            req.query_params(), self.limits.default_page_size, self.limits.max_page_size
        )
        origin = request_origin(req)
        views = self.ctx.services(account)
        start = page.page * page.page_size
        chunk = views[start:start + page.page_size]
        env = paging.envelope_v1(
            "services", [render.service_json(v, origin) for v in chunk],
            f"{origin}/v1/Services", page, len(views) > start + page.page_size,
        )
        return Response.json(env)

    def _view(self, req: Request, account: str, sid: str):
        for view in self.ctx.services(account):
            if view.sid == sid:
                return view
        raise _not_found(req)

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(render.service_json(self._view(req, account, sid),
                                                 request_origin(req)))

    def _alphas(self, req: Request, account: str, sid: str) -> list:
        view = self._view(req, account, sid)
        lookup = getattr(self.ctx, "alpha_sender", None)
        alpha = lookup(account, view.alpha_sender) if view.alpha_sender and lookup else None
        return [alpha] if alpha is not None else []

    async def alpha_list(self, req: Request, account: str, sid: str) -> Response:
        page = paging.parse_page(
            req.query_params(), self.limits.default_page_size, self.limits.max_page_size
        )
        origin = request_origin(req)
        alphas = self._alphas(req, account, sid)
        start = page.page * page.page_size
        chunk = alphas[start:start + page.page_size]
        env = paging.envelope_v1(
            "alpha_senders", [render.alpha_sender_json(a, sid, origin) for a in chunk],
            f"{origin}/v1/Services/{sid}/AlphaSenders", page,
            len(alphas) > start + page.page_size,
        )
        return Response.json(env)

    async def alpha_fetch(self, req: Request, account: str, sid: str, alpha: str) -> Response:
        for a in self._alphas(req, account, sid):
            if a.sid == alpha:
                return Response.json(render.alpha_sender_json(a, sid, request_origin(req)))
        raise _not_found(req)


def _not_found(req: Request) -> TwilioError:
    return TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)
