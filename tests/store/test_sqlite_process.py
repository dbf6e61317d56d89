"""The SQLite writer in its own process: crash of the child, ops that cannot cross."""

import os
import signal

import pytest
import trio

from gateway.store.base import StoreError
from gateway.store.sqlite import SqliteStore

from .conftest import make_msg


async def test_child_killed_fails_the_batch_then_restarts(tmp_path):
    store = SqliteStore(tmp_path / "gw.db", writer="process")
    await store.open()
    try:
        first = make_msg()
        await store.create_message(first)
        pid = store._writer.pid
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(10):
            while store._writer._proc.poll() is None:
                await trio.sleep(0.01)
        with pytest.raises(StoreError):
            await store.create_message(make_msg())
        second = make_msg()
        await store.create_message(second)          # a new child took over
        assert store._writer.pid != pid
        assert (await store.get_message(first.sid)) is not None
        assert (await store.get_message(second.sid)) is not None
    finally:
        await store.close()


async def test_op_that_cannot_be_pickled_fails_alone(tmp_path):
    store = SqliteStore(tmp_path / "gw.db", writer="process")
    await store.open()
    try:
        with pytest.raises(StoreError):
            await store.run_in_writer(lambda conn: 1)
        msg = make_msg()
        await store.create_message(msg)
        assert (await store.get_message(msg.sid)).sid == msg.sid
        assert await store.ping()
    finally:
        await store.close()
