"""Fixtures for the store tests: every backend (a real SQLite file in tmp_path; a real
redis-server, one per session, a key prefix per test) and an injectable clock."""

from __future__ import annotations

import itertools

import pytest

from gateway.core.message import QUEUED, Message
from gateway.store.sqlite import SqliteStore

from . import redis_server as redis_server_mod

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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server per test session (unix socket, AOF always), stopped by PID."""
    if not redis_server_mod.available():
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    server = redis_server_mod.RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "sqlite-process", "redis"])
def make_store(request, tmp_path, clock):
    """``make_store()`` -> a new, unopened store on the same backing data (same SQLite
    file, or same Redis key prefix), for every backend (SQLite with its writer
    connection on a thread, and in its own process)."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "gw.db", clock=clock)
    if request.param == "sqlite-process":
        return lambda: SqliteStore(tmp_path / "gw.db", clock=clock, writer="process")
    from gateway.store.redis import RedisStore

    server = request.getfixturevalue("redis_server")
    prefix = f"t{next(_counter)}:"
    return lambda: RedisStore(server.url(), prefix=prefix)


@pytest.fixture
async def store(make_store):
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sqlite_store(tmp_path, clock):
    s = SqliteStore(tmp_path / "gw.db", clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
