"""``<Dial><Conference>``: rooms where every participant hears the sum of the others.

Owns: ``ConferenceHub`` (rooms by (account SID, friendly name); ``join`` puts a call leg in
a room until it leaves) and ``Room`` (its ``Mixer``, the one 20 ms tick task per room that
sends each participant its mix, join/leave/end semantics and status callbacks).

Rules (Twilio's ``<Conference>`` noun):
- A room starts when a participant with ``startConferenceOnEnter`` (default true) is in
  it; before that nobody's audio is mixed (everyone hears silence). ``waitUrl`` hold
  music is not played: a waiting or lone participant hears silence.
- ``muted`` participants hear the room, nobody hears them.
- ``beep`` (default true; ``onEnter``/``onExit``/``false``): a short tone to the room when
  someone joins/leaves while others are in it.
- A participant leaves when its call hangs up, its ``<Dial timeLimit>`` passes, it presses
  ``*`` with ``hangupOnStar``, or the room ends. The room ends when a participant with
  ``endConferenceOnExit`` leaves (every other participant leaves too and goes on with its
  TwiML) or the last one leaves. A name can be reused afterwards (a new room, new SID).
- ``maxParticipants`` reached: the caller does not join (``DialCallStatus=failed``).
- Status callbacks (signed like every callback, via ``notify``): the first participant
  that joins with ``statusCallback`` sets the room's URL and its ``statusCallbackEvent``
  subset of start/end/join/leave; parameters ``ConferenceSid``, ``FriendlyName``,
  ``AccountSid``, ``StatusCallbackEvent`` (conference-start/-end, participant-join/-leave),
  ``SequenceNumber``, ``Timestamp`` and, for participant events, ``CallSid``, ``Muted``,
  ``Hold``, ``StartConferenceOnEnter``, ``EndConferenceOnExit``.
Error handling: a frame that fails to mix or send is dropped (RtpSession counts send
errors); a participant's leave always runs (``finally``), so a crashed call never stays
in a room.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import trio

from gateway.codec import g711
from gateway.codec import rtp as rtpc
from gateway.codec import twiml_voice as tv
from gateway.core import call as C
from gateway.core import ids
from gateway.voice import audio
from gateway.voice.callleg import DialResult, Notifier
from gateway.voice.mixer import Mixer

log = logging.getLogger("gateway.voice")

BEEP_PCM = g711.ulaw_decode(audio.beep(0.2, 880.0, 8000))
_EVENTS = {"start": "conference-start", "end": "conference-end", "join": "participant-join",
           "leave": "participant-leave"}


class Participant:
    def __init__(self, leg, opts: tv.Conference, notify: Notifier | None) -> None:
        self.leg, self.opts, self.notify = leg, opts, notify
        self.sid = leg.call.sid
        self.alaw = bool(getattr(leg.rtp, "alaw", False))
        self.kicked = trio.Event()


class Room:
    def __init__(self, account_sid: str, name: str, wall=time.time) -> None:
        self.sid = ids.new_sid("CF")
        self.account_sid, self.name, self.wall = account_sid, name, wall
        self.mixer = Mixer()
        self.parts: dict[str, Participant] = {}
        self.started = self.ended = False
        self.seq = 0
        self._hook: tuple[Notifier, str, str, frozenset[str]] | None = None

    # -- membership -----------------------------------------------------------------
    def add(self, p: Participant) -> None:
        if self._hook is None and p.opts.status_callback and p.notify is not None:
            self._hook = (p.notify, p.opts.status_callback, p.opts.status_callback_method,
                          frozenset(p.opts.status_callback_event))
        others = bool(self.parts)
        self.parts[p.sid] = p
        self.mixer.add(p.sid, alaw=p.alaw, muted=p.opts.muted)
        if p.opts.start_conference_on_enter and not self.started:
            self.started = True
            self._event("start")
        self._event("join", p)
        if others and p.opts.beep in ("true", "onEnter"):
            self.mixer.inject(BEEP_PCM)

    def remove(self, p: Participant) -> None:
        if self.parts.pop(p.sid, None) is None:
            return
        self.mixer.remove(p.sid)
        self._event("leave", p)
        if self.parts and p.opts.beep in ("true", "onExit"):
            self.mixer.inject(BEEP_PCM)
        if not self.parts or (p.opts.end_conference_on_exit and self.started):
            self.end()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for other in list(self.parts.values()):
            other.kicked.set()
        if self.started:
            self._event("end")

    def on_audio(self, p: Participant, payload: bytes, alaw: bool) -> None:
        if self.started:
            self.mixer.push(p.sid, payload, alaw)

    # -- media ----------------------------------------------------------------------
    async def run(self) -> None:
        """Send every participant its mix on an absolute 20 ms grid until the room ends
        (falls behind > 100 ms: re-anchors instead of bursting)."""
        tick = trio.current_time()
        while not self.ended:
            try:
                frames = self.mixer.tick()
                for sid, frame in frames.items():
                    p = self.parts.get(sid)
                    if p is not None and not p.leg.ended:
                        p.leg.rtp.relay(frame, p.alaw)
            except Exception:                        # never let one frame end the room
                log.exception("conference %s: mixing failed", self.sid)
            tick += rtpc.FRAME_SECONDS
            now = trio.current_time()
            if now - tick > 0.1:
                tick = now
            await trio.sleep_until(tick)

    # -- callbacks ------------------------------------------------------------------
    def _event(self, kind: str, p: Participant | None = None) -> None:
        if self._hook is None or kind not in self._hook[3]:
            return
        notify, url, method, _ = self._hook
        self.seq += 1
        params = [("ConferenceSid", self.sid), ("FriendlyName", self.name),
                  ("AccountSid", self.account_sid), ("StatusCallbackEvent", _EVENTS[kind]),
                  ("SequenceNumber", str(self.seq)),
                  ("Timestamp", format_datetime(datetime.fromtimestamp(self.wall(), UTC)))]
        if p is not None:
            params += [("CallSid", p.sid), ("Muted", str(p.opts.muted).lower()),
                       ("Hold", "false"),
                       ("StartConferenceOnEnter", str(p.opts.start_conference_on_enter).lower()),
                       ("EndConferenceOnExit", str(p.opts.end_conference_on_exit).lower())]
        try:
            notify(url, method, params)
        except Exception:
            log.exception("conference %s: status callback not queued", self.sid)


class ConferenceHub:
    """Every room of the process. ``nursery`` (set by the voice service) runs the rooms'
    tick tasks."""

    def __init__(self, nursery: trio.Nursery | None = None, wall=time.time) -> None:
        self.nursery, self.wall = nursery, wall
        self.rooms: dict[tuple[str, str], Room] = {}

    def room(self, account_sid: str, name: str) -> Room | None:
        return self.rooms.get((account_sid, name))

    async def join(self, leg, opts: tv.Conference, *, time_limit: float,
                   hangup_on_star: bool, notify: Notifier | None = None) -> DialResult:
        """Stay in room ``opts.name`` until leaving (see module rules)."""
        key = (leg.call.account_sid, opts.name)
        room = self.rooms.get(key)
        if room is not None and len(room.parts) >= opts.max_participants:
            log.info("conference %s full: call sid=%s not joined", opts.name, leg.call.sid)
            return DialResult(C.FAILED, None, 0)
        if room is None or room.ended:
            room = self.rooms[key] = Room(*key, wall=self.wall)
            assert self.nursery is not None, "ConferenceHub.nursery not set"
            self.nursery.start_soon(room.run)
        p = Participant(leg, opts, notify)
        t0 = trio.current_time()
        leg.rtp.on_audio = lambda payload, alaw: room.on_audio(p, payload, alaw)
        try:
            room.add(p)
            with trio.move_on_after(time_limit):
                async with trio.open_nursery() as n:
                    async def first(fn) -> None:
                        await fn()
                        n.cancel_scope.cancel()

                    async def star() -> None:
                        while await leg.rtp.digits.receive() != "*":
                            pass

                    n.start_soon(first, leg.sip.ended.wait)
                    n.start_soon(first, p.kicked.wait)
                    if hangup_on_star:
                        n.start_soon(first, star)
        finally:
            leg.rtp.on_audio = None
            room.remove(p)
            if room.ended and self.rooms.get(key) is room:
                del self.rooms[key]
        return DialResult(C.COMPLETED, None, int(trio.current_time() - t0))
