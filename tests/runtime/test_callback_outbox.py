"""CallbackOutbox against a real SqliteStore: records batched after the grace, nothing
written for callbacks done within it, compaction, delete, and reload with the same
idempotency tokens."""

import trio

from gateway.runtime.callback_outbox import NS, CallbackOutbox
from gateway.runtime.webhooks import Hook
from gateway.store.sqlite import SqliteStore

ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def hook(i: int) -> Hook:
    params = [("AccountSid", ACCOUNT), ("MessageSid", f"SM{i:032x}"), ("MessageStatus", "sent")]
    return Hook("status", "http://127.0.0.1:9/status", "POST", params, "secret")


async def records(store) -> dict[str, list[str]]:
    return {k: [it["idem"] for it in v["items"]] for k, v in await store.kv_items(NS)}


async def test_outbox_batches_compacts_deletes_and_reloads(tmp_path):
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        box = CallbackOutbox(store, {ACCOUNT: "secret"}.get, grace=3600, tick=3600)
        hooks = [hook(i) for i in range(5)]
        for h in hooks:
            box.record(h)
        box.done(hooks[0])                    # answered within the grace: never written
        await box.flush()
        recs = await records(store)
        assert len(recs) == 1
        (key, idems), = recs.items()
        assert idems == [h.idem for h in hooks[1:]]
        hooks[2].attempt = 3
        box.done(hooks[1])
        await box.flush()                     # rewritten without the done one
        assert (await records(store)) == {key: [h.idem for h in hooks[2:]]}
        # a crash now: a new outbox on the same store restores the rest, same tokens
        box2 = CallbackOutbox(store, {ACCOUNT: "secret"}.get)
        restored = await box2.load(Hook)
        assert [h.idem for h in restored] == [h.idem for h in hooks[2:]]
        assert restored[0].attempt == 3 and restored[0].params == hooks[2].params
        assert restored[0].token == "secret" and restored[0].url == hooks[2].url
        for h in restored:
            box2.done(h)
        await box2.flush()
        assert await records(store) == {}
        await store.close()


async def test_outbox_run_writes_after_grace_only_what_is_not_done(tmp_path):
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        box = CallbackOutbox(store, {ACCOUNT: "secret"}.get, grace=0.05, tick=0.02)
        async with trio.open_nursery() as n:
            await n.start(box.run)
            fast, slow = hook(1), hook(2)
            box.record(fast)
            box.record(slow)
            box.done(fast)
            while not await store.kv_items(NS):
                await trio.sleep(0.01)
            assert list((await records(store)).values()) == [[slow.idem]]
            box.done(slow)
            while await store.kv_items(NS):
                await trio.sleep(0.01)
            n.cancel_scope.cancel()
        await store.close()
