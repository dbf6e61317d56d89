"""The SMSC simulator checked by code we did not write (smpplib) and through its control port."""

from __future__ import annotations

import argparse
import json
import urllib.request

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import trio

from gateway import codec
from gateway.testing import smsc_control
from gateway.testing.smsc import SimConfig, SmscSimulator, parse_dlr_states

pytestmark = pytest.mark.codec


def smpplib_roundtrip(port: int, password: str, n: int) -> dict:
    """Blocking ESME (smpplib): bind, submit n with DLR requested, read until n DLRs."""
    out = {"resp_ids": [], "dlrs": []}
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)

    def on_sent(pdu, **kw):
        out["resp_ids"].append(pdu.message_id.decode())

    def on_recv(pdu, **kw):
        out["dlrs"].append((pdu.esm_class, pdu.short_message, pdu.receipted_message_id,
                            pdu.message_state))

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_recv)
    client.connect()
    try:
        client.bind_transceiver(system_id="gw", password=password)
        for i in range(n):
            client.send_message(source_addr_ton=1, source_addr="15005550006",
                                dest_addr_ton=1, destination_addr=f"1555000{i:04d}",
                                short_message=b"hello world", registered_delivery=1)
        while len(out["dlrs"]) < n or len(out["resp_ids"]) < n:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return out


async def test_smpplib_binds_submits_and_gets_dlr():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig(system_id="gw", password="pw"))
            port = await n.start(sim.serve)
            out = await trio.to_thread.run_sync(smpplib_roundtrip, port, "pw", 3)
            assert len(set(out["resp_ids"])) == 3
            for esm_class, text, rid, state in out["dlrs"]:
                assert esm_class == 0x04
                rid = rid.decode() if isinstance(rid, bytes) else rid
                assert rid in out["resp_ids"]
                assert f"id:{rid} ".encode() in text and b"stat:DELIVRD" in text
                assert state == 2
            assert all(int(x, 16) for x in out["resp_ids"])      # hex ids
            rec = sim.submits[0]
            assert (rec.source, rec.dest, rec.short_message) == (
                "15005550006", "15550000000", b"hello world")
            assert rec.message_id == out["resp_ids"][0]
            n.cancel_scope.cancel()


async def test_smpplib_wrong_password_is_refused():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig(system_id="gw", password="pw"))
            port = await n.start(sim.serve)
            with pytest.raises(smpplib.exceptions.PDUError) as ei:
                await trio.to_thread.run_sync(smpplib_roundtrip, port, "nope", 1)
            assert ei.value.args[1] == codec.Status.ESME_RINVPASWD
            assert sim.stats["bind_failures"] == 1
            n.cancel_scope.cancel()


