"""The API application: routing, HTTP Basic auth, per-account limits, error bodies.

Owns: ``ApiApp(ctx).handle(request) -> response`` for the Twilio-compatible REST API
(2010-04-01 Messages and IncomingPhoneNumbers, Messaging v1 Services), ``/healthz``,
``/metrics`` and ``/admin/carriers``. Other resources (Calls) plug in with ``route()``.

Rules:
- Auth: HTTP Basic ``AccountSid:AuthToken``, token compared with
  ``hmac.compare_digest`` (also for unknown accounts, against a dummy, so timing tells
  nothing), or an API key ``SK…:secret`` (``gateway.api.keys``), which acts as its
  account. Missing/wrong -> 401, code 20003, ``WWW-Authenticate: Basic realm="Twilio
  API"``. ``/healthz`` and ``/metrics`` need no auth; ``/admin/*`` needs any account.
  The base64/UTF-8 decoding of an Authorization header that authenticated is
  memoised (bounded, exact header text as key); the token is still looked up and
  compared on every request, so a rotated token or removed account is refused at once.
  API keys are checked every time.
- The account in the path must be the authenticated one; otherwise 404 (20404), the
  same answer as for a resource that does not exist. A key used on another account's
  path -> 401/20003 (as a wrong secret). Routes with ``auth="main"``/``"main_any"``
  (Account, Keys) take primary credentials only; a key there -> 401/20003, as
  Twilio answers a Standard key.
- Unknown path -> 404 (20404); known path, other method -> 405 (20004) with ``Allow``.
  HEAD is served as GET (the server drops the body).
- More than ``ApiLimits.max_inflight_per_account`` concurrent requests of one account
  -> 429 (20429).
- Errors: ``TwilioError`` -> its JSON; ``StoreError`` -> 503 (20503); anything else ->
  500 (20500), logged with its traceback, never sent to the client.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.api import accounts, conferences, keys, queues, recordings
from gateway.api.calls import CallsResource
from gateway.api.context import ApiContext, ApiLimits
from gateway.api.messages import MessagesResource
from gateway.api.numbers import NumbersResource
from gateway.api.services import ServicesResource
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response
from gateway.store.base import StoreError

log = logging.getLogger("gateway.api")

#: a route handler: (request, authenticated account, path groups) -> response
RouteHandler = Callable[..., Awaitable[Response]]
Observer = Callable[[str, int, float, "int | None"], None]

_AC = r"(?P<account>AC[0-9a-fA-F]{32})"
_BASE = r"^/2010-04-01/Accounts/" + _AC
_DUMMY_TOKEN = "\x00" * 32
_DECODED_MAX = 256      # distinct Authorization headers remembered (cleared when full)
REALM_HEADER = ("WWW-Authenticate", 'Basic realm="Twilio API"')
_PATH_ACCOUNT = frozenset({"account", "main"})     # route auth modes with {AccountSid}
_MAIN_ONLY = frozenset({"main", "main_any"})       # primary credentials only
_KEY_REFUSED = "Authentication Error - invalid username"   # Twilio's, Standard key on /Accounts


def _route_name(pattern: str) -> str:
    """``^/2010-04-01/Accounts/(?P<account>…)/Messages/(?P<sid>…)\\.json$`` ->
    ``/2010-04-01/Accounts/{Account}/Messages/{Sid}.json``."""
    name = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)",
                  lambda m: "{" + m.group(1).capitalize() + "}", pattern)
    return name.strip("^$").replace("\\", "").replace("/?", "")


def error_response(exc: TwilioError, headers: list[tuple[str, str]] | None = None) -> Response:
    """Twilio's error JSON; a 401 also carries the Basic challenge."""
    if exc.status == 401:
        headers = [*(headers or []), REALM_HEADER]
    return Response.json(exc.as_dict(), exc.status, headers)


