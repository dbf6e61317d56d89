"""IncomingPhoneNumbers: list, fetch and update the numbers defined in the config.

Owns: the 2010-04-01 IncomingPhoneNumbers resource over ``ctx.numbers()`` (config merged
with saved overrides) and ``ctx.update_number()``.

Rules:
- Sids are stable: ``PN`` + hash(account, number) (``context.number_sid``).
- List filters ``PhoneNumber`` (substring, digits and ``+`` only, as Twilio) and
  ``FriendlyName`` (exact); numbers are in config order; offset paging.
- Update accepts the webhook fields of ``NUMBER_UPDATE_FIELDS``; URLs must be absolute
  http(s) (21502) or empty (clears), methods GET/POST (21209); other parameters are
  ignored, as Twilio ignores unknown ones. Numbers cannot be created or released here
  (they come from the config): POST to the list and DELETE answer 405.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.api.context import NUMBER_UPDATE_FIELDS, ApiContext, ApiLimits, NumberView
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response

INVALID_URL = 21502


class NumbersResource:
    def __init__(self, ctx: ApiContext, limits: ApiLimits) -> None:
        self.ctx = ctx
        self.limits = limits

    def _find(self, req: Request, account: str, sid: str) -> NumberView:
        for view in self.ctx.numbers(account):
            if view.pn_sid == sid:
                return view
        raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)

    async def list(self, req: Request, account: str) -> Response:
        query = req.query_params()
        page = paging.parse_page(query, self.limits.default_page_size, self.limits.max_page_size)
        views = self.ctx.numbers(account)
        filters: list[tuple[str, str]] = []
        phone = forms.value(query, "PhoneNumber")
        if phone:
            filters.append(("PhoneNumber", phone))
            needle = "".join(c for c in phone if c.isdigit() or c == "+")
            views = [v for v in views if needle in v.phone_number]
        name = forms.value(query, "FriendlyName")
        if name:
            filters.append(("FriendlyName", name))
            views = [v for v in views if (v.friendly_name or v.phone_number) == name]
        start = page.page * page.page_size
        chunk = views[start:start + page.page_size]
        has_more = len(views) > start + page.page_size
        path = f"{render.account_base(account)}/IncomingPhoneNumbers.json"
        env = paging.envelope_2010(
            "incoming_phone_numbers", [render.number_json(v) for v in chunk],
            path, filters, page, has_more,
        )
        return Response.json(env)

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(render.number_json(self._find(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        view = self._find(req, account, sid)
        form = req.form()
        fields: dict[str, str] = {}
        for param, attr in NUMBER_UPDATE_FIELDS.items():
            raw = forms.value(form, param)
            if raw is None:
                continue
            raw = raw.strip()
            if attr.endswith("_method"):
                fields[attr] = forms.method(form, param) or "POST"
            elif attr.endswith("_url") or attr == "status_callback":
                if raw and not forms.is_http_url(raw):
                    raise TwilioError(INVALID_URL, f"{param} is not a valid URL: {raw}")
                fields[attr] = raw
            else:
                fields[attr] = raw
        if fields:
            view = await self.ctx.update_number(account, view.phone_number, fields)
        return Response.json(render.number_json(view))
