"""Fixtures for the cluster tests: one redis-server per session (unix socket, AOF always)."""

from __future__ import annotations

import pytest

from tests.store import redis_server as rs


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not rs.available():
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    server = rs.RedisServer(tmp_path_factory.mktemp("redis-cluster")).start()
    yield server
    server.stop()
