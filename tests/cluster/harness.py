"""N gateways in one trio process on one Redis, one SMSC simulator, one webhook sink.

Rules: each gateway runs in its own cancel scope so a test can stop one abruptly
(``crash``: no lease release, no drain) or gracefully (``stop``); everything binds
127.0.0.1 port 0; waits are conditions with deadlines.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import orjson
import prometheus_client
import trio

from gateway import settings as settings_mod
from gateway.io.http_client import HttpClient
from gateway.io.http_server import HttpServer
from gateway.runtime.app import Gateway
from tests.e2e.harness import (
    ACCOUNT,
    TOKEN,
    Sink,
    config_text,
    start_sim,  # the same simulator setup as the e2e tests
)

_prefixes = itertools.count(1)


@dataclass
class Node:
    gw: Gateway
    port: int
    scope: trio.CancelScope
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class ClusterEnv:
    nodes: list[Node]
    sim: object
    sink: Sink
    http: HttpClient
    nursery: trio.Nursery
    start_node: object = None

    async def create(self, node: int, **form) -> tuple[int, dict]:
        auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        headers = [("Authorization", f"Basic {auth}"),
                   ("Content-Type", "application/x-www-form-urlencoded")]
        idem = form.pop("idem", None)
        if idem:
            headers.append(("Idempotency-Key", idem))
        url = f"http://127.0.0.1:{self.nodes[node].port}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        resp = await self.http.request("POST", url, headers, urlencode(form).encode())
        return resp.status, orjson.loads(resp.body)

    async def fetch(self, node: int, sid: str) -> tuple[int, dict]:
        auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        url = (f"http://127.0.0.1:{self.nodes[node].port}/2010-04-01/Accounts/{ACCOUNT}"
               f"/Messages/{sid}.json")
        resp = await self.http.request("GET", url, [("Authorization", f"Basic {auth}")])
        return resp.status, orjson.loads(resp.body)

    def crash(self, i: int) -> None:
        """Stop gateway ``i`` abruptly: no drain, its leases are left to expire."""
        node = self.nodes[i]
        node.gw.cluster.release_on_stop = False
        node.scope.cancel()

    def bodies_at_sim(self) -> list[bytes]:
        return [r.short_message for r in self.sim.submits]


def redis_config(tmp_path, sim_port: int, sink_port: int, url: str, rates: str,
                 binds: int = 1, max_tps: float = 0) -> str:
    text = config_text(tmp_path, [("a", sim_port)], sink_port, rates=rates)
    text = text.replace("  window = 64\n", f"  window = 64\n  cluster_binds = {binds}\n"
                        f"  max_tps = {max_tps}\n")
    return re.sub(r'backend = "sqlite"\npath = "[^"]*"',
                  f'backend = "redis"\nurl = "{url}"', text, count=1)


@contextlib.asynccontextmanager
async def cluster_env(tmp_path, redis_server, n: int = 2, rates: str = "",
                      sim_kw: dict | None = None, binds: int = 1, max_tps: float = 0):
    prefix = f"cl{next(_prefixes)}-{tmp_path.name[-12:]}:"
    async with trio.open_nursery() as nursery:
        sink = Sink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        sim = await start_sim(nursery, **{"dlr_delay_ms": 10, **(sim_kw or {})})
        path = tmp_path / "gw.toml"
        path.write_text(redis_config(tmp_path, sim.port, sink.port,
                                     redis_server.url(prefix=prefix), rates, binds,
                                     max_tps))
        cfg = settings_mod.load(path)
        nodes: list[Node] = []

        async def start_node() -> Node:
            gw = Gateway(cfg, registry=prometheus_client.CollectorRegistry())

            async def run(task_status=trio.TASK_STATUS_IGNORED):
                with trio.CancelScope() as scope:
                    node = Node(gw, 0, scope)
                    try:
                        async with trio.open_nursery() as inner:
                            node.port = await inner.start(gw.run)
                            task_status.started(node)
                    finally:
                        node.done.set()

            node = await nursery.start(run)
            nodes.append(node)
            return node

        for _ in range(n):
            await start_node()
        http = HttpClient()
        env = ClusterEnv(nodes, sim, sink, http, nursery, start_node)
        try:
            yield env
        finally:
            for node in nodes:
                node.gw.stop()
            with trio.move_on_after(15):
                for node in nodes:
                    await node.done.wait()
            await http.aclose()
            nursery.cancel_scope.cancel()


async def wait_until(pred, timeout: float = 10.0, step: float = 0.02):
    with trio.fail_after(timeout):
        while True:
            got = pred()
            if got:
                return got
            await trio.sleep(step)      # polling a condition, bounded by fail_after
