"""An MO stored but not acknowledged before a crash is not stored twice: the store holds
one such MO (as a crash between its commit and its deliver_sm_resp leaves it), the
gateway starts on it, the simulator resends the same deliver_sm: answered ESME_ROK, not
stored nor webhooked again, counted; a second identical text afterwards is a new
message. An unacked MO older than the window is forgotten (its token cleared)."""

import time

import trio

from gateway.core import message as M
from gateway.core.message import Message
from gateway.runtime.mo_dedupe import WINDOW_S, mo_key
from gateway.store.base import MessageFilter
from gateway.store.sqlite import SqliteStore
from gateway.testing.smsc_pdus import mo_pdus
from tests.e2e.harness import ACCOUNT, LONG, gateway_env, wait_until

PHONE = "15558675310"


async def seed_unacked(path, body: str, age: float, n: int) -> str:
    pdu = mo_pdus(PHONE, LONG.lstrip("+"), body, 1, 0)[0]
    wall = time.time() - age
    msg = Message(sid=f"SM{n:032x}", account_sid=ACCOUNT, from_="+" + PHONE, to=LONG,
                  body=body, status=M.RECEIVED, direction=M.INBOUND, date_created=wall,
                  date_updated=wall, date_sent=wall)
    msg.due.append("mo:" + mo_key("a", "+" + PHONE, LONG, pdu))
    store = SqliteStore(path)
    await store.open()
    await store.create_message(msg)
    await store.close()
    return msg.sid


async def test_resent_unacked_mo_is_acked_not_stored_again(tmp_path):
    with trio.fail_after(60):
        recent = await seed_unacked(tmp_path / "gw.db", "YES", 5.0, 1)
        old = await seed_unacked(tmp_path / "gw.db", "old", 2 * WINDOW_S, 2)
        async with gateway_env(tmp_path) as env:
            gw, sim = env.gw, env.sims["a"]
            assert len(gw.inbound.dedupe) == 1            # the old one is out of the window
            dups = gw.metrics.mo_duplicates.labels("a")
            sim.inject_mo(PHONE, LONG.lstrip("+"), "YES")  # the carrier's resend
            await wait_until(lambda: dups._value.get() == 1, timeout=10)
            await wait_until(lambda: sim.stats["deliver_resps"][0] >= 1, timeout=10)
            sim.inject_mo(PHONE, LONG.lstrip("+"), "YES")  # the user says YES again
            hit = (await env.sink.wait_for(lambda: env.sink.at("/sms")))[0]
            assert hit.form["Body"] == "YES" and hit.form["MessageSid"] != recent
            await wait_until(lambda: sim.stats["deliver_resps"][0] >= 2, timeout=10)
            assert dups._value.get() == 1 and len(env.sink.at("/sms")) == 1
            stored = await gw.store.list_messages(MessageFilter(ACCOUNT, to=LONG), 100)
            assert sorted(m.body for m in stored) == ["YES", "YES", "old"]
            # every MO token is cleared lazily: the resent one, the expired one, the new one
            while True:
                due = {m.sid: t for m, t in await gw.store.messages_due()}
                if not due:
                    break
                assert set(due) <= {recent, old, hit.form["MessageSid"]}
                await trio.sleep(0.05)