class ApiApp:
    def __init__(self, ctx: ApiContext, limits: ApiLimits | None = None, *,
                 observe: Observer | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """``observe(route, http_status, seconds, twilio_code_or_None)`` is called once
        per request (metrics); ``route`` is a template such as ``Messages/{Sid}.json``."""
        self.ctx = ctx
        self.limits = limits or ApiLimits()
        self.observe = observe
        self._clock = clock
        self._inflight: dict[str, int] = {}
        # Authorization header -> (AccountSid, password bytes) of primary credentials
        # that authenticated once: only the base64/UTF-8 decoding is cached, the token
        # is still looked up and compared (constant time) on every request
        self._decoded: dict[str, tuple[str, bytes]] = {}
        # (regex, {method: handler}, auth, route name)
        self._routes: list[
            tuple[re.Pattern[str], dict[str, RouteHandler], str | None, str]] = []
        msgs = MessagesResource(ctx, self.limits)
        nums = NumbersResource(ctx, self.limits)
        svcs = ServicesResource(ctx, self.limits)
        # the hot route (POST Messages.json) first: routes are tried in order
        self.route(_BASE + r"/Messages\.json$", {"GET": msgs.list, "POST": msgs.create})
        self.route(_BASE + r"/Messages/(?P<sid>[^/]+)\.json$",
                   {"GET": msgs.fetch, "POST": msgs.update, "DELETE": msgs.delete})
        self.route(r"^/healthz$", {"GET": self._healthz}, auth=None)
        self.route(r"^/metrics$", {"GET": self._metrics}, auth=None)
        self.route(r"^/admin/carriers$", {"GET": self._carriers}, auth="any")
        self.route(_BASE + r"/IncomingPhoneNumbers\.json$", {"GET": nums.list})
        self.route(_BASE + r"/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json$",
                   {"GET": nums.fetch, "POST": nums.update})
        calls = CallsResource(ctx, self.limits)
        self.route(_BASE + r"/Calls\.json$", {"GET": calls.list, "POST": calls.create})
        self.route(_BASE + r"/Calls/(?P<sid>[^/]+)\.json$",
                   {"GET": calls.fetch, "POST": calls.update})
        recordings.register(self, ctx)
        conferences.register(self, ctx)
        queues.register(self, ctx)
        self.keys = keys.register(self, ctx, _BASE)
        accounts.register(self, ctx, _BASE)
        self.route(r"^/v1/Services/?$", {"GET": svcs.list}, auth="any")
        self.route(r"^/v1/Services/(?P<sid>[^/]+)/?$", {"GET": svcs.fetch}, auth="any")
        self.route(r"^/v1/Services/(?P<sid>[^/]+)/AlphaSenders/?$", {"GET": svcs.alpha_list},
                   auth="any")
        self.route(r"^/v1/Services/(?P<sid>[^/]+)/AlphaSenders/(?P<alpha>[^/]+)/?$",
                   {"GET": svcs.alpha_fetch}, auth="any")

    def route(self, pattern: str, methods: dict[str, RouteHandler],
              auth: str | None = "account", name: str | None = None) -> None:
        """Register a route. Handlers are called ``handler(req, account, **groups)``
        (``account`` omitted when ``auth`` is None). With ``auth="account"`` the pattern
        must have an ``(?P<account>…)`` group that has to match the credentials;
        ``"main"`` is the same for primary credentials only (no API key), ``"main_any"``
        the primary-only ``"any"``.
        ``name`` labels metrics (default: the pattern with groups as ``{Name}``)."""
        if name is None:
            name = _route_name(pattern)
        self._routes.append((re.compile(pattern), methods, auth, name))

    # -- entry point ----------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        start = self._clock()
        label = ["unmatched"]
        code = None
        try:
            resp = await self._dispatch(req, label)
        except TwilioError as exc:
            code = exc.code
            resp = error_response(exc)
        except StoreError:
            log.exception("store failure on %s %s", req.method, req.path)
            code = 20503
            resp = error_response(TwilioError(20503, "Service unavailable: the store "
                                              "cannot commit right now", 503))
        except Exception:
            log.exception("unhandled error on %s %s", req.method, req.path)
            code = 20500
            resp = error_response(TwilioError(20500, "Internal Server Error", 500))
        if resp.status == 405:
            code = 20004
        if self.observe is not None:
            try:
                self.observe(label[0], resp.status, self._clock() - start, code)
            except Exception:
                log.exception("API observer failed")
        return resp

    async def _dispatch(self, req: Request, label: list[str]) -> Response:
        method = "GET" if req.method == "HEAD" else req.method
        for pattern, methods, auth, name in self._routes:
            match = pattern.match(req.path)
            if match is None:
                continue
            label[0] = name
            groups = match.groupdict()
            if auth is None:
                handler = methods.get(method)
                if handler is None:
                    return self._not_allowed(methods)
                return await handler(req)
            account, key = await self._authenticate(req)
            path_account = groups.pop("account", None)
            if key is not None and (auth in _MAIN_ONLY or (
                    path_account is not None and path_account != account)):
                raise _Unauthorized(_KEY_REFUSED if auth in _MAIN_ONLY else "Authenticate")
            if auth in _PATH_ACCOUNT and path_account != account:
                raise self._not_found(req)
            handler = methods.get(method)
            if handler is None:
                return self._not_allowed(methods)
            return await self._limited(account, handler, req, groups)
        raise self._not_found(req)

    async def _limited(self, account: str, handler: RouteHandler, req: Request,
                       groups: dict[str, Any]) -> Response:
        n = self._inflight.get(account, 0)
        if n >= self.limits.max_inflight_per_account:
            raise TwilioError(20429, "Too Many Requests: concurrent request limit "
                              f"({self.limits.max_inflight_per_account}) reached", 429)
        self._inflight[account] = n + 1
        try:
            return await handler(req, account, **groups)
        finally:
            left = self._inflight[account] - 1
            if left:
                self._inflight[account] = left
            else:
                del self._inflight[account]

    def inflight(self, account: str) -> int:
        return self._inflight.get(account, 0)

    # -- auth -----------------------------------------------------------------------
    async def _authenticate(self, req: Request) -> tuple[str, str | None]:
        """(account, API key sid or None) of the request's credentials, else 401."""
        header = req.headers.get("authorization", "")
        hit = self._decoded.get(header)
        if hit is not None:
            user, secret = hit
            token = self.ctx.auth_token(user)
            if hmac.compare_digest(
                    secret, (token if token is not None else _DUMMY_TOKEN).encode()
            ) and token is not None:
                return user, None
            raise _Unauthorized()
        scheme, _, encoded = header.partition(" ")
        user = password = None
        if scheme.lower() == "basic" and encoded:
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
                user, sep, password = decoded.partition(":")
                if not sep:
                    user = password = None
            except (binascii.Error, UnicodeDecodeError, ValueError):
                user = password = None
        if user and user.startswith("SK"):
            account = await self.keys.authenticate(user, password or "")
            if account is None or self.ctx.auth_token(account) is None:
                raise _Unauthorized()
            return account, user
        token = self.ctx.auth_token(user) if user else None
        secret = (password or "").encode()
        ok = hmac.compare_digest(secret, (token if token is not None else _DUMMY_TOKEN).encode())
        if not ok or token is None or not user:
            raise _Unauthorized()
        if len(self._decoded) >= _DECODED_MAX:
            self._decoded.clear()
        self._decoded[header] = (user, secret)
        return user, None

    @staticmethod
    def _not_found(req: Request) -> TwilioError:
        return TwilioError(20404, f"The requested resource {req.path} was not found", 404)

    @staticmethod
    def _not_allowed(methods: dict[str, RouteHandler]) -> Response:
        allow = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
        exc = TwilioError(20004, "Method not allowed", 405)
        return error_response(exc, [("Allow", ", ".join(allow))])

    # -- operational endpoints -------------------------------------------------------
    async def _healthz(self, req: Request) -> Response:
        health = await self.ctx.health()
        return Response.json(health.body, health.http_status)

    async def _metrics(self, req: Request) -> Response:
        body, ctype = self.ctx.metrics_exposition()
        return Response(200, [("Content-Type", ctype)], body)

    async def _carriers(self, req: Request, account: str) -> Response:
        return Response.json(self.ctx.carriers_admin())


class _Unauthorized(TwilioError):
    def __init__(self, message: str = "Authenticate") -> None:
        super().__init__(20003, message, 401)



__all__ = ["ApiApp", "error_response"]
