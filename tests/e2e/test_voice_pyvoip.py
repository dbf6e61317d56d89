"""Voice interop with pyVoIP 1.6.8 as an independent SIP user agent.

pyVoIP is a registrar-centric softphone (``reference/sip.md`` §1): it REGISTERs with its
configured server before anything else and sends every request and response there. Here
that server is the gateway's SIP listener (``accept_register`` on: REGISTER gets a 200
that binds nothing), and pyVoIP calls the configured number. The gateway fetches the
voice webhook, answers with TwiML, plays ``<Say>`` as PCMU that pyVoIP decodes, records
what pyVoIP sends with ``<Record>`` (served at RecordingUrl), and hangs up with BYE.

pyVoIP runs in worker threads (its own model); every wait there has a deadline and the
phone is stopped in ``finally``. Skipped when pyVoIP or espeak-ng is missing.
"""

from __future__ import annotations

import base64
import math
import shutil
import time

import pytest
import trio

from gateway.core import call as C

from .harness import ACCOUNT, TOKEN
from .voice_harness import NUMBER, free_udp_port, voice_env

VoIP = pytest.importorskip("pyVoIP.VoIP", reason="pyVoIP not installed (pip install pyVoIP==1.6.8)")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng not installed (needed for <Say>)")


def _wait(pred, deadline: float, what: str):
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.01)          # pyVoIP is thread-polled itself; no event to wait on
    raise TimeoutError(what)


