"""Alphanumeric sender IDs end to end with the twilio client: From=ACME on the wire as
SMPP source_addr TON 5 / NPI 0 (checked with smpplib), Twilio's refusals (21212, 21606,
21612), a Messaging Service's alpha_sender (non-+1 → ACME, +1 → pool), one queue per
account for the same ID, the AlphaSenders v1 resource, an MO to a sender ID, and a
reload that adds a sender ID."""

from __future__ import annotations

import pytest
import smpplib.smpp
import trio
from twilio.base.exceptions import TwilioRestException

from gateway import codec
from tests.e2e.harness import (
    ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    config_text,
    gateway_env,
    wait_status,
    wait_until,
)

ALPHA_SERVICE = "MG00000000000000000000000000000a1f"
POOL = "+15005550008"
UK = "+447700900123"
DE = "+4915112345678"

ALPHAS = f"""
[[numbers]]
number = "{POOL}"
account = "{ACCOUNT}"
[[alpha_senders]]
sender_id = "ACME"
account = "{ACCOUNT}"
[[alpha_senders]]
sender_id = "Shop UK"
account = "{ACCOUNT}"
prefixes = ["+44"]
[[alpha_senders]]
sender_id = "ACME"
account = "{OTHER_ACCOUNT}"
[[messaging_services]]
sid = "{ALPHA_SERVICE}"
account = "{ACCOUNT}"
numbers = ["{POOL}"]
alpha_sender = "acme"
"""


async def create(client, **kw):
    return await trio.to_thread.run_sync(lambda: client.messages.create(body="hi", **kw))


async def refused(client, **kw) -> int:
    with pytest.raises(TwilioRestException) as exc:
        await create(client, **kw)
    assert exc.value.status == 400
    return exc.value.code


async def test_from_alpha_is_delivered_with_ton5_npi0(tmp_path):
    with trio.fail_after(30):
        async with gateway_env(tmp_path, extra=ALPHAS) as env:
            client = env.client()
            msg = await create(client, to=UK, from_="acme")   # any case; configured spelling
            assert msg.from_ == "ACME" and msg.status == "queued"
            await wait_status(env, msg.sid, "delivered")
            sim = env.sims["a"]
            rec = next(r for r in sim.submits if r.dest == UK.lstrip("+"))
            assert rec.source == "ACME"
            assert (rec.pdu.source_addr_ton, rec.pdu.source_addr_npi) == (5, 0)
            assert (rec.pdu.dest_addr_ton, rec.pdu.dest_addr_npi) == (1, 1)
            # the PDU as another SMPP library reads our bytes
            theirs = smpplib.smpp.parse_pdu(codec.encode(rec.pdu), sequence=0)
            assert theirs.source_addr == b"ACME"
            assert (theirs.source_addr_ton, theirs.source_addr_npi) == (5, 0)
            fetched = await trio.to_thread.run_sync(lambda: client.messages(msg.sid).fetch())
            assert fetched.from_ == "ACME" and fetched.status == "delivered"
            # numbers keep their TON/NPI
            num = await create(client, to=UK, from_="+15005550006")
            await wait_status(env, num.sid, "delivered")
            rec = next(r for r in sim.submits if r.source == "15005550006")
            assert (rec.pdu.source_addr_ton, rec.pdu.source_addr_npi) == (1, 1)


async def test_refusals_match_twilio(tmp_path):
    with trio.fail_after(30):
        async with gateway_env(tmp_path, extra=ALPHAS) as env:
            client = env.client()
            for bad in ("TOOLONGSENDERID", "AC!ME", "1234567", "+0123"):
                assert await refused(client, to=UK, from_=bad) == 21212, bad
            assert await refused(client, to=UK, from_="12345") == 21606   # short-code shape
            assert await refused(client, to=UK, from_="NOTOURS") == 21606
            assert await refused(client, to="+15558675310", from_="ACME") == 21612
            assert await refused(client, to="55501", from_="ACME") == 21612
            assert await refused(client, to=DE, from_="Shop UK") == 21612   # prefixes = +44
            ok = await create(client, to=UK, from_="Shop UK")
            assert ok.from_ == "Shop UK"
            with pytest.raises(TwilioRestException) as exc:
                await trio.to_thread.run_sync(lambda: client.messages.create(
                    to="+15558675310", from_="ACME", body="x"))
            assert "not currently reachable" in exc.value.msg


