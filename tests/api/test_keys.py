"""API keys (SK…:secret) with the twilio library as the client: the Keys resource, auth
with a key, refusals (wrong secret, deleted key, other account, key management with a
key), durability across a restart, and no secret in the store."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import trio
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from gateway.api.app import ApiApp
from gateway.api.context import ApiLimits
from gateway.api.keys import MISS_TTL, NS, ApiKey, KeyRegistry, hash_secret
from gateway.io.http_server import HttpServer
from gateway.store.sqlite import SqliteStore

from .conftest import AC, AC2, LONG, TOKEN, TOKEN2, FakeRuntime, call, make_client, raw

TO = "+15005550001"


def key_client(base: str, sid: str, secret: str, account: str = AC) -> Client:
    client = Client(sid, secret, account)
    client.api.base_url = base
    return client


async def _exc(fn, *args, **kwargs) -> TwilioRestException:
    try:
        await call(fn, *args, **kwargs)
    except TwilioRestException as exc:
        return exc
    raise AssertionError("no error")


async def _new_key(client: Client, name: str = "ci"):
    return await call(client.new_keys.create, friendly_name=name)


async def test_key_create_use_manage_delete(api, client):
    new = await _new_key(client, "deploy bot")
    assert new.sid.startswith("SK") and len(new.sid) == 34
    assert len(new.secret) == 32 and new.secret.isalnum()
    assert new.friendly_name == "deploy bot" and new.date_created is not None

    kc = key_client(api.base, new.sid, new.secret)
    msg = await call(kc.messages.create, to=TO, from_=LONG, body="via key")
    assert msg.account_sid == AC and msg.status == "queued"
    assert (await call(kc.messages(msg.sid).fetch)).body == "via key"
    assert [m.sid for m in await call(kc.messages.list)] == [msg.sid]
    assert [n.phone_number for n in await call(kc.incoming_phone_numbers.list)][0] == LONG

    listed = await call(client.keys.list)
    assert [k.sid for k in listed] == [new.sid]
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Keys/{new.sid}.json")
    assert status == 200 and "secret" not in body
    assert set(body) == {"sid", "friendly_name", "date_created", "date_updated"}
    status, _, page = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Keys.json")
    assert status == 200 and all("secret" not in k for k in page["keys"])

    renamed = await call(client.keys(new.sid).update, friendly_name="renamed")
    assert renamed.friendly_name == "renamed"
    assert (await call(client.keys(new.sid).fetch)).friendly_name == "renamed"

    assert await call(client.keys(new.sid).delete) is True
    exc = await _exc(kc.messages.create, to=TO, from_=LONG, body="after delete")
    assert (exc.status, exc.code) == (401, 20003)
    exc = await _exc(client.keys(new.sid).fetch)
    assert (exc.status, exc.code) == (404, 20404)
    assert await api.store.kv_get(NS, new.sid) is None


async def test_wrong_secret_and_other_account_are_401(api, client):
    new = await _new_key(client)
    for kc in (key_client(api.base, new.sid, new.secret[:-1] + "x"),   # wrong secret
               key_client(api.base, new.sid, ""),                      # no secret
               key_client(api.base, "SK" + "0" * 32, new.secret),       # unknown key
               key_client(api.base, new.sid, new.secret, AC2)):         # key of AC on AC2
        exc = await _exc(kc.messages.create, to=TO, from_=LONG, body="x")
        assert (exc.status, exc.code) == (401, 20003)
    # the raw answer carries the Basic challenge, as for a wrong token
    status, hdrs, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC2}/Messages.json",
                                   auth=(new.sid, new.secret))
    assert (status, body["code"]) == (401, 20003)
    assert hdrs["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    # AC2's primary credentials cannot see AC's key either
    exc = await _exc(make_client(api.base, AC2, TOKEN2).keys(new.sid).fetch)
    assert (exc.status, exc.code) == (404, 20404)


async def test_a_key_cannot_manage_keys_or_the_account(api, client):
    new = await _new_key(client)
    kc = key_client(api.base, new.sid, new.secret)
    for fn, kwargs in ((kc.new_keys.create, {"friendly_name": "escalate"}),
                       (kc.keys(new.sid).fetch, {}),
                       (kc.keys(new.sid).update, {"friendly_name": "x"}),
                       (kc.keys(new.sid).delete, {}),
                       (kc.api.account.fetch, {})):
        exc = await _exc(fn, **kwargs)
        assert (exc.status, exc.code) == (401, 20003), fn
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Keys.json",
                                auth=(new.sid, new.secret))
    assert (status, body["code"]) == (401, 20003)
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts.json",
                                auth=(new.sid, new.secret))
    assert (status, body["code"]) == (401, 20003)
    # nothing changed: the key still exists and still works
    assert [k.sid for k in await call(client.keys.list)] == [new.sid]
    assert (await call(kc.balance.fetch)).currency == "USD"


async def test_secret_is_not_stored_in_clear(api, client):
    new = await _new_key(client)
    items = await api.store.kv_items(NS)
    assert [sid for sid, _ in items] == [new.sid]
    stored = items[0][1]
    assert new.secret not in json.dumps(stored)
    assert new.secret.encode().hex() not in json.dumps(stored)
    assert stored["account_sid"] == AC and stored["alg"] == "hmac-sha256"
    assert len(bytes.fromhex(stored["salt"])) == 16
    assert bytes.fromhex(stored["hash"]) == hash_secret(bytes.fromhex(stored["salt"]), new.secret)
    other = await _new_key(client)           # fresh salt per key
    assert (await api.store.kv_get(NS, other.sid))["salt"] != stored["salt"]


async def test_friendly_name_too_long(api, client):
    exc = await _exc(client.new_keys.create, friendly_name="x" * 65)
    assert exc.status == 400
    assert await api.store.kv_items(NS) == []


async def _serve(nursery, store) -> SimpleNamespace:
    app = ApiApp(FakeRuntime(store), ApiLimits())
    port = await nursery.start(HttpServer(app.handle, "127.0.0.1", 0).serve)
    return SimpleNamespace(app=app, base=f"http://127.0.0.1:{port}")


async def test_keys_survive_a_restart(tmp_path):
    with trio.fail_after(30):
        store = SqliteStore(tmp_path / "gw.db")
        await store.open()
        async with trio.open_nursery() as nursery:
            first = await _serve(nursery, store)
            kept = await _new_key(make_client(first.base))
            gone = await _new_key(make_client(first.base))
            await call(make_client(first.base).keys(gone.sid).delete)
            nursery.cancel_scope.cancel()
        await store.close()

        store = SqliteStore(tmp_path / "gw.db")
        await store.open()
        try:
            async with trio.open_nursery() as nursery:
                second = await _serve(nursery, store)
                await second.app.keys.load()
                assert [k.sid for k in second.app.keys.for_account(AC)] == [kept.sid]
                kc = key_client(second.base, kept.sid, kept.secret)
                msg = await call(kc.messages.create, to=TO, from_=LONG, body="after restart")
                assert msg.account_sid == AC
                gone_client = key_client(second.base, gone.sid, gone.secret)
                exc = await _exc(gone_client.messages.create, to=TO, from_=LONG, body="x")
                assert (exc.status, exc.code) == (401, 20003)
                nursery.cancel_scope.cancel()
        finally:
            await store.close()


async def test_lazy_load_without_explicit_load(api, client):
    new = await _new_key(client)
    fresh = ApiApp(api.runtime, ApiLimits())     # a second app on the same store, not loaded
    assert not fresh.keys.loaded
    assert await fresh.keys.authenticate(new.sid, new.secret) == AC
    assert fresh.keys.loaded


async def test_shared_store_sees_other_gateways_keys(store):
    clock = [1000.0]
    a = KeyRegistry(store, lambda: 1_700_000_000.0, shared=True, monotonic=lambda: clock[0])
    b = KeyRegistry(store, lambda: 1_700_000_000.0, shared=True, monotonic=lambda: clock[0])
    await a.load()
    await b.load()
    key, secret = await a.create(AC, "on a")
    assert await b.authenticate(key.sid, secret) == AC          # looked up in the store
    assert await b.authenticate(key.sid, "wrong") is None
    await a.delete(key)
    assert await a.authenticate(key.sid, secret) is None        # at once where deleted
    await b.load()                                               # b's periodic refresh
    assert await b.authenticate(key.sid, secret) is None
    # a miss is remembered for MISS_TTL (no store read per bogus request), then retried
    sid, salt = "SK" + "ab" * 16, b"\x01" * 16
    assert await b.authenticate(sid, "s3cret") is None
    record = ApiKey(sid, AC, None, salt, hash_secret(salt, "s3cret"), 1.0, 1.0)
    await store.kv_put(NS, sid, record.stored())
    assert await b.authenticate(sid, "s3cret") is None
    clock[0] += MISS_TTL + 0.1
    assert await b.authenticate(sid, "s3cret") == AC
    # one gateway (SQLite): memory is the truth, no store lookups for unknown sids
    single = KeyRegistry(store, lambda: 1.0, shared=False)
    await single.load()
    other_sid = "SK" + "cd" * 16
    await store.kv_put(NS, other_sid, replace(record, sid=other_sid).stored())
    assert await single.authenticate(other_sid, "s3cret") is None


async def test_refresh_loop_reloads_on_shared_store_only(store):
    single = KeyRegistry(store, lambda: 1.0, shared=False)
    with trio.fail_after(5):
        await single.refresh_loop(trio.sleep)     # returns at once: nothing to refresh
    shared = KeyRegistry(store, lambda: 1.0, shared=True)
    other = KeyRegistry(store, lambda: 1.0, shared=True)
    key, secret = await other.create(AC, None)
    assert await shared.authenticate(key.sid, secret) == AC
    await other.delete(key)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shared.refresh_loop, trio.sleep, 0.01)
            while shared.get(AC, key.sid) is not None:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def test_primary_token_still_required_for_primary_auth(api):
    # an SK-looking password on the account's own user is just a wrong token
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                                auth=(AC, "SK" + "0" * 32))
    assert (status, body["code"]) == (401, 20003)
    status, _, _ = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                             auth=(AC, TOKEN))
    assert status == 200
