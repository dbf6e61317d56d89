"""The Account resource and its Balance: what ``client.api.account.fetch()``,
``client.api.accounts.list()`` and ``client.balance.fetch()`` read.

Owns: ``GET /2010-04-01/Accounts/{AC}.json``, ``GET /2010-04-01/Accounts.json`` and
``GET /2010-04-01/Accounts/{AC}/Balance.json``, registered by ``register()``.

Rules:
- Accounts come from the config: fetch/list only. Create (subaccounts) and update
  (FriendlyName, Status) answer 405. The list holds the caller's own account only
  (there are no subaccounts); ``FriendlyName``/``Status`` filter it as Twilio does.
- Account JSON as Twilio's (``auth_token, date_created, date_updated, friendly_name,
  owner_account_sid, sid, status, subresource_uris, type, uri``): ``status`` ``active``,
  ``type`` ``Full``, ``owner_account_sid`` = its own sid, dates null (the config has
  none), ``friendly_name`` from the config (else the sid). Twilio returns
  ``auth_token``; so do we — these routes are ``auth="main"``: only the account's own
  AccountSid + AuthToken reach them (an API key gets 401/20003, as a Standard key on
  Twilio), so the token goes only to a caller who just sent it.
- Balance is a fixed ``"0.00"`` ``USD``: the gateway does not rate traffic. API keys
  may read it (it is an account subresource, not the Account resource).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.api import forms, paging, render
from gateway.api.context import ApiContext, ApiLimits
from gateway.io.http_server import Request, Response

if TYPE_CHECKING:
    from gateway.api.app import ApiApp

#: Twilio's subresource_uris of an Account (the docs' example, in its order)
SUBRESOURCES = (
    ("available_phone_numbers", "AvailablePhoneNumbers"), ("calls", "Calls"),
    ("conferences", "Conferences"), ("incoming_phone_numbers", "IncomingPhoneNumbers"),
    ("notifications", "Notifications"), ("outgoing_caller_ids", "OutgoingCallerIds"),
    ("recordings", "Recordings"), ("transcriptions", "Transcriptions"),
    ("addresses", "Addresses"), ("signing_keys", "SigningKeys"),
    ("connect_apps", "ConnectApps"), ("sip", "SIP"),
    ("authorized_connect_apps", "AuthorizedConnectApps"), ("usage", "Usage"),
    ("keys", "Keys"), ("applications", "Applications"), ("short_codes", "SMS/ShortCodes"),
    ("queues", "Queues"), ("messages", "Messages"), ("balance", "Balance"),
)


def account_json(sid: str, auth_token: str | None, friendly_name: str) -> dict[str, Any]:
    base = render.account_base(sid)
    return {
        "auth_token": auth_token,
        "date_created": None,
        "date_updated": None,
        "friendly_name": friendly_name or sid,
        "owner_account_sid": sid,
        "sid": sid,
        "status": "active",
        "subresource_uris": {name: f"{base}/{path}.json" for name, path in SUBRESOURCES},
        "type": "Full",
        "uri": f"{base}.json",
    }


def balance_json(sid: str) -> dict[str, Any]:
    return {"account_sid": sid, "balance": "0.00", "currency": "USD"}


class AccountsResource:
    def __init__(self, ctx: ApiContext, limits: ApiLimits) -> None:
        self.ctx = ctx
        self.limits = limits

    def _json(self, account: str) -> dict[str, Any]:
        name = getattr(self.ctx, "account_friendly_name", None)
        return account_json(account, self.ctx.auth_token(account),
                            name(account) if name is not None else "")

    async def fetch(self, req: Request, account: str) -> Response:
        return Response.json(self._json(account))

    async def list(self, req: Request, account: str) -> Response:
        query = req.query_params()
        page = paging.parse_page(query, self.limits.default_page_size, self.limits.max_page_size)
        items = [self._json(account)]
        filters: list[tuple[str, str]] = []
        name = forms.value(query, "FriendlyName")
        if name:
            filters.append(("FriendlyName", name))
            items = [a for a in items if a["friendly_name"] == name]
        status = forms.value(query, "Status")
        if status:
            filters.append(("Status", status))
            items = [a for a in items if a["status"] == status]
        start = page.page * page.page_size
        env = paging.envelope_2010(
            "accounts", items[start:start + page.page_size], f"/{render.API_VERSION}/Accounts.json",
            filters, page, len(items) > start + page.page_size)
        return Response.json(env)

    async def balance(self, req: Request, account: str) -> Response:
        return Response.json(balance_json(account))


def register(app: ApiApp, ctx: ApiContext, base: str) -> None:
    res = AccountsResource(ctx, app.limits)
    app.route(r"^/2010-04-01/Accounts\.json$", {"GET": res.list}, auth="main_any")
    app.route(base + r"\.json$", {"GET": res.fetch}, auth="main")
    app.route(base + r"/Balance\.json$", {"GET": res.balance})
