"""API test harness: the real HttpServer serving ApiApp, a real SqliteStore, and a small
ApiContext stand-in for the runtime (opt-outs, queue capacity, number overrides)."""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pytest
import trio
from twilio.rest import Client

from gateway.api.app import ApiApp
from gateway.api.context import ApiLimits, Health, NumberView, ServiceView
from gateway.core import message as m
from gateway.core.errors import TwilioError
from gateway.io.http_server import HttpServer
from gateway.store.sqlite import SqliteStore

AC = "AC0123456789abcdef0123456789abcdef"
TOKEN = "secret"
AC2 = "ACfedcba9876543210fedcba9876543210"
TOKEN2 = "other-secret"
MG = "MG0123456789abcdef0123456789abcdef"
MG2 = "MGfedcba9876543210fedcba9876543210"
LONG = "+15005550006"
TOLL = "+18005550100"
SHORT = "55501"
OTHER_ACCOUNT_NUMBER = "+15005550999"
NOW = 1_700_000_000.0


@dataclass
class FakeRuntime:
    """Implements gateway.api.context.ApiContext the way the runtime will (minus queues)."""

    store: SqliteStore
    clock: float = NOW
    capacity: int = 100          # messages per sender before 21611
    opted_out: set = None
    store_ok: bool = True

    def __post_init__(self) -> None:
        self.opted_out = set() if self.opted_out is None else self.opted_out
        self._numbers = {
            AC: [
                NumberView(AC, LONG, "long_code", sms_url="http://127.0.0.1:9/sms",
                           date_created=NOW, date_updated=NOW),
                NumberView(AC, TOLL, "toll_free", date_created=NOW, date_updated=NOW),
                NumberView(AC, SHORT, "short_code", date_created=NOW, date_updated=NOW),
            ],
            AC2: [NumberView(AC2, OTHER_ACCOUNT_NUMBER, date_created=NOW, date_updated=NOW)],
        }
        self._services = {
            AC: [ServiceView(MG, AC, "notifications", (LONG, TOLL), date_created=NOW,
                             date_updated=NOW),
                 ServiceView("MG" + "1" * 32, AC, "empty", ())],
            AC2: [ServiceView(MG2, AC2, "theirs", (OTHER_ACCOUNT_NUMBER,))],
        }
        self.per_sender: dict[str, int] = {}
        self.submitted: list[tuple[m.Message, str | None]] = []

    def now(self) -> float:
        return self.clock

    def auth_token(self, account_sid: str) -> str | None:
        return {AC: TOKEN, AC2: TOKEN2}.get(account_sid)

    def numbers(self, account_sid: str) -> list[NumberView]:
        return list(self._numbers.get(account_sid, []))

    def services(self, account_sid: str) -> list[ServiceView]:
        return list(self._services.get(account_sid, []))

    async def submit_message(self, msg, idempotency_key):
        self.submitted.append((msg, idempotency_key))
        if (msg.from_, msg.to) in self.opted_out or ("*", msg.to) in self.opted_out:
            raise TwilioError(21610)
        sender = msg.from_ or msg.messaging_service_sid
        if self.per_sender.get(sender, 0) >= self.capacity:
            raise TwilioError(21611)
        saved, created = await self.store.create_message(msg, idempotency_key)
        if created:
            self.per_sender[sender] = self.per_sender.get(sender, 0) + 1
        return saved, created

    async def cancel_message(self, msg):
        assert msg.advance(m.CANCELED, self.clock)
        await self.store.save_message(msg)
        return msg

    async def redact_message(self, msg):
        msg.body = ""
        msg.date_updated = self.clock
        await self.store.save_message(msg)
        return msg

    async def update_number(self, account_sid, phone_number, fields):
        views = self._numbers[account_sid]
        for i, v in enumerate(views):
            if v.phone_number == phone_number:
                views[i] = replace(v, date_updated=self.clock, **fields)
                await self.store.kv_put("number", f"{account_sid}:{phone_number}", fields)
                return views[i]
        raise AssertionError("unknown number")

    async def health(self) -> Health:
        ok = self.store_ok and await self.store.ping()
        body = {"status": "ok" if ok else "failing", "store": "ok" if ok else "failing",
                "carriers": {"carrier-a": {"smpp": "bound", "health": 0.98}}}
        return Health(body, 200 if ok else 503)

    def carriers_admin(self):
        return [{"name": "carrier-a", "smpp": "bound", "score": 0.98}]

    def metrics_exposition(self):
        return b"# TYPE gateway_up gauge\ngateway_up 1\n", "text/plain; version=0.0.4"


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "gw.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def api(nursery, store):
    runtime = FakeRuntime(store)
    app = ApiApp(runtime, ApiLimits(max_inflight_per_account=100))
    server = HttpServer(app.handle, "127.0.0.1", 0)
    port = await nursery.start(server.serve)
    base = f"http://127.0.0.1:{port}"
    return SimpleNamespace(app=app, runtime=runtime, store=store, base=base, port=port)


def make_client(base: str, account: str = AC, token: str = TOKEN) -> Client:
    client = Client(account, token)
    client.api.base_url = base
    client.messaging.base_url = base
    return client


@pytest.fixture
def client(api) -> Client:
    return make_client(api.base)


async def call(fn, *args, **kwargs):
    """Run a blocking twilio-library call in a worker thread, bounded in time."""
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _raw(method, url, form=None, headers=None, auth=(AC, TOKEN)):
    data = None
    hdrs = dict(headers or {})
    if form is not None:
        from urllib.parse import urlencode

        data = urlencode(form, doseq=True).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    if auth is not None:
        cred = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        hdrs["Authorization"] = f"Basic {cred}"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
            return resp.status, dict(resp.headers), body
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def raw(method, url, form=None, headers=None, auth=(AC, TOKEN)):
    """Raw HTTP request (for headers the twilio library cannot send) -> (status, headers,
    json-or-bytes)."""
    status, hdrs, body = await call(_raw, method, url, form, headers, auth)
    try:
        return status, hdrs, json.loads(body) if body else None
    except ValueError:
        return status, hdrs, body
