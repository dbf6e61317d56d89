"""``MediaLeg``: the interpreter's ``CallLeg`` over one SIP dialog and one RtpSession.

Owns: turning verbs into media (TTS and fetched audio played as paced RTP, RFC 4733
digits in and out, recording with silence/finish-key/max-length ends, the beep), the
answer/reject/hangup of the SIP side, and the audio bridge of ``<Dial>``
(``<Dial><Conference>`` is handed to the service's ``ConferenceHub``, ``<Enqueue>`` and
``<Dial><Queue>`` to its ``QueueHub``).

Rules:
- Every operation raises ``CallEnded`` once the SIP dialog has ended (BYE, CANCEL,
  timeout), also in the middle of a prompt: a watcher cancels whatever runs.
- ``<Say>`` that cannot be synthesized and ``<Play>`` that cannot be fetched are
  skipped and logged (Twilio logs 13227/11200 and carries on).
- ``reject("busy")`` answers 486, ``reject("rejected")`` 603 Decline.
- ``hangup()`` on an inbound call that was never answered answers first (Twilio: an
  empty document ends a *completed* call), then sends BYE.
- The bridge relays each 20 ms frame as it arrives (``RtpSession.on_audio`` ->
  ``relay``), transcoding when one side is PCMU and the other PCMA; digits are not
  forwarded.
"""

from __future__ import annotations

import logging
import math

import trio

from gateway.core import call as C
from gateway.voice import audio
from gateway.voice.interpreter import CallEnded, RecordResult

log = logging.getLogger("gateway.voice")

POLL_S = 0.05