async def test_service_alpha_sender_outside_plus1_pool_inside(tmp_path):
    with trio.fail_after(30):
        async with gateway_env(tmp_path, extra=ALPHAS) as env:
            client = env.client()
            uk = await create(client, to=UK, messaging_service_sid=ALPHA_SERVICE)
            us = await create(client, to="+15558675310", messaging_service_sid=ALPHA_SERVICE)
            assert uk.status == us.status == "accepted"
            assert (await wait_status(env, uk.sid, "delivered")).from_ == "ACME"
            assert (await wait_status(env, us.sid, "delivered")).from_ == POOL
            assert env.gw.messaging.sticky.get((ALPHA_SERVICE, "+15558675310")) == POOL
            assert (ALPHA_SERVICE, UK) not in env.gw.messaging.sticky
            sim = env.sims["a"]
            rec = next(r for r in sim.submits if r.dest == UK.lstrip("+"))
            assert (rec.source, rec.pdu.source_addr_ton) == ("ACME", 5)
            # the service's AlphaSenders (Messaging v1) through the twilio client
            svc = client.messaging.v1.services(ALPHA_SERVICE)
            listed = await trio.to_thread.run_sync(lambda: svc.alpha_senders.list())
            assert [(a.alpha_sender, a.capabilities) for a in listed] == [("ACME", ["SMS"])]
            assert listed[0].sid.startswith("AI") and listed[0].service_sid == ALPHA_SERVICE
            one = await trio.to_thread.run_sync(lambda: svc.alpha_senders(listed[0].sid).fetch())
            assert one.alpha_sender == "ACME" and one.account_sid == ACCOUNT


async def test_same_id_in_two_accounts_has_two_queues_at_the_class_rate(tmp_path):
    rates = "long_code = 1\ntoll_free = 3\nshort_code = 100\nalphanumeric = 4\nqueue_hours = 1"
    with trio.fail_after(30):
        async with gateway_env(tmp_path, extra=ALPHAS, rates=rates) as env:
            cap = env.gw.dispatcher.capacity
            assert cap[f"{ACCOUNT}|ACME"] == cap[f"{OTHER_ACCOUNT}|ACME"] == (4.0, 4 * 3600)
            assert env.gw.dispatcher.sched.sender_class(f"{ACCOUNT}|ACME") == "alphanumeric"
            a = await create(env.client(), to=UK, from_="ACME")
            b = await create(env.client(OTHER_ACCOUNT, OTHER_TOKEN), to=UK, from_="ACME")
            for m in (a, b):
                assert (await wait_status(env, m.sid, "delivered")).from_ == "ACME"


async def test_mo_to_a_sender_id_is_acked_without_webhook(tmp_path, caplog):
    with trio.fail_after(30):
        async with gateway_env(tmp_path, extra=ALPHAS) as env:
            sim = env.sims["a"]
            for _ in range(2):
                sim.inject_mo(UK, "ACME", "hello?")
            await wait_until(lambda: sum(sim.stats["deliver_resps"].values()) >= 2)
            assert sim.stats["deliver_resps"] == {0: 2}
            assert env.sink.hits == []
            logged = [r for r in caplog.records if "alphanumeric sender ACME" in r.getMessage()]
            assert len(logged) == 1


async def test_reload_adds_an_alpha_sender(tmp_path):
    with trio.fail_after(30):
        async with gateway_env(tmp_path) as env:
            client = env.client()
            assert await refused(client, to=UK, from_="ACME") == 21606
            carriers = [(name, sim.port) for name, sim in env.sims.items()]
            (tmp_path / "gw.toml").write_text(
                config_text(tmp_path, carriers, env.sink.port, extra=ALPHAS))
            result = await env.gw.reload()
            assert result.ok and any("alpha senders +3" in c for c in result.changes)
            msg = await create(client, to=UK, from_="ACME")
            await wait_status(env, msg.sid, "delivered")
            svc = env.gw.service(ALPHA_SERVICE)
            assert svc is not None and svc.alpha_sender == "acme"