async def raw_session(port, pdus, want):
    """Send PDUs on a raw socket, collect ``want`` answers."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(codec.encode_many(pdus))
    dec, got = codec.Decoder(), []
    while len(got) < want:
        got.extend(dec.feed(await stream.receive_some(65536)))
    await stream.aclose()
    return got


def _submit(seq, rd=1):
    return codec.SubmitSm(seq, source_addr="1", destination_addr="2", short_message=b"x",
                          registered_delivery=rd)


async def test_faults_vendor_error_undeliv_and_unknown_command():
    cfg = SimConfig(vendor_error=1.0, vendor_status=0x401)
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(cfg)
            port = await n.start(sim.serve)
            bind = codec.BindTransceiver(1, "a", "b")
            got = await raw_session(port, [bind, _submit(2), codec.QuerySm(3)], 3)
            assert [(p.sequence_number, p.command_status) for p in got] == [
                (1, 0), (2, 0x401), (3, codec.Status.ESME_RINVCMDID)]
            sim.set_faults(vendor_error=0.0, dlr_states="UNDELIV=1")
            got = await raw_session(port, [bind, _submit(2, rd=2)], 3)
            dlr = got[2]
            assert dlr.command_id == codec.CommandId.DELIVER_SM
            assert dlr.tlvs[codec.Tlv.MESSAGE_STATE] == 5
            assert dlr.tlvs[codec.Tlv.RECEIPTED_MESSAGE_ID] == got[1].message_id
            assert b"stat:UNDELIV" in dlr.short_message
            # registered_delivery=2 (failure only) and DELIVRD -> no DLR
            sim.set_faults(dlr_states={"DELIVRD": 1.0})
            before = sim.stats["dlrs_sent"]
            await raw_session(port, [bind, _submit(2, rd=2)], 2)
            assert sim.stats["dlrs_sent"] == before
            n.cancel_scope.cancel()


async def test_unbound_submit_refused_and_dlr_waits_for_receiver():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig())
            port = await n.start(sim.serve)
            [r] = await raw_session(port, [_submit(1)], 1)
            assert r.command_status == codec.Status.ESME_RINVBNDSTS
            tx = codec.BindTransmitter(1, "sys", "x")
            got = await raw_session(port, [tx, _submit(2)], 2)
            assert got[1].command_status == 0
            # the DLR was parked until a receiver of "sys" binds
            got = await raw_session(port, [codec.BindReceiver(1, "sys", "x")], 2)
            assert got[1].tlvs[codec.Tlv.RECEIPTED_MESSAGE_ID] == got[1].short_message[
                3:3 + len(got[1].tlvs[codec.Tlv.RECEIPTED_MESSAGE_ID])].decode()
            n.cancel_scope.cancel()


def _http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


async def test_control_port():
    pytest.importorskip("gateway.io.http_server")
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig(control_port=0))
            port = await n.start(sim.serve)
            base = f"http://127.0.0.1:{sim.control_port}"
            call = trio.to_thread.run_sync
            st, body = await call(_http, "POST", base + "/faults",
                                  {"throttle": 0.5, "dlr_states": "DELIVRD=0.5,UNDELIV=0.5"})
            assert st == 200 and body["throttle"] == 0.5
            assert sim.cfg.dlr_states == {"DELIVRD": 0.5, "UNDELIV": 0.5}
            got = await raw_session(port, [codec.BindTransceiver(1, "a", "b")], 1)
            assert got[0].command_status == 0
            st, body = await call(_http, "POST", base + "/mo",
                                  {"from": "1555", "to": "1500", "text": "hi", "parts": 1})
            assert body == {"pdus": 1}
            st, body = await call(_http, "GET", base + "/stats")
            assert body["mo_sent"] == 1 and body["binds"] == {"transceiver": 1}
            assert body["faults"]["throttle"] == 0.5
            st, body = await call(_http, "POST", base + "/drop", {})
            assert st == 200 and "dropped" in body
            with pytest.raises(urllib.error.HTTPError) as ei:
                await call(_http, "POST", base + "/faults", {"bogus": 1})
            assert ei.value.code == 400
            n.cancel_scope.cancel()


def test_cli_arguments_build_config():
    parser = argparse.ArgumentParser()
    smsc_control.add_arguments(parser)
    args = parser.parse_args(["--listen", "127.0.0.1:2776", "--system-id", "gw",
                              "--dlr-delay-ms", "50", "--dlr-states",
                              "DELIVRD=0.9,UNDELIV=0.1", "--throttle", "0.2",
                              "--control", "127.0.0.1:8099"])
    cfg = smsc_control.config_from_args(args)
    assert (cfg.host, cfg.port, cfg.system_id, cfg.password) == ("127.0.0.1", 2776, "gw", None)
    assert cfg.dlr_states == {"DELIVRD": 0.9, "UNDELIV": 0.1}
    assert (cfg.dlr_delay_ms, cfg.throttle, cfg.control_port) == (50.0, 0.2, 8099)
    with pytest.raises(ValueError):
        parse_dlr_states("NOPE=1")