class MediaLeg:
    def __init__(self, service, call: C.Call, rtp, sip_call, *, local_sdp: bytes = b"",
                 answered: bool = False) -> None:
        self.svc = service
        self.call = call
        self.rtp = rtp
        self.sip = sip_call
        self.local_sdp = local_sdp
        self.answered = answered
        self.ended = False
        self.hung_up_by_us = False
        self._ops: set[trio.CancelScope] = set()

    # -- lifetime -------------------------------------------------------------------
    async def watch(self) -> None:
        """Run in the call's nursery: marks the leg ended when the dialog ends."""
        await self.sip.ended.wait()
        self._end()

    def _end(self) -> None:
        self.ended = True
        for scope in list(self._ops):
            scope.cancel()

    async def guard(self, fn, *args, **kw):
        """Await ``fn(*args)``; ``CallEnded`` (and ``fn`` cancelled) once the call ends."""
        return await self._guard(fn, *args, **kw)

    async def _guard(self, fn, *args, **kw):
        if self.ended:
            raise CallEnded()
        scope = trio.CancelScope()
        self._ops.add(scope)
        try:
            with scope:
                return await fn(*args, **kw)
        finally:
            self._ops.discard(scope)
            if self.ended:
                raise CallEnded()

    # -- call control ---------------------------------------------------------------
    async def answer(self) -> None:
        if self.answered:
            return
        if self.ended:
            raise CallEnded()
        try:
            await self.sip.answer(self.local_sdp)
        except Exception as exc:             # CallFailed: the caller went away meanwhile
            log.info("call sid=%s answer failed: %s", self.call.sid, exc)
            self._end()
            raise CallEnded() from None
        self.answered = True
        self.svc.on_answered(self.call)

    async def reject(self, reason: str) -> None:
        if self.answered:
            await self.hangup()
            return
        if not self.ended:
            await self.sip.reject(486 if reason == "busy" else 603)
        self.svc.on_rejected(self.call, C.BUSY if reason == "busy" else C.NO_ANSWER)
        self._end()

    async def hangup(self) -> None:
        if self.ended:
            return
        if not self.answered and hasattr(self.sip, "answer"):
            try:
                await self.answer()
            except CallEnded:
                return
        self.hung_up_by_us = True
        await self.sip.hangup()
        self._end()

    # -- media ----------------------------------------------------------------------
    async def _play_ulaw(self, ulaw: bytes) -> None:
        await self._guard(self.rtp.play, ulaw)

    async def play_audio(self, ulaw: bytes) -> None:
        await self._play_ulaw(ulaw)

    async def say(self, text: str, voice: str, language: str) -> None:
        try:
            ulaw = await self._guard(self.svc.tts.synthesize, text, voice, language)
        except CallEnded:
            raise
        except Exception as exc:
            log.warning("call sid=%s <Say> skipped: %s", self.call.sid, exc)
            return
        await self._play_ulaw(ulaw)

    async def play(self, url: str) -> None:
        try:
            ulaw = await self._guard(audio.fetch, url, self.svc.gw.http_client)
        except CallEnded:
            raise
        except Exception as exc:
            log.warning("call sid=%s <Play> %s skipped: %s", self.call.sid, url, exc)
            return
        await self._play_ulaw(ulaw)

    async def send_digits(self, digits: str) -> None:
        try:
            await self._guard(self.rtp.send_digits, digits)
        except RuntimeError as exc:
            log.warning("call sid=%s digits not sent: %s", self.call.sid, exc)

    async def pause(self, seconds: float) -> None:
        await self._guard(trio.sleep, seconds)

    def clear_digits(self) -> None:
        while True:
            try:
                self.rtp.digits.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return

    async def next_digit(self, timeout: float | None) -> str | None:
        async def receive() -> str | None:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                return await self.rtp.digits.receive()
            return None
        return await self._guard(receive)

    async def record(self, *, timeout: float, finish_on_key: str, max_length: float,
                     play_beep: bool, trim: str) -> RecordResult:
        if play_beep:
            await self._play_ulaw(audio.beep())
        self.rtp.start_recording()
        start = trio.current_time()
        digits = ""
        try:
            while True:
                key = await self.next_digit(POLL_S)
                if key is not None and key in finish_on_key:
                    digits = key
                    break
                if timeout > 0 and self.rtp.silence_for() >= timeout:
                    break
                if trio.current_time() - start >= max_length:
                    break
        except CallEnded:
            digits = "hangup"
        pcm = self.rtp.stop_recording()
        if trim == "trim-silence" and digits != "hangup" and timeout > 0:
            pcm = pcm[: max(0, len(pcm) - int(timeout * 16000))]
        seconds = len(pcm) // 16000
        if seconds <= 0:
            return RecordResult(None, None, 0, digits)
        try:
            with trio.CancelScope(shield=True):
                sid, url = await self.svc.save_recording(self.call, audio.wav_bytes(pcm),
                                                         seconds)
        except Exception as exc:                  # disk full, store down: nothing recorded
            log.error("call sid=%s recording not saved: %s", self.call.sid, exc)
            return RecordResult(None, None, 0, digits)
        return RecordResult(url, sid, seconds, digits)

    async def dial(self, numbers, *, timeout: float, caller_id: str, time_limit: float,
                   hangup_on_star: bool, record: str):
        return await self.svc.dial(self, numbers, timeout=timeout, caller_id=caller_id,
                                   time_limit=time_limit, hangup_on_star=hangup_on_star)

    async def conference(self, room, *, time_limit: float, hangup_on_star: bool):
        return await self.svc.conference(self, room, time_limit=time_limit,
                                         hangup_on_star=hangup_on_star)

    async def enqueue(self, verb):
        return await self.svc.enqueue(self, verb)

    async def dial_queue(self, queue, *, timeout: float, time_limit: float,
                         hangup_on_star: bool):
        return await self.svc.dial_queue(self, queue, timeout=timeout, time_limit=time_limit,
                                         hangup_on_star=hangup_on_star)


async def bridge(a: MediaLeg, b: MediaLeg, *, time_limit: float, hangup_on_star: bool) -> None:
    """Relay audio between two answered legs frame by frame (each 20 ms frame is sent on
    as it arrives, transcoded PCMU<->PCMA when the legs differ) until either ends,
    ``time_limit`` passes or (``hangup_on_star``) the first leg presses ``*``."""
    def relay(dst: MediaLeg):
        def on_audio(payload: bytes, alaw: bool) -> None:
            if not dst.ended:
                dst.rtp.relay(payload, alaw)
        return on_audio

    async def star() -> None:
        while True:
            if await a.rtp.digits.receive() == "*":
                return

    async def ended(leg: MediaLeg) -> None:
        await leg.sip.ended.wait()

    a.rtp.on_audio, b.rtp.on_audio = relay(b), relay(a)
    try:
        async with trio.open_nursery() as n:
            async def first(fn, *args) -> None:
                await fn(*args)
                n.cancel_scope.cancel()
            n.cancel_scope.deadline = trio.current_time() + time_limit
            n.start_soon(first, ended, a)
            n.start_soon(first, ended, b)
            if hangup_on_star:
                n.start_soon(first, star)
    finally:
        a.rtp.on_audio = b.rtp.on_audio = None
