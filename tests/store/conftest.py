"""Fixtures for the store tests: a real SQLite file in tmp_path and an injectable clock."""

from __future__ import annotations

import itertools

import pytest

from gateway.core.message import QUEUED, Message
from gateway.store.sqlite import SqliteStore

ACCOUNT = "AC" + "a" * 32
OTHER = "AC" + "b" * 32
_counter = itertools.count(1)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_msg(**kw) -> Message:
    n = next(_counter)
    fields = dict(sid=f"SM{n:032x}", account_sid=ACCOUNT, from_="+15005550006",
                  to="+15005550001", body=f"hello {n}", status=QUEUED,
                  date_created=1_700_000_000.0 + n, date_updated=1_700_000_000.0 + n)
    fields.update(kw)
    return Message(**fields)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path, clock):
    s = SqliteStore(tmp_path / "gw.db", clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