def _tone_8bit(seconds: float) -> bytes:
    """A 440 Hz tone in pyVoIP's audio format (8 kHz, 8-bit unsigned linear)."""
    n = int(8000 * seconds)
    return bytes(128 + int(90 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(n))


def _phone_call(sip_port: int, *, talk: bytes = b"", budget: float = 20.0) -> dict:
    """Runs in a worker thread: register, call NUMBER, wait for the answer, listen (and
    talk), wait for the gateway's BYE. Returns what pyVoIP saw."""
    deadline = time.monotonic() + budget
    rtp = free_udp_port()
    phone = VoIP.VoIPPhone("127.0.0.1", sip_port, "15557654321", "pw", myIP="127.0.0.1",
                           sipPort=free_udp_port(), rtpPortLow=rtp, rtpPortHigh=rtp)
    phone.sip.register_timeout = 3          # its default 30 s would outlive the test
    seen = {"states": [], "heard": 0}
    try:
        phone.start()
        seen["registered"] = phone.get_status() == VoIP.PhoneStatus.REGISTERED
        call = phone.call(NUMBER.lstrip("+"))
        _wait(lambda: call.state == VoIP.CallState.ANSWERED, deadline, "never answered")
        seen["states"].append(call.state.value)
        if talk:
            call.write_audio(talk)
        while call.state == VoIP.CallState.ANSWERED and time.monotonic() < deadline:
            chunk = call.read_audio(160, blocking=False)
            seen["heard"] += sum(1 for b in chunk if abs(b - 128) > 8)
            time.sleep(0.01)
        _wait(lambda: call.state == VoIP.CallState.ENDED, deadline, "no BYE")
        seen["states"].append(call.state.value)
    finally:
        phone.stop()
    return seen


async def _run_phone(env, **kw) -> dict:
    return await trio.to_thread.run_sync(lambda: _phone_call(env.sip_port, **kw),
                                         abandon_on_cancel=True)


async def _final_calls(env):
    with trio.fail_after(10):
        while True:
            calls = await env.gw.voice.list_calls(ACCOUNT)
            if calls and all(c.final for c in calls):
                return calls
            await trio.sleep(0.02)


async def test_pyvoip_calls_number_gateway_says_and_hangs_up(tmp_path):
    with trio.fail_after(30):
        async with voice_env(tmp_path, [], accept_register=True) as env:
            env.sink.replies["/voice"] = (200, "text/xml", (
                b"<Response><Say>Hello from the gateway</Say><Hangup/></Response>"))
            seen = await _run_phone(env)
            assert seen["registered"]
            assert seen["states"] == ["ANSWERED", "ENDED"]      # answered, then our BYE
            assert seen["heard"] > 200          # non-silent samples decoded from <Say>
            (hit,) = env.sink.at("/voice")
            assert hit.form["To"] == NUMBER and hit.form["From"] == "+15557654321"
            assert hit.form["CallStatus"] == "ringing" and hit.form["Direction"] == "inbound"
            (call,) = await _final_calls(env)
            assert call.status == C.COMPLETED and call.sid == hit.form["CallSid"]


async def test_pyvoip_audio_is_recorded_and_served(tmp_path):
    """pyVoIP talks into ``<Record>``; the WAV is fetched from RecordingUrl with Basic
    auth (401 without)."""
    with trio.fail_after(30):
        async with voice_env(tmp_path, [], accept_register=True) as env:
            env.sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Record maxLength="2" timeout="0" playBeep="false" '
                b'action="/recorded"/></Response>'))
            env.sink.replies["/recorded"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            seen = await _run_phone(env, talk=_tone_8bit(3.0))
            assert seen["states"] == ["ANSWERED", "ENDED"]
            (rec,) = env.sink.at("/recorded")
            url = rec.form["RecordingUrl"]
            sid = rec.form["RecordingSid"]
            assert sid.startswith("RE") and url.endswith(f"/Recordings/{sid}")
            assert rec.form["RecordingDuration"] in ("1", "2")
            path = f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.wav"
            status, _, wav = await _get(env, path, auth=True)
            assert status == 200 and wav[:4] == b"RIFF"
            from gateway.voice import audio
            pcm, rate = audio.parse_wav(wav)
            assert rate == 8000 and len(pcm) >= 16000          # >= 1 s of 8 kHz PCM16
            loud = sum(1 for i in range(0, len(pcm), 2)
                       if abs(int.from_bytes(pcm[i:i + 2], "little", signed=True)) > 2000)
            assert loud > 4000                                  # the tone, not silence
            assert (await _get(env, path, auth=False))[0] == 401
            assert (tmp_path / "recordings" / f"{sid}.wav").read_bytes() == wav
            client = env.client()                       # the twilio library as the oracle
            (listed,) = await trio.to_thread.run_sync(lambda: client.recordings.list())
            assert listed.sid == sid and listed.call_sid == rec.form["CallSid"]
            assert listed.duration == rec.form["RecordingDuration"]
            fetched = await trio.to_thread.run_sync(lambda: client.recordings(sid).fetch())
            assert fetched.status == "completed" and fetched.source == "RecordVerb"
            by_call = await trio.to_thread.run_sync(
                lambda: client.calls(rec.form["CallSid"]).recordings.list())
            assert [r.sid for r in by_call] == [sid]
            assert await trio.to_thread.run_sync(lambda: client.recordings(sid).delete())
            assert not (tmp_path / "recordings" / f"{sid}.wav").exists()


async def _get(env, path: str, *, auth: bool) -> tuple[int, dict, bytes]:
    from gateway.io.http_client import HttpClient
    headers = []
    if auth:
        token = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        headers.append(("Authorization", f"Basic {token}"))
    client = HttpClient()
    try:
        resp = await client.request("GET", env.base_url + path, headers=headers)
    finally:
        await client.aclose()
    return resp.status, resp.headers, resp.body


def _callee(sip_port: int, phone_port: int, started, budget: float = 15.0) -> dict:
    """Runs in a worker thread: pyVoIP as the carrier trunk's far end; answers the
    gateway's INVITE, listens until the gateway's BYE. ``started()`` once registered."""
    deadline = time.monotonic() + budget
    rtp = free_udp_port()
    seen = {"states": [], "heard": 0, "to": None}
    calls = []
    phone = VoIP.VoIPPhone("127.0.0.1", sip_port, "15551230000", "pw", myIP="127.0.0.1",
                           sipPort=phone_port, rtpPortLow=rtp, rtpPortHigh=rtp,
                           callCallback=calls.append)
    phone.sip.register_timeout = 3
    try:
        phone.start()
        started()
        _wait(lambda: calls, deadline, "no INVITE")
        call = calls[0]
        seen["to"] = call.request.headers["To"]["number"]
        call.answer()
        _wait(lambda: call.state == VoIP.CallState.ANSWERED, deadline, "answer failed")
        seen["states"].append(call.state.value)
        while call.state == VoIP.CallState.ANSWERED and time.monotonic() < deadline:
            chunk = call.read_audio(160, blocking=False)
            seen["heard"] += sum(1 for b in chunk if abs(b - 128) > 8)
            time.sleep(0.01)
        _wait(lambda: call.state == VoIP.CallState.ENDED, deadline, "no BYE")
        seen["states"].append(call.state.value)
    finally:
        phone.stop()
    return seen


async def test_gateway_calls_pyvoip_through_the_trunk(tmp_path):
    """Calls API create -> INVITE to pyVoIP (the carrier trunk), pyVoIP answers and hears
    ``<Say>``, our BYE ends it, the status callback says completed."""
    phone_port = free_udp_port()
    with trio.fail_after(30):
        async with voice_env(tmp_path, [("pv", phone_port)], setup_timeout=4.0,
                             accept_register=True) as env:
            token = trio.lowlevel.current_trio_token()
            registered = trio.Event()

            def started() -> None:
                trio.from_thread.run_sync(registered.set, trio_token=token)

            async with trio.open_nursery() as n:
                result: dict = {}

                async def callee() -> None:
                    result.update(await trio.to_thread.run_sync(
                        lambda: _callee(env.sip_port, phone_port, started),
                        abandon_on_cancel=True))
                n.start_soon(callee)
                await registered.wait()
                client = env.client()
                made = await trio.to_thread.run_sync(lambda: client.calls.create(
                    to="+15551230000", from_=NUMBER,
                    twiml="<Response><Say>Hello from the gateway</Say><Hangup/></Response>",
                    status_callback=env.sink.url("/out-status")))
            assert result["states"] == ["ANSWERED", "ENDED"]
            assert result["heard"] > 200                # the <Say>, decoded by pyVoIP
            assert result["to"] == "15551230000"
            hits = await env.sink.wait_for(
                lambda: [h for h in env.sink.at("/out-status")
                         if h.form["CallStatus"] == "completed"])
            assert hits[0].form["CallSid"] == made.sid
            fetched = await trio.to_thread.run_sync(lambda: client.calls(made.sid).fetch())
            assert fetched.status == "completed" and int(fetched.duration) >= 1
