"""API keys: the 2010-04-01 Keys resource and the registry that checks ``SK…:secret``.

Owns: ``KeyRegistry`` (sid -> account, salted secret hash; durable in the store's kv
namespace ``apikey``) and ``KeysResource`` (``/2010-04-01/Accounts/{AC}/Keys.json``
create/list, ``…/Keys/{SK}.json`` fetch/update/delete), registered by ``register()``.

Rules:
- Shapes as Twilio's Key resource v2010: create (POST ``FriendlyName``, at most 64
  chars) answers 201 with ``sid, friendly_name, date_created, date_updated, secret`` —
  the only time the secret is ever shown ("NewKey"); fetch/list/update answer the same
  without ``secret``; delete answers 204; list key ``keys``, offset paging.
- Secrets are 32 characters from ``secrets`` (A-Za-z0-9, ~190 bits). Only a random
  16-byte salt and ``HMAC-SHA256(salt, secret)`` are stored, never the secret. Such a
  secret needs no key stretching, so a check is one HMAC (~4 µs) against the in-memory
  map, compared with ``hmac.compare_digest`` (an unknown sid is compared against a
  dummy so timing says nothing): O(1) per request, nothing cached in clear.
- Only the account's primary credentials manage keys (Twilio: a Standard key has no
  access to ``/Accounts`` and ``…/Keys``); the routes are registered ``auth="main"``
  and the app answers a key with 401/20003. A request authenticated with a key acts as
  the key's account; a deleted key is refused from the moment the 204 is sent.
- Memory is the truth for one gateway: ``load()`` at start (or lazily on first use).
  On a shared store (Redis, several gateways) an unknown ``SK`` sid is looked up in the
  store (misses remembered ``MISS_TTL`` s) and ``refresh_loop`` reloads every
  ``REFRESH_S`` s, so a key deleted on another gateway is refused within that time.

Error handling: store failures raise ``StoreError`` (the app answers 503); a failed
refresh is logged and retried at the next interval, the previous map stays in use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.api.context import ApiContext, ApiLimits
from gateway.core.errors import TwilioError
from gateway.core.ids import is_sid, new_sid
from gateway.io.http_server import Request, Response
from gateway.store.base import Store, StoreError

if TYPE_CHECKING:
    from gateway.api.app import ApiApp

log = logging.getLogger("gateway.api.keys")

NS = "apikey"
SECRET_LEN = 32
MAX_FRIENDLY_NAME = 64
MISS_TTL = 2.0
MAX_MISSES = 10_000
REFRESH_S = 5.0
_ALPHABET = string.ascii_letters + string.digits
_DUMMY_SALT = b"\x00" * 16
_DUMMY_HASH = hmac.new(_DUMMY_SALT, b"", hashlib.sha256).digest()


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LEN))


def hash_secret(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    sid: str
    account_sid: str
    friendly_name: str | None
    salt: bytes
    digest: bytes
    date_created: float
    date_updated: float

    def stored(self) -> dict[str, Any]:
        """The kv value: no secret, only its salted HMAC."""
        return {"account_sid": self.account_sid, "friendly_name": self.friendly_name,
                "alg": "hmac-sha256", "salt": self.salt.hex(), "hash": self.digest.hex(),
                "date_created": self.date_created, "date_updated": self.date_updated}

    @classmethod
    def from_stored(cls, sid: str, value: dict[str, Any]) -> ApiKey | None:
        try:
            if value.get("alg") != "hmac-sha256":
                return None
            return cls(sid, str(value["account_sid"]), value.get("friendly_name"),
                       bytes.fromhex(value["salt"]), bytes.fromhex(value["hash"]),
                       float(value["date_created"]), float(value["date_updated"]))
        except (KeyError, TypeError, ValueError):
            return None


class KeyRegistry:
    """Every API key of every account, in memory, backed by the store's kv table."""

    def __init__(self, store: Store, now: Callable[[], float], *,
                 shared: bool | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.now = now
        self.shared = getattr(store, "backend", "") == "redis" if shared is None else shared
        self._mono = monotonic
        self._keys: dict[str, ApiKey] = {}
        self._misses: dict[str, float] = {}        # sid -> monotonic expiry (shared only)
        self._deleted: set[str] = set()             # deleted while a load was running
        self._changed: set[str] = set()             # created/renamed while a load ran
        self._loading = 0
        self.loaded = False

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        """(Re)build the map from the store. Keys created, renamed or deleted here while
        the scan runs keep their new state; on a refresh of a shared store, keys gone
        from the store (deleted by another gateway) leave the map."""
        self._loading += 1
        try:
            items = await self.store.kv_items(NS)
        finally:
            self._loading -= 1
        fresh: dict[str, ApiKey] = {}
        for sid, value in items:
            key = ApiKey.from_stored(sid, value)
            if key is None:
                log.warning("ignoring unreadable api key record sid=%s", sid)
            elif sid not in self._deleted:
                fresh[sid] = key
        # one gateway: memory is never behind the store; shared: only what changed here
        keep = self._changed if self.shared and self.loaded else set(self._keys)
        for sid in keep:
            if sid in self._keys:
                fresh[sid] = self._keys[sid]
        if not self._loading:
            self._deleted.clear()
            self._changed.clear()
        self._keys = fresh
        self.loaded = True

    async def refresh_loop(self, sleep: Callable[[float], Awaitable[None]],
                           interval: float = REFRESH_S) -> None:
        """Shared store only: reload every ``interval`` s (deletes made elsewhere)."""
        if not self.shared:
            return
        while True:
            await sleep(interval)
            try:
                await self.load()
            except StoreError:
                log.warning("api key refresh failed; keeping the current map")

    # -- credentials --------------------------------------------------------------------
    async def authenticate(self, sid: str, secret: str) -> str | None:
        """The key's account when ``secret`` is right, else None (constant time)."""
        if not self.loaded:
            await self.load()
        key = self._keys.get(sid)
        if key is None and self.shared and is_sid(sid, "SK"):
            key = await self._lookup(sid)
        salt, digest = (key.salt, key.digest) if key is not None else (_DUMMY_SALT, _DUMMY_HASH)
        ok = hmac.compare_digest(hash_secret(salt, secret), digest)
        return key.account_sid if ok and key is not None else None

    async def _lookup(self, sid: str) -> ApiKey | None:
        now = self._mono()
        if self._misses.get(sid, 0.0) > now:
            return None
        value = await self.store.kv_get(NS, sid)
        key = ApiKey.from_stored(sid, value) if value is not None else None
        if key is None:
            if len(self._misses) >= MAX_MISSES:
                self._misses.clear()
            self._misses[sid] = now + MISS_TTL
            return None
        self._keys[sid] = key
        return key

    # -- management ---------------------------------------------------------------------
    def get(self, account_sid: str, sid: str) -> ApiKey | None:
        key = self._keys.get(sid)
        return key if key is not None and key.account_sid == account_sid else None

    def for_account(self, account_sid: str) -> list[ApiKey]:
        keys = [k for k in self._keys.values() if k.account_sid == account_sid]
        keys.sort(key=lambda k: (k.date_created, k.sid))
        return keys

    async def create(self, account_sid: str, friendly_name: str | None) -> tuple[ApiKey, str]:
        secret = new_secret()
        salt = secrets.token_bytes(16)
        now = self.now()
        key = ApiKey(new_sid("SK"), account_sid, friendly_name, salt,
                     hash_secret(salt, secret), now, now)
        await self.store.kv_put(NS, key.sid, key.stored())
        self._keys[key.sid] = key
        self._misses.pop(key.sid, None)
        if self._loading:
            self._changed.add(key.sid)
        return key, secret

    async def rename(self, key: ApiKey, friendly_name: str) -> ApiKey:
        new = replace(key, friendly_name=friendly_name, date_updated=self.now())
        await self.store.kv_put(NS, key.sid, new.stored())
        if key.sid in self._keys:
            self._keys[key.sid] = new
            if self._loading:
                self._changed.add(key.sid)
        else:                               # deleted while we wrote: stay deleted
            await self.store.kv_delete(NS, key.sid)
        return new

    async def delete(self, key: ApiKey) -> None:
        await self.store.kv_delete(NS, key.sid)
        self._keys.pop(key.sid, None)
        if self._loading:
            self._deleted.add(key.sid)


# -- the REST resource --------------------------------------------------------------------
def key_json(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": render.rfc2822(key.date_created),
        "date_updated": render.rfc2822(key.date_updated),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _friendly_name(form: forms.Form) -> str | None:
    name = forms.value(form, "FriendlyName")
    if name is not None and len(name) > MAX_FRIENDLY_NAME:
        raise TwilioError(forms.INVALID_PARAMETER,
                          f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return name


class KeysResource:
    def __init__(self, ctx: ApiContext, limits: ApiLimits, registry: KeyRegistry) -> None:
        self.ctx = ctx
        self.limits = limits
        self.keys = registry

    async def _find(self, req: Request, account: str, sid: str) -> ApiKey:
        if not self.keys.loaded:
            await self.keys.load()
        key = self.keys.get(account, sid)
        if key is None:
            raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found",
                              404)
        return key

    async def create(self, req: Request, account: str) -> Response:
        key, secret = await self.keys.create(account, _friendly_name(req.form()))
        return Response.json(key_json(key, secret), 201)

    async def list(self, req: Request, account: str) -> Response:
        page = paging.parse_page(req.query_params(), self.limits.default_page_size,
                                 self.limits.max_page_size)
        if not self.keys.loaded:
            await self.keys.load()
        keys = self.keys.for_account(account)
        start = page.page * page.page_size
        chunk = keys[start:start + page.page_size]
        env = paging.envelope_2010(
            "keys", [key_json(k) for k in chunk], f"{render.account_base(account)}/Keys.json",
            [], page, len(keys) > start + page.page_size)
        return Response.json(env)

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(key_json(await self._find(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        key = await self._find(req, account, sid)
        name = _friendly_name(req.form())
        if name is not None:
            key = await self.keys.rename(key, name)
        return Response.json(key_json(key))

    async def delete(self, req: Request, account: str, sid: str) -> Response:
        await self.keys.delete(await self._find(req, account, sid))
        return Response(204, [], b"")


def register(app: ApiApp, ctx: ApiContext, base: str) -> KeyRegistry:
    """Add the Keys routes (primary credentials only) to ``app``; returns the registry
    the app authenticates ``SK…`` users with."""
    registry = KeyRegistry(ctx.store, ctx.now)
    res = KeysResource(ctx, app.limits, registry)
    app.route(base + r"/Keys\.json$", {"GET": res.list, "POST": res.create}, auth="main")
    app.route(base + r"/Keys/(?P<sid>[^/]+)\.json$",
              {"GET": res.fetch, "POST": res.update, "DELETE": res.delete}, auth="main")
    return registry
