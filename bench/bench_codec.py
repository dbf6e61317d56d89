"""SMPP PDU codec benchmark: the Cython twin, the pure-Python twin, aiosmpplib and
smpplib on the same bytes, plus GSM 03.38 160-char rows (gateway.codec.gsm vs
aiosmpplib's GSM7BitCodec) when that module exists.

Method (reference/perf.md): each case is calibrated so one sample takes ~25 ms; every
round runs all cases in a shuffled order; 5 rounds; the median (min-max) ops/s is
printed with ratios against smpplib and aiosmpplib from the same run. Whole run < 60 s.
Run: ``.venv/bin/python bench/bench_codec.py [--rounds N]``. Never asserted in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.codec import smpp_py  # noqa: E402

try:
    from gateway.codec import _smpp as cy
except ImportError:
    cy = None
try:
    from gateway.codec import gsm as our_gsm
except ImportError:
    our_gsm = None

import aiosmpplib
import smpplib.smpp as smpplib_smpp
from aiosmpplib import protocol as aio_proto

TEXT = "Your verification code is 482913. Thx!!"  # 40 chars
DLR_TEXT = (b"id:0a1b2c3d4e sub:001 dlvrd:001 submit date:2401011200 "
            b"done date:2401011201 stat:DELIVRD err:000 text:Your verificatio")
GSM_160 = ("Hello £ é Δ @ ñ ü ß Ñ " * 8)[:160]


def sm_kwargs():
    return dict(source_addr_ton=1, source_addr_npi=1, source_addr="15005550006",
                dest_addr_ton=1, dest_addr_npi=1, destination_addr="15551234567",
                registered_delivery=1, short_message=TEXT.encode())


SM_WIRE = smpp_py.encode(smpp_py.SubmitSm(7, **sm_kwargs()))
DLR_WIRE = smpp_py.encode(smpp_py.DeliverSm(
    8, source_addr_ton=1, source_addr_npi=1, source_addr="15551234567", dest_addr_ton=1,
    dest_addr_npi=1, destination_addr="15005550006", esm_class=4, short_message=DLR_TEXT,
    tlvs={0x001E: "0a1b2c3d4e", 0x0427: 2, 0x0423: b"\x03\x00\x00"}))
RESP_WIRE = smpp_py.encode(smpp_py.SubmitSmResp(7, 0, "0a1b2c3d4e"))


def ours(m):
    SubmitSm, SubmitSmResp, decode, encode = m.SubmitSm, m.SubmitSmResp, m.decode, m.encode
    kw = sm_kwargs()
    a, b, c = kw["source_addr"], kw["destination_addr"], kw["short_message"]
    return {
        "submit_sm decode": lambda: decode(SM_WIRE),
        "submit_sm encode": lambda: encode(SubmitSm(
            7, source_addr_ton=1, source_addr_npi=1, source_addr=a, dest_addr_ton=1,
            dest_addr_npi=1, destination_addr=b, registered_delivery=1, short_message=c)),
        "deliver_sm DLR decode": lambda: decode(DLR_WIRE),
        "submit_sm_resp decode": lambda: decode(RESP_WIRE),
        "submit_sm_resp encode": lambda: encode(SubmitSmResp(7, 0, "0a1b2c3d4e")),
    }


def aio_cases():
    def dec(wire):
        return aio_proto.SubmitSm.from_pdu(wire, aio_proto.SmppMessage.parse_header(wire))

    def dec_dlr(wire):
        return aio_proto.DeliverSm.from_pdu(wire, aio_proto.SmppMessage.parse_header(wire))

    def dec_resp(wire):
        return aio_proto.SubmitSmResp.from_pdu(wire, aio_proto.SmppMessage.parse_header(wire))

    src = aiosmpplib.PhoneNumber("15005550006", aiosmpplib.TON(1), aiosmpplib.NPI(1))
    dst = aiosmpplib.PhoneNumber("15551234567", aiosmpplib.TON(1), aiosmpplib.NPI(1))
    return {
        "submit_sm decode": lambda: dec(SM_WIRE),
        "submit_sm encode": lambda: aiosmpplib.SubmitSm(
            sequence_num=7, short_message=TEXT, source=src, destination=dst,
            registered_delivery=1).pdu(),
        "deliver_sm DLR decode": lambda: dec_dlr(DLR_WIRE),
        "submit_sm_resp decode": lambda: dec_resp(RESP_WIRE),
        "submit_sm_resp encode": lambda: aiosmpplib.SubmitSmResp(
            sequence_num=7, message_id="0a1b2c3d4e").pdu(),
    }


def smpplib_cases():
    def make(name, **kw):
        pdu = smpplib_smpp.make_pdu(name, sequence=0, **kw)
        pdu.sequence = 7
        return pdu.generate()

    return {
        "submit_sm decode": lambda: smpplib_smpp.parse_pdu(SM_WIRE, sequence=0),
        "submit_sm encode": lambda: make(
            "submit_sm", source_addr_ton=1, source_addr_npi=1, source_addr="15005550006",
            dest_addr_ton=1, dest_addr_npi=1, destination_addr="15551234567",
            registered_delivery=1, short_message=TEXT.encode()),
        "deliver_sm DLR decode": lambda: smpplib_smpp.parse_pdu(DLR_WIRE, sequence=0),
        "submit_sm_resp decode": lambda: smpplib_smpp.parse_pdu(RESP_WIRE, sequence=0),
        "submit_sm_resp encode": lambda: make("submit_sm_resp", message_id="0a1b2c3d4e"),
    }


def gsm_cases():
    if our_gsm is None:
        return {}, {}
    aio_codec = aiosmpplib.GSM7BitCodec()
    packed = our_gsm.encode(GSM_160)
    assert aio_codec.encode(GSM_160)[0] == packed, "GSM codecs disagree on the bytes"
    assert aio_codec.decode(packed)[0] == our_gsm.decode(packed) == GSM_160
    return ({"GSM 160 encode": lambda: our_gsm.encode(GSM_160),
             "GSM 160 decode": lambda: our_gsm.decode(packed)},
            {"GSM 160 encode": lambda: aio_codec.encode(GSM_160),
             "GSM 160 decode": lambda: aio_codec.decode(packed)})


def calibrate(fn, target=0.025):
    n = 1
    while True:
        t = timeit.timeit(fn, number=n)
        if t >= target / 4:
            return max(1, int(n * target / t))
        n *= 4


def fmt(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    impls = {}
    if cy is not None:
        impls["cython"] = ours(cy)
    impls["pure python"] = ours(smpp_py)
    impls["aiosmpplib"] = aio_cases()
    impls["smpplib"] = smpplib_cases()
    g_ours, g_aio = gsm_cases()
    if g_ours:
        impls[f"gateway.codec.gsm ({our_gsm.BACKEND})"] = g_ours
        impls["aiosmpplib"].update(g_aio)
    cases = [(impl, op, fn) for impl, ops in impls.items() for op, fn in ops.items()]
    numbers = {(impl, op): calibrate(fn) for impl, op, fn in cases}
    samples = {(impl, op): [] for impl, op, _ in cases}
    for _ in range(args.rounds):
        random.shuffle(cases)
        for impl, op, fn in cases:
            n = numbers[impl, op]
            samples[impl, op].append(n / timeit.timeit(fn, number=n))
    print(f"SMPP codec benchmark: ops/s, median (min-max) of {args.rounds} rounds; "
          f"submit_sm {len(SM_WIRE)} B, DLR deliver_sm {len(DLR_WIRE)} B")
    ops = list(dict.fromkeys(op for ops_ in impls.values() for op in ops_))
    for op in ops:
        print(f"\n{op}")
        base = {lib: statistics.median(samples[lib, op]) for lib in ("smpplib", "aiosmpplib")
                if (lib, op) in samples}
        for impl in impls:
            if (impl, op) not in samples:
                continue
            s = samples[impl, op]
            med = statistics.median(s)
            ratios = "  ".join(f"{med / v:6.1f}x {lib}" for lib, v in base.items())
            print(f"  {impl:28s} {fmt(med):>8s} ({fmt(min(s))}-{fmt(max(s))})  {ratios}")


if __name__ == "__main__":
    main()
