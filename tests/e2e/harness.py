"""End-to-end test harness: a gateway in-process on real sockets, the project's SMSC
simulator as the carrier, a recording webhook sink, and the official twilio client.

Rules: everything binds 127.0.0.1 port 0; waits are conditions with deadlines.
"""

from __future__ import annotations

import contextlib
import textwrap
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import trio

from gateway import settings as settings_mod
from gateway.io.http_server import HttpServer, Response
from gateway.runtime.app import Gateway
from gateway.testing.smsc import SimConfig, SmscSimulator

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "secret"
OTHER_ACCOUNT = "ACfedcba9876543210fedcba9876543210"
OTHER_TOKEN = "other-secret"
SERVICE = "MG0123456789abcdef0123456789abcdef"
LONG = "+15005550006"
LONG2 = "+15005550007"
TOLL_FREE = "+18005550100"
SHORT = "55501"


@dataclass
class Hit:
    path: str
    method: str
    form: dict[str, str]
    headers: dict[str, str]
    url: str


@dataclass
class Sink:
    """A webhook receiver: records every request; ``replies[path]`` = (status, ctype, body)."""

    server: HttpServer | None = None
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    replies: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, req):
        form = {k: v[-1] for k, v in parse_qsl_multi(req.body.decode()).items()}
        self.hits.append(Hit(req.path, req.method, form, dict(req.headers), self.url(req.target)))
        self.changed.set()
        self.changed = trio.Event()
        status, ctype, body = self.replies.get(req.path, (200, "text/xml", b"<Response/>"))
        return Response(status, [("Content-Type", ctype)], body)

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait_for(self, pred, timeout: float = 10.0):
        with trio.fail_after(timeout):
            while True:
                got = pred()
                if got:
                    return got
                await self.changed.wait()


def parse_qsl_multi(body: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(body, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def config_text(tmp_path, carriers: list[tuple[str, int]], sink_port: int, extra: str = "",
                rates: str = "", routes: str | None = None, numbers_extra: str = "",
                webhooks: str = "") -> str:
    carrier_blocks = "\n".join(
        textwrap.dedent(f"""
        [[carriers]]
        name = "{name}"
        priority = {i + 1 if routes is None else 1}
        weight = 1
          [carriers.smpp]
          host = "127.0.0.1"
          port = {port}
          system_id = "gw"
          password = "pw"
          window = 64
          response_timeout = 2
          enquire_link_interval = 5
        """)
        for i, (name, port) in enumerate(carriers)
    )
    if routes is None:
        names = ", ".join(f'"{n}"' for n, _ in carriers)
        routes = f'[[routes]]\nprefix = "+"\ncarriers = [{names}]\n'
    sink = f"http://127.0.0.1:{sink_port}"
    rates = rates or "long_code = 1\ntoll_free = 3\nshort_code = 100\nqueue_hours = 10"
    return textwrap.dedent(f"""
    [api]
    listen = "127.0.0.1:0"
    public_url = "http://127.0.0.1:0"
    [store]
    backend = "sqlite"
    path = "{tmp_path}/gw.db"
    [webhooks]
    allow_private = true
    max_attempts = 3
    {webhooks}
    [[accounts]]
    sid = "{ACCOUNT}"
    auth_token = "{TOKEN}"
    [[accounts]]
    sid = "{OTHER_ACCOUNT}"
    auth_token = "{OTHER_TOKEN}"
    """) + "[rates]\n" + rates + "\n" + carrier_blocks + "\n" + routes + textwrap.dedent(f"""
    [[numbers]]
    number = "{LONG}"
    account = "{ACCOUNT}"
    type = "long_code"
    sms_url = "{sink}/sms"
    sms_fallback_url = "{sink}/fallback"
    [[numbers]]
    number = "{LONG2}"
    account = "{ACCOUNT}"
    type = "long_code"
    [[numbers]]
    number = "{TOLL_FREE}"
    account = "{ACCOUNT}"
    type = "toll_free"
    [[numbers]]
    number = "{SHORT}"
    account = "{ACCOUNT}"
    type = "short_code"
    status_callback = "{sink}/status-default"
    [[numbers]]
    number = "+15005550999"
    account = "{OTHER_ACCOUNT}"
    type = "long_code"
    [[messaging_services]]
    sid = "{SERVICE}"
    account = "{ACCOUNT}"
    friendly_name = "notifications"
    numbers = ["{LONG}", "{LONG2}"]
    sticky_sender = true
    """) + numbers_extra + extra


@dataclass
class Env:
    gw: Gateway
    api_port: int
    sims: dict[str, SmscSimulator]
    sink: Sink
    nursery: trio.Nursery

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self, account: str = ACCOUNT, token: str = TOKEN):
        from twilio.rest import Client

        c = Client(account, token)
        c.api.base_url = self.base_url
        c.messaging.base_url = self.base_url
        return c


async def start_sim(nursery, **kw) -> SmscSimulator:
    sim = SmscSimulator(SimConfig(host="127.0.0.1", port=0, **kw))
    await nursery.start(sim.serve)
    return sim


@contextlib.asynccontextmanager
async def gateway_env(tmp_path, n_carriers: int = 1, sim_kw: dict | None = None, **cfg_kw):
    async with trio.open_nursery() as nursery:
        sink = Sink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        sims = {}
        for i in range(n_carriers):
            name = "abc"[i]
            kw = {"dlr_delay_ms": 10, **(sim_kw or {})}
            sims[name] = await start_sim(nursery, **kw)
        carriers = [(name, sim.port) for name, sim in sims.items()]
        path = tmp_path / "gw.toml"
        path.write_text(config_text(tmp_path, carriers, sink.port, **cfg_kw))
        cfg = settings_mod.load(path)
        gw = Gateway(cfg, registry=__import__("prometheus_client").CollectorRegistry())
        port = await nursery.start(gw.run)
        env = Env(gw, port, sims, sink, nursery)
        await wait_bound(gw)
        try:
            yield env
        finally:
            gw.stop()
            with trio.fail_after(30):
                while gw.nursery is not None and gw.api_port is not None and not gw_done(gw):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


def gw_done(gw) -> bool:
    return getattr(gw, "stopped", False)


async def wait_bound(gw, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not all(link.state == "bound" for link in gw.carriers.links.values()):
            await trio.sleep(0.01)


async def wait_until(pred, timeout: float = 10.0, step: float = 0.01):
    """Poll ``pred`` (a condition, not a delay) until true or fail after ``timeout``."""
    with trio.fail_after(timeout):
        while True:
            got = pred()
            if got:
                return got
            await trio.sleep(step)


async def wait_status(env, sid: str, status: str, timeout: float = 10.0):
    """Wait until the stored message ``sid`` has ``status``; returns the message."""
    with trio.fail_after(timeout):
        while True:
            msg = await env.gw.store.get_message(sid)
            if msg is not None and msg.status == status:
                return msg
            await trio.sleep(0.02)
