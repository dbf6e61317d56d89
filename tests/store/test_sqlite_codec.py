"""The SQLite row codec and the due buffer's shortcuts: ``row_of`` stores exactly the
non-default cold fields (generated code vs the plain rule) and round-trips through
``msg_of``; ``DueBuffer.clear`` of an unsaved token gives what the general rule gives;
a batch's nowait ops are settled without a per-op outcome yet keep their errors."""

import random

import msgpack
import outcome

from gateway.core.message import Message
from gateway.store import due as D
from gateway.store import sqlite_schema as S
from gateway.store import sqlite_writer as W


def _plain_cold(msg: Message) -> dict:
    return {n: getattr(msg, n) for n, d in S.COLD_DEFAULTS.items() if getattr(msg, n) != d}


def test_row_of_matches_plain_rule_and_round_trips():
    rng = random.Random(7)
    for i in range(300):
        m = Message(sid=f"SM{i}", account_sid="AC1", from_="+1500", to="+1415",
                    body=rng.choice(["", "hi", "é" * 3]), status="sent", seq=i + 1,
                    date_created=1.0, date_updated=2.0, date_sent=rng.choice([None, 3.0]))
        if rng.random() < 0.5:
            m.carrier_message_ids = ["x", "y"][: rng.randint(0, 2)]
        if rng.random() < 0.5:
            m.error_code, m.error_message = 30003, "Unreachable"
        m.smart_encoded = rng.random() < 0.3
        m.num_segments = rng.choice([1, 2])
        m.attempts = rng.choice([0, 3])
        row = S.row_of(m)
        assert msgpack.unpackb(row[9], raw=False) == _plain_cold(m)
        assert list(msgpack.unpackb(row[9], raw=False)) == list(_plain_cold(m))  # order
        assert S.msg_of(row) == m


def _general_clear(buf: D.DueBuffer, sid: str, token: str) -> None:
    pending = buf.unsaved.get(sid)
    toks = buf.clears.setdefault(sid, [])
    if token not in toks:
        toks.append(token)
    if pending is not None and token in D.split(pending[1]):
        pending[1] = D.join([t for t in D.split(pending[1]) if t != token])


def test_due_clear_matches_general_rule():
    rng = random.Random(11)
    tokens = ["queued", "sent", "delivered", "failed", "mo:" + "a" * 16]
    for _ in range(500):
        a, b = D.DueBuffer(coalescing=True), D.DueBuffer(coalescing=True)
        for _ in range(rng.randint(1, 8)):
            sid = rng.choice(["SM1", "SM2"])
            if rng.random() < 0.5:
                adds = rng.sample(tokens, rng.randint(0, 2))
                ca, cb = a.for_write(sid, list(adds)), b.for_write(sid, list(adds))
                assert ca == cb
                if rng.random() < 0.3:
                    a.committed(sid, ca)
                    b.committed(sid, cb)
            else:
                tok = rng.choice(tokens)
                a.clear(sid, tok)
                _general_clear(b, sid, tok)
            assert a.unsaved == b.unsaved and a.clears == b.clears


def test_merge_and_join():
    assert D.join([]) == "" and D.join(x for x in []) == ""
    assert D.join(["a", "b"]) == ";a;b" and D.join(t for t in ("a",)) == ";a"
    assert D._merge(";a", ";a") == ";a" and D._merge(";a", ";b;a") == ";a;b"
    assert D._merge("", ";b") == ";b" and D._merge(";a", "") == ";a"


def test_settle_nowait_shares_outcome_but_keeps_errors():
    def fn(conn):
        return None

    ops = [W.Op(fn, (), None), W.Op(fn, (), None, key="k"), W.Op(fn, (), None, key="k"),
           W.Op(fn, (), None), W.Op(fn, (), "task")]
    items = W.batch_items(ops)
    assert items[1] is None and items[2] is not None
    results = [("ok", 1), None, ("ok", 2), ("err", "constraint failed"), ("ok", 3)]
    stats = W.WriterStats()
    W.settle(ops, items, results, None, stats, None, 0.0)
    assert ops[0].outcome is W.NOWAIT_OK and ops[1].outcome is W.NOWAIT_OK
    assert isinstance(ops[3].outcome, outcome.Error)
    assert ops[4].outcome.unwrap() == 3
    assert (stats.ops, stats.nowait_ops, stats.coalesced, stats.op_errors) == (5, 4, 1, 1)
    failed = [W.Op(fn, (), None), W.Op(fn, (), "task")]
    W.settle(failed, W.batch_items(failed), [], "disk full", stats, None, 0.0)
    assert all(isinstance(op.outcome, outcome.Error) for op in failed)
    assert failed[0].outcome is not failed[1].outcome and stats.errors == 1
