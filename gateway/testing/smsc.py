"""SMPP 3.4 SMSC simulator (trio server) for tests, benches, the dev config and demos.

Owns: accepting binds of every kind, answering submit_sm with unique hex message ids,
delivery receipts (deliver_sm esm_class 0x04 with the Appendix B text *and* the
receipted_message_id / message_state TLVs), MO injection (multipart via 8-bit UDH),
fault injection (throttling, queue full, vendor errors, withheld responses, delayed
responses, drops, refusing connections) and statistics.

Rules:
- Credentials: ``system_id`` / ``password`` None accept anything; otherwise a wrong
  system_id gets ESME_RINVSYSID and a wrong password ESME_RINVPASWD.
- DLRs follow ``registered_delivery & 3`` of each submit: 1 = always, 2 = on failure only,
  0 = none. The final state is drawn from ``dlr_states`` with a seeded RNG; they go to a
  receiver-capable bind (transceiver or receiver) with the submit's system_id, or wait
  (bounded) until one binds.
- Faults are drawn per submit, in this order: throttle, msgqful, vendor_error, withhold.
  Throttled/queue-full/vendor-error submits get no message id and no DLR; withheld ones
  get nothing at all. ``drop_after`` = N closes each connection after its N-th submit
  (the first N are answered). All knobs can change at runtime with ``set_faults``.
- Writes are coalesced: one ``send_all`` per batch of outgoing PDUs per connection.

Error handling: a broken connection is closed and forgotten; undecodable PDUs are
answered with generic_nack (framing loss closes the connection). No retries.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import trio

from gateway import codec
from gateway.testing.smsc_pdus import dlr_for, mo_pdus, parse_dlr_states

FAULT_KNOBS = ("throttle", "msgqful", "vendor_error", "vendor_status", "withhold",
               "response_delay_ms", "drop_after", "dlr_delay_ms", "dlr_states")
_RX_BINDS = ("transceiver", "receiver")


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    system_id: str | None = None
    password: str | None = None
    dlr_delay_ms: float = 0.0
    dlr_states: dict = field(default_factory=lambda: {"DELIVRD": 1.0})
    throttle: float = 0.0            # fraction of submits answered ESME_RTHROTTLED
    msgqful: float = 0.0             # fraction answered ESME_RMSGQFUL
    vendor_error: float = 0.0        # fraction answered vendor_status
    vendor_status: int = 0x400
    withhold: float = 0.0            # fraction never answered
    response_delay_ms: float = 0.0
    drop_after: int | None = None    # close each connection after its N-th submit
    seed: int = 1
    record_submits: bool = True      # keep ``submits`` records (off for benches)
    max_records: int = 200_000       # past this the oldest half of ``submits`` is dropped
    control_host: str = "127.0.0.1"
    control_port: int | None = None  # JSON control port (gateway.testing.smsc_control)


class SubmitRecord(NamedTuple):
    time: float
    source: str
    dest: str
    short_message: bytes
    data_coding: int
    esm_class: int
    tlvs: dict | None
    message_id: str | None
    system_id: str
    pdu: object


class _Conn:
    def __init__(self, stream, n: int) -> None:
        self.stream = stream
        self.id = n
        self.scope = trio.CancelScope()
        self.pending: list = []
        self.wake = trio.Event()
        self.bind_type: str | None = None
        self.system_id = ""
        self.submits = 0
        self.seq = 0
        self.closing = False
        self.sending = False

    def queue(self, pdus: list) -> None:
        self.pending.extend(pdus)
        self.wake.set()

    def next_seq(self) -> int:
        self.seq = self.seq + 1 if self.seq < 0x7FFFFFFF else 1
        return self.seq


class SmscSimulator:
    """See the module docstring. ``await nursery.start(sim.serve)`` returns the port."""

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.rng = random.Random(self.cfg.seed)
        self.port: int | None = None
        self.control_port: int | None = None
        self.submits: list[SubmitRecord] = []
        self.stats: dict = {"binds": Counter(), "bind_failures": 0, "submits": 0,
                            "resps": Counter(), "dlrs_sent": 0, "mo_sent": 0,
                            "deliver_resps": Counter(), "connections": 0, "drops": 0,
                            "generic_nacks": 0}
        self._conns: set[_Conn] = set()
        self._conn_ids = itertools.count(1)
        self._down = False
        self._msg_id = self.rng.randrange(0x10000000, 0x7FFFFFFF) << 8
        self._timers: list = []            # heap of (due, n, kind, target, pdu)
        self._timer_n = itertools.count()
        self._timer_wake = trio.Event()
        self._waiting_rx: dict[str, list] = {}  # system_id -> PDUs waiting for a receiver
        self._rr = itertools.count()
        self._rate_t = 0.0
        self._rate_n = 0
        self._rate = 0.0
        self._mo_ref = 0

    # ------------------------------------------------------------------ server
    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.cfg.port, host=self.cfg.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer_task)
            if self.cfg.control_port is not None:
                from gateway.testing.smsc_control import serve_control
                self.control_port = await nursery.start(
                    serve_control, self, self.cfg.control_host, self.cfg.control_port)
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, stream) -> None:
        conn = _Conn(stream, next(self._conn_ids))
        self.stats["connections"] += 1
        if self._down:
            await stream.aclose()
            return
        self._conns.add(conn)
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn)
                    await self._reader(conn)
                    await self._flush_then_stop(conn, nursery)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass            # a peer that resets (kill -9) ends its connection, not the server
        finally:
            self._conns.discard(conn)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _flush_then_stop(self, conn: _Conn, nursery) -> None:
        with trio.move_on_after(1.0):
            while conn.pending or conn.sending:
                conn.wake.set()
                await trio.sleep(0.001)
        nursery.cancel_scope.cancel()

    async def _reader(self, conn: _Conn) -> None:
        dec = codec.Decoder()
        while not conn.closing:
            data = await conn.stream.receive_some(65536)
            if not data:
                return
            try:
                items = dec.feed(data)
            except codec.PduError as exc:
                conn.queue([codec.GenericNack(0, command_status=exc.command_status)])
                return
            now = trio.current_time()
            out: list = []
            for pdu in items:
                self._on_pdu(conn, pdu, now, out)
                if conn.closing:
                    break
            if out:
                conn.queue(out)

    async def _writer(self, conn: _Conn) -> None:
        stream = conn.stream
        while True:
            await conn.wake.wait()
            conn.wake = trio.Event()
            while conn.pending:
                batch, conn.pending = conn.pending, []
                conn.sending = True
                await stream.send_all(codec.encode_many(batch))
                conn.sending = False

    # ------------------------------------------------------------------ PDUs
    def _on_pdu(self, conn: _Conn, pdu, now: float, out: list) -> None:
        if isinstance(pdu, codec.PduError):
            self.stats["generic_nacks"] += 1
            out.append(codec.GenericNack(pdu.sequence_number, command_status=pdu.command_status))
            return
        C = codec.CommandId
        cid = pdu.command_id
        if cid == C.SUBMIT_SM:
            self._on_submit(conn, pdu, now, out)
        elif cid == C.DELIVER_SM_RESP:
            self.stats["deliver_resps"][pdu.command_status] += 1
        elif cid == C.ENQUIRE_LINK:
            out.append(codec.resp_for(pdu, 0))
        elif cid in (C.BIND_TRANSCEIVER, C.BIND_TRANSMITTER, C.BIND_RECEIVER):
            self._on_bind(conn, pdu, out)
        elif cid == C.UNBIND:
            out.append(codec.resp_for(pdu, 0))
            conn.closing = True
        elif cid & 0x80000000:
            pass                               # responses to our enquire_link etc.
        elif conn.bind_type is None:
            out.append(codec.resp_for(pdu, codec.Status.ESME_RINVBNDSTS))
        else:
            self.stats["generic_nacks"] += 1
            out.append(codec.resp_for(pdu, codec.Status.ESME_RINVCMDID))

    def _on_bind(self, conn: _Conn, pdu, out: list) -> None:
        C, S, cfg = codec.CommandId, codec.Status, self.cfg
        kind = {C.BIND_TRANSCEIVER: "transceiver", C.BIND_TRANSMITTER: "transmitter",
                C.BIND_RECEIVER: "receiver"}[pdu.command_id]
        status = 0
        if conn.bind_type is not None:
            status = S.ESME_RALYBND
        elif cfg.system_id is not None and pdu.system_id != cfg.system_id:
            status = S.ESME_RINVSYSID
        elif cfg.password is not None and pdu.password != cfg.password:
            status = S.ESME_RINVPASWD
        resp = codec.resp_for(pdu, status)
        resp.system_id = "smsc-sim"
        out.append(resp)
        if status:
            self.stats["bind_failures"] += 1
            return
        conn.bind_type, conn.system_id = kind, pdu.system_id
        self.stats["binds"][kind] += 1
        if kind in _RX_BINDS:
            waiting = self._waiting_rx.pop(conn.system_id, None)
            for p in waiting or ():
                p.sequence_number = conn.next_seq()
                out.append(p)

    def _on_submit(self, conn: _Conn, pdu, now: float, out: list) -> None:
        cfg, stats = self.cfg, self.stats
        stats["submits"] += 1
        conn.submits += 1
        if now - self._rate_t >= 1.0:
            self._rate = self._rate_n / (now - self._rate_t) if self._rate_t else 0.0
            self._rate_t, self._rate_n = now, 0
        self._rate_n += 1
        if conn.bind_type not in ("transceiver", "transmitter"):
            out.append(codec.resp_for(pdu, codec.Status.ESME_RINVBNDSTS))
            return
        status, withhold = 0, False
        if cfg.throttle or cfg.msgqful or cfg.vendor_error or cfg.withhold:
            r = self.rng.random()
            for frac, st in ((cfg.throttle, codec.Status.ESME_RTHROTTLED),
                             (cfg.msgqful, codec.Status.ESME_RMSGQFUL),
                             (cfg.vendor_error, cfg.vendor_status), (cfg.withhold, -1)):
                if r < frac:
                    status = st
                    break
                r -= frac
            withhold = status == -1
        message_id = None
        if status == 0:
            self._msg_id += 1
            message_id = format(self._msg_id, "x")
        if cfg.record_submits:
            if len(self.submits) >= cfg.max_records:
                del self.submits[:len(self.submits) // 2]
            self.submits.append(SubmitRecord(
                now, pdu.source_addr, pdu.destination_addr, pdu.short_message,
                pdu.data_coding, pdu.esm_class, pdu.tlvs, message_id, conn.system_id, pdu))
        if not withhold:
            stats["resps"][status] += 1
            resp = codec.SubmitSmResp(pdu.sequence_number, command_status=status,
                                      message_id=message_id or "")
            if cfg.response_delay_ms:
                self._schedule(now + cfg.response_delay_ms / 1000, "conn", conn, resp)
            else:
                out.append(resp)
            rd = pdu.registered_delivery & 3
            if message_id and rd:
                self._make_dlr(conn, pdu, message_id, now, rd, out)
        if cfg.drop_after and conn.submits >= cfg.drop_after:
            conn.closing = True
            self.stats["drops"] += 1

    # ------------------------------------------------------------------ DLR / MO
    def _make_dlr(self, conn: _Conn, sub, message_id: str, now: float, rd: int,
                  out: list) -> None:
        states = self.cfg.dlr_states
        stat = self.rng.choices(list(states), weights=list(states.values()))[0] \
            if len(states) > 1 else next(iter(states))
        if rd == 2 and stat == "DELIVRD":
            return
        dlr = dlr_for(sub, message_id, stat, time.strftime("%y%m%d%H%M", time.gmtime()))
        self.stats["dlrs_sent"] += 1
        delay = self.cfg.dlr_delay_ms / 1000 + self.cfg.response_delay_ms / 1000
        if delay <= 0 and conn.bind_type == "transceiver":
            dlr.sequence_number = conn.next_seq()
            out.append(dlr)
        else:
            self._schedule(now + delay, "rx", conn.system_id, dlr)

    def inject_mo(self, source: str, dest: str, text: str, parts: int = 1,
                  system_id: str | None = None) -> int:
        """Send an MO (deliver_sm) now; ``parts`` > 1 splits it with an 8-bit UDH."""
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        pdus = mo_pdus(source, dest, text, parts, self._mo_ref)
        self.stats["mo_sent"] += 1
        now = trio.current_time()
        for p in pdus:
            self._schedule(now, "rx", system_id, p)
        return len(pdus)

    # ------------------------------------------------------------------ timers
    def _schedule(self, due: float, kind: str, target, pdu) -> None:
        heapq.heappush(self._timers, (due, next(self._timer_n), kind, target, pdu))
        self._timer_wake.set()

    def _rx_conn(self, system_id: str | None) -> _Conn | None:
        cands = [c for c in self._conns if c.bind_type in _RX_BINDS and not c.closing
                 and (system_id is None or c.system_id == system_id)]
        if not cands:
            return None
        cands.sort(key=lambda c: c.id)
        return cands[next(self._rr) % len(cands)]

    async def _timer_task(self) -> None:
        while True:
            if not self._timers:
                self._timer_wake = trio.Event()
                await self._timer_wake.wait()
                continue
            now = trio.current_time()
            due = self._timers[0][0]
            if due > now:
                self._timer_wake = trio.Event()
                with trio.move_on_after(due - now):
                    await self._timer_wake.wait()
                continue
            while self._timers and self._timers[0][0] <= now:
                _, _, kind, target, pdu = heapq.heappop(self._timers)
                conn = target if kind == "conn" else self._rx_conn(target)
                if conn is None or conn not in self._conns:
                    if kind == "rx":
                        w = self._waiting_rx.setdefault(target, [])
                        if len(w) < 100_000:
                            w.append(pdu)
                    continue
                if pdu.command_id != codec.CommandId.SUBMIT_SM_RESP:
                    pdu.sequence_number = conn.next_seq()
                conn.queue([pdu])

    # ------------------------------------------------------------------ control
    def set_faults(self, **knobs) -> None:
        for k, v in knobs.items():
            if k not in FAULT_KNOBS:
                raise ValueError(f"unknown fault knob {k!r}")
            if k == "dlr_states" and isinstance(v, str):
                v = parse_dlr_states(v)
            setattr(self.cfg, k, v)

    def faults(self) -> dict:
        return {k: getattr(self.cfg, k) for k in FAULT_KNOBS}

    def drop_all(self) -> int:
        """Close every connection now (no unbind); returns how many."""
        n = len(self._conns)
        for c in list(self._conns):
            c.scope.cancel()
        self.stats["drops"] += n
        return n

    def set_down(self, down: bool) -> None:
        """Down: close every connection and refuse new ones until set_down(False)."""
        self._down = down
        if down:
            self.drop_all()

    @property
    def bound_count(self) -> int:
        return sum(1 for c in self._conns if c.bind_type)

    def stats_snapshot(self) -> dict:
        s = dict(self.stats)
        s["binds"] = dict(s["binds"])
        s["resps"] = {f"0x{k:08x}": v for k, v in s["resps"].items()}
        s["deliver_resps"] = {f"0x{k:08x}": v for k, v in s["deliver_resps"].items()}
        s["bound"] = self.bound_count
        now = trio.current_time()
        rate = self._rate
        if self._rate_t and now - self._rate_t >= 1.0:
            rate = self._rate_n / (now - self._rate_t)
        s["rate"] = round(rate, 1)
        s["down"] = self._down
        return s


def add_arguments(parser) -> None:
    """CLI options of ``gateway smsc-sim`` (see gateway.testing.smsc_control)."""
    from gateway.testing.smsc_control import add_arguments as _add
    _add(parser)


async def run_from_args(args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the simulator described by parsed CLI ``args`` until cancelled."""
    from gateway.testing.smsc_control import run_from_args as _run
    await _run(args, task_status=task_status)


def main(argv: list[str] | None = None) -> int:
    """``gateway smsc-sim`` entry point (see gateway.testing.smsc_control)."""
    from gateway.testing.smsc_control import main as _main
    return _main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
