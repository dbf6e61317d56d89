"""Voice end-to-end harness: an in-process gateway with SIP trunks, SIPp processes as
the carriers (UAC scenarios calling in, ``-sn uas`` answering calls out), and a webhook
sink whose replies can be held until the test releases them.

Rules: 127.0.0.1 only; gateway ports are 0; SIPp ports are picked free just before use;
every SIPp process is bounded (``-timeout``) and stopped by its own PID; no sleeps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import textwrap
from dataclasses import dataclass, field

import trio

from gateway import settings as settings_mod
from gateway.io.http_server import HttpServer
from gateway.runtime.app import Gateway
from gateway.testing import sipp as scenarios

from .harness import ACCOUNT, TOKEN, Sink

SIPP = shutil.which("sipp")
PCAPS = "/usr/share/sip-tester"
NUMBER = "+15005550006"


@dataclass
class HoldingSink(Sink):
    """A ``Sink`` whose reply to ``held[path]`` waits until that event is set."""

    held: dict[str, trio.Event] = field(default_factory=dict)

    async def handle(self, req):
        gate = self.held.get(req.path)
        if gate is not None:
            await gate.wait()
        return await super().handle(req)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, sink_port: int, trunks: list[tuple[str, int]],
           routes: list[tuple[str, list[str]]] | None = None) -> str:
    sink = f"http://127.0.0.1:{sink_port}"
    blocks = "".join(textwrap.dedent(f"""
        [[carriers]]
        name = "{name}"
        priority = {i + 1}
          [carriers.sip]
          host = "127.0.0.1"
          port = {port}
          options_interval = 3600
        """) for i, (name, port) in enumerate(trunks))
    names = ", ".join(f'"{n}"' for n, _ in trunks)
    return textwrap.dedent(f"""
        [api]
        listen = "127.0.0.1:0"
        public_url = "http://127.0.0.1:8080"
        [store]
        backend = "sqlite"
        path = "{tmp_path}/gw.db"
        [sip]
        listen = "127.0.0.1:0"
        rtp_port_min = 0
        rtp_port_max = 0
        [webhooks]
        allow_private = true
        max_attempts = 2
        [[accounts]]
        sid = "{ACCOUNT}"
        auth_token = "{TOKEN}"
        """) + blocks + (f'[[routes]]\nprefix = "+"\ncarriers = [{names}]\n' if trunks else "") \
        + "".join(f'[[routes]]\nprefix = "{p}"\ncarriers = [{", ".join(repr(c) for c in cs)}]\n'
                  .replace("'", '"') for p, cs in routes or []) \
        + textwrap.dedent(f"""
        [[numbers]]
        number = "{NUMBER}"
        account = "{ACCOUNT}"
        type = "long_code"
        voice_url = "{sink}/voice"
        voice_fallback_url = "{sink}/voice-fallback"
        status_callback = "{sink}/call-status"
        """)


@dataclass
class VoiceEnv:
    gw: Gateway
    api_port: int
    sip_port: int
    sink: HoldingSink
    tmp_path: object
    nursery: trio.Nursery

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self):
        from twilio.rest import Client
        c = Client(ACCOUNT, TOKEN)
        c.api.base_url = self.base_url
        return c


@contextlib.asynccontextmanager
async def voice_env(tmp_path, trunks: list[tuple[str, int]], setup_timeout: float = 1.5,
                    accept_register: bool = False,
                    routes: list[tuple[str, list[str]]] | None = None):
    async with trio.open_nursery() as nursery:
        sink = HoldingSink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        path = tmp_path / "gw.toml"
        path.write_text(config(tmp_path, sink.port, trunks, routes))
        gw = Gateway(settings_mod.load(path),
                     registry=__import__("prometheus_client").CollectorRegistry())
        gw.voice.setup_timeout = setup_timeout
        gw.voice.accept_register = accept_register      # pyVoIP must REGISTER first
        api_port = await nursery.start(gw.run)
        env = VoiceEnv(gw, api_port, gw.voice.port, sink, tmp_path, nursery)
        try:
            yield env
        finally:
            for gate in sink.held.values():
                gate.set()
            gw.stop()
            with trio.fail_after(30):
                while not getattr(gw, "stopped", False):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()


class Sipp:
    """One SIPp process; ``wait()`` -> exit code; ``stop()`` kills it by PID."""

    def __init__(self, args: list[str], log_dir):
        self.args = [SIPP, *args, "-nostdin", "-timeout", "30s", "-timeout_error"]
        self.log_dir = log_dir
        self.proc: trio.Process | None = None
        self.out = b""

    async def start(self, nursery: trio.Nursery) -> None:
        self.proc = await trio.lowlevel.open_process(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(self.log_dir))
        nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for chunk in self.proc.stdout:
            self.out += chunk

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        with trio.fail_after(timeout):
            return await self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def sipp(args: list[str], log_dir):
    async with trio.open_nursery() as nursery:
        proc = Sipp(args, log_dir)
        await proc.start(nursery)
        try:
            yield proc
        finally:
            proc.stop()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await proc.proc.wait()


def uas_args(port: int) -> list[str]:
    """SIPp as a carrier answering one call (auto-answers OPTIONS, echoes RTP). SIPp
    counts the gateway's start-up OPTIONS probe (one per trunk, options_interval=3600)
    as a call, hence ``-m 2``."""
    return ["-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-m", "2", "-aa",
            "-mi", "127.0.0.1", "-mp", str(free_udp_port()), "-rtp_echo"]


def uac_args(gw_port: int, scenario, service: str) -> list[str]:
    return [f"127.0.0.1:{gw_port}", "-sf", str(scenario), "-s", service, "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
            "-m", "1"]


_INVITE = scenarios.invite()
_ACK_FRESH = scenarios.ack()
_ACK_IN_TX = scenarios.ack("[last_Via:]")
_OK_BYE = scenarios.ok_bye()
_scenario = scenarios.scenario


def scenario_dtmf(digits: list[str]) -> str:
    """Call in, wait for the answer, send RFC 4733 digits from SIPp's pcaps, expect BYE."""
    plays = "".join(
        f'<nop><action><exec play_pcap_audio="{PCAPS}/dtmf_2833_{d}.pcap"/></action></nop>'
        '<pause milliseconds="400"/>' for d in digits)
    return _scenario(
        _INVITE + '<recv response="100" optional="true"/><recv response="180" optional="true"/>'
        '<recv response="200" rtd="true"/>'
        + _ACK_FRESH
        + '<pause milliseconds="300"/>' + plays + _OK_BYE)


def scenario_cancel() -> str:
    """Call in, CANCEL after 180, expect 200 (CANCEL) and 487 (INVITE), ACK it."""
    cancel = """
  <send>
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: carrier <sip:15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""
    return _scenario(
        _INVITE + '<recv response="100" optional="true"/><recv response="180"/>' + cancel
        + '<recv response="200"/><recv response="487"/>' + _ACK_IN_TX)


def scenario_rejected(status: int) -> str:
    """Call in, expect a final ``status`` (404, 486…), ACK it."""
    return _scenario(
        _INVITE + '<recv response="100" optional="true"/><recv response="180" optional="true"/>'
        f'<recv response="{status}"/>' + _ACK_IN_TX)
