"""JSON control port and command line of the SMSC simulator (``gateway smsc-sim``).

Owns: the HTTP endpoints that drive a running :class:`SmscSimulator` from tests, benches
and demos, and the CLI (``add_arguments``, ``run_from_args``, ``main``).

Endpoints (JSON in and out; form-encoded bodies are accepted too):
- ``GET /stats``          counters, fault knobs, bound connections, submit rate
- ``GET /submits?limit=N`` the last N submit records (no PDU objects)
- ``POST /mo``            ``{"from", "to", "text", "parts": 1, "system_id": null}``
- ``POST /faults``        any of ``throttle``, ``msgqful``, ``vendor_error``,
                          ``vendor_status``, ``withhold``, ``response_delay_ms``,
                          ``drop_after``, ``dlr_delay_ms``, ``dlr_states``; returns them all
- ``POST /drop``          close every SMPP connection now
- ``POST /down``          ``{"down": true|false}`` refuse/accept connections

Error handling: a bad request gets 400 with ``{"error": ...}``; nothing is retried.
"""

from __future__ import annotations

import argparse

import orjson
import trio

from gateway.testing.smsc import SimConfig, SmscSimulator
from gateway.testing.smsc_pdus import parse_dlr_states

_INT_KNOBS = {"vendor_status", "drop_after"}


def _body(req) -> dict:
    if not req.body:
        return {k: v[-1] for k, v in req.query_params().items()}
    if req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {k: v[-1] for k, v in req.form().items()}
    data = orjson.loads(req.body)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _knob(name: str, value):
    if name == "dlr_states":
        return parse_dlr_states(value) if isinstance(value, str) else dict(value)
    if value is None or value == "":
        return None if name == "drop_after" else 0
    if name in _INT_KNOBS:
        return int(value, 0) if isinstance(value, str) else int(value)
    return float(value)


def make_handler(sim: SmscSimulator):
    """The control port's request handler (``gateway.io.http_server`` Handler)."""
    from gateway.io.http_server import Response

    async def handle(req):
        try:
            return _route(req)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            return Response.json({"error": str(exc)}, status=400)

    def _route(req):
        path, method = req.path.rstrip("/") or "/", req.method
        if path == "/stats" and method == "GET":
            snap = sim.stats_snapshot()
            snap["faults"] = sim.faults()
            return Response.json(snap)
        if path == "/submits" and method == "GET":
            limit = int(req.query_params().get("limit", ["100"])[-1])
            recs = sim.submits[-limit:] if limit > 0 else []
            return Response.json([{
                "time": r.time, "source": r.source, "dest": r.dest,
                "short_message": r.short_message.hex(), "data_coding": r.data_coding,
                "esm_class": r.esm_class, "message_id": r.message_id,
                "system_id": r.system_id} for r in recs])
        if method != "POST":
            return Response.json({"error": "not found"}, status=404)
        body = _body(req)
        if path == "/mo":
            n = sim.inject_mo(str(body["from"]), str(body["to"]), str(body["text"]),
                              parts=int(body.get("parts", 1)), system_id=body.get("system_id"))
            return Response.json({"pdus": n})
        if path == "/faults":
            sim.set_faults(**{k: _knob(k, v) for k, v in body.items()})
            return Response.json(sim.faults())
        if path == "/drop":
            return Response.json({"dropped": sim.drop_all()})
        if path == "/down":
            down = body.get("down", True)
            sim.set_down(down if isinstance(down, bool) else str(down).lower() in ("1", "true"))
            return Response.json({"down": sim.stats_snapshot()["down"]})
        return Response.json({"error": "not found"}, status=404)

    return handle


async def serve_control(sim: SmscSimulator, host: str, port: int,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    from gateway.io.http_server import HttpServer
    server = HttpServer(make_handler(sim), host, port)
    await server.serve(task_status=task_status)


# ---------------------------------------------------------------------- CLI
def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None


def _states(text: str) -> dict:
    try:
        return parse_dlr_states(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--listen", type=_hostport, default=("127.0.0.1", 2775), metavar="HOST:PORT",
      help="SMPP listen address (default 127.0.0.1:2775)")
    a("--system-id", default=None, help="accept only this system_id (default: any)")
    a("--password", default=None, help="accept only this password (default: any)")
    a("--dlr-delay-ms", type=float, default=0.0, help="delay before each DLR")
    a("--dlr-states", type=_states, default={"DELIVRD": 1.0}, metavar="STATE=W,...",
      help="final DLR states and weights, e.g. DELIVRD=0.9,UNDELIV=0.1")
    a("--throttle", type=float, default=0.0, help="fraction answered ESME_RTHROTTLED")
    a("--msgqful", type=float, default=0.0, help="fraction answered ESME_RMSGQFUL")
    a("--vendor-error", type=float, default=0.0, help="fraction answered --vendor-status")
    a("--vendor-status", type=lambda s: int(s, 0), default=0x400)
    a("--withhold", type=float, default=0.0, help="fraction of submits never answered")
    a("--response-delay-ms", type=float, default=0.0)
    a("--drop-after", type=int, default=None, help="close each connection after N submits")
    a("--seed", type=int, default=1)
    a("--no-record", action="store_true", help="do not keep submit records (benches)")
    a("--control", type=_hostport, default=None, metavar="HOST:PORT",
      help="JSON control port (stats, MO injection, faults)")


def config_from_args(args) -> SimConfig:
    host, port = args.listen
    cfg = SimConfig(host=host, port=port, system_id=args.system_id, password=args.password,
                    dlr_delay_ms=args.dlr_delay_ms, dlr_states=args.dlr_states,
                    throttle=args.throttle, msgqful=args.msgqful,
                    vendor_error=args.vendor_error, vendor_status=args.vendor_status,
                    withhold=args.withhold, response_delay_ms=args.response_delay_ms,
                    drop_after=args.drop_after, seed=args.seed,
                    record_submits=not args.no_record)
    if args.control:
        cfg.control_host, cfg.control_port = args.control
    return cfg


async def run_from_args(args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    sim = SmscSimulator(config_from_args(args))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sim.serve)
        ctl = f", control on {sim.cfg.control_host}:{sim.control_port}" \
            if sim.control_port is not None else ""
        print(f"smsc-sim listening on {sim.cfg.host}:{port}{ctl}", flush=True)
        task_status.started(sim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway smsc-sim",
                                     description="SMPP 3.4 SMSC simulator")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        trio.run(run_from_args, args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
