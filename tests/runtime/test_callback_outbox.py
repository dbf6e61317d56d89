"""CallbackOutbox against a real SqliteStore: a status callback is due in the store from
the save of its status on (nothing written when it is enqueued), cleared lazily once
done (folded into the message's next save, else one batched flush), stable tokens, and
the kv records of the previous outbox version are re-sent once, then deleted."""

import trio

from gateway.core import message as M
from gateway.core.message import Message
from gateway.runtime.callback_outbox import LEGACY_NS, CallbackOutbox, callback_token
from gateway.runtime.webhooks import Hook
from gateway.store.sqlite import SqliteStore

ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def message(i: int) -> Message:
    return Message(sid=f"SM{i:032x}", account_sid=ACCOUNT, from_="+15005550006",
                   to="+15005550001", body="hi", status=M.QUEUED,
                   status_callback="http://127.0.0.1:9/status")


def hook(msg: Message, status: str) -> Hook:
    params = [("AccountSid", ACCOUNT), ("MessageSid", msg.sid), ("MessageStatus", status)]
    return Hook("status", msg.status_callback, "POST", params, "secret",
                idem=callback_token(msg.sid, status))


async def due(store) -> dict[str, list[str]]:
    return {m.sid: toks for m, toks in await store.messages_due()}


def test_callback_token_is_stable_per_event():
    a = callback_token("SM" + "1" * 32, "sent")
    assert a == callback_token("SM" + "1" * 32, "sent") and len(a) == 32
    assert a != callback_token("SM" + "1" * 32, "delivered")
    assert a != callback_token("SM" + "2" * 32, "sent")


async def test_due_with_the_status_cleared_lazily(tmp_path):
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        box = CallbackOutbox(store, {ACCOUNT: "secret"}.get, tick=3600)
        msgs = [message(i) for i in range(3)]
        for m in msgs:
            await store.create_message(m)
            m.advance(M.SENDING, 1.0)
            assert m.advance(M.SENT, 2.0)
            store.save_message_nowait(m)
        await store.ping()
        ops = store.stats.ops
        for m in msgs:
            box.record(hook(m, "sent"))          # enqueued: no write
        await store.ping()
        assert store.stats.ops == ops + 1        # the ping only
        assert await due(store) == {m.sid: ["sent"] for m in msgs}
        # m0 answered; then its DLR: the clear rides on the delivered save
        box.done(hook(msgs[0], "sent"))
        assert msgs[0].advance(M.DELIVERED, 3.0)
        await store.save_message(msgs[0])
        assert (await due(store))[msgs[0].sid] == ["delivered"]
        # m1 answered, no save follows: the flush writes it
        box.done(hook(msgs[1], "sent"))
        assert box.backlog == 1
        await box.flush()
        assert box.backlog == 0
        assert await due(store) == {msgs[0].sid: ["delivered"], msgs[2].sid: ["sent"]}
        await store.close()


async def test_run_flushes_clears_within_a_tick(tmp_path):
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        box = CallbackOutbox(store, {ACCOUNT: "secret"}.get, tick=0.02)
        m = message(7)
        await store.create_message(m)
        m.advance(M.SENDING, 1.0)
        m.advance(M.SENT, 2.0)
        await store.save_message(m)
        async with trio.open_nursery() as n:
            await n.start(box.run)
            box.done(hook(m, "sent"))
            while await store.messages_due():
                await trio.sleep(0.01)
            n.cancel_scope.cancel()
        await store.close()


async def test_legacy_outbox_records_resent_then_deleted(tmp_path):
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        item = {"idem": "t" * 32, "kind": "status", "url": "http://127.0.0.1:9/s",
                "method": "POST", "params": [["AccountSid", ACCOUNT], ["MessageSid", "SMx"],
                                             ["MessageStatus", "sent"]],
                "account": ACCOUNT, "attempt": 2, "at": 1.0}
        await store.kv_put(LEGACY_NS, "b0-old", {"items": [item]})
        box = CallbackOutbox(store, {ACCOUNT: "secret"}.get, tick=3600)
        box.restore([])
        (h,) = await box.load(Hook)
        assert (h.idem, h.attempt, h.token) == ("t" * 32, 2, "secret")
        await box.flush()
        assert await store.kv_items(LEGACY_NS)          # not done yet: kept
        box.done(h)
        await box.flush()
        assert await store.kv_items(LEGACY_NS) == []
        await store.close()
