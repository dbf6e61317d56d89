"""``<Dial><Conference>``: rooms where every participant hears the sum of the others.

Owns: ``ConferenceHub`` (rooms by (account SID, friendly name); ``join`` puts a call leg in
a room until it leaves; live rooms by SID for the Conferences API, and every room's
record — kept in the store's kv namespace ``conference`` when the hub has a store, else
the last ``MAX_DONE`` in memory) and ``Room`` (its ``Mixer``, the one 20 ms tick task per
room that sends each participant its mix, join/leave/end semantics, live mute/hold/kick
and status callbacks).

Rules (Twilio's ``<Conference>`` noun and Conference/Participant resources):
- A room is ``init`` until a participant with ``startConferenceOnEnter`` (default true)
  is in it, then ``in-progress``; ended rooms are ``completed`` (with
  ``reason_conference_ended`` and ``call_sid_ending_conference``). Before the start
  nobody's audio is mixed; a waiting participant whose ``waitUrl`` is set hears it
  (``conference_wait``, stopped the moment the room starts), others hear silence.
- ``muted`` participants (TwiML or API ``Muted``) hear the room, nobody hears them;
  held ones (API ``Hold``) hear silence and nobody hears them (``HoldUrl`` not played).
- ``beep`` (default true; ``onEnter``/``onExit``/``false``): a short tone to the room when
  someone joins/leaves while others are in it.
- A participant leaves when its call hangs up, its ``<Dial timeLimit>`` passes, it presses
  ``*`` with ``hangupOnStar``, it is kicked (API DELETE) or the room ends; its call then
  goes on with the ``<Dial action>`` or the next verb. The room ends when a participant
  with ``endConferenceOnExit`` leaves, the last one leaves, or the API completes it.
  A name can be reused afterwards (a new room, new SID).
- ``maxParticipants`` reached: the caller does not join (``DialCallStatus=failed``).
- Status callbacks (signed like every callback, via ``notify``): the first participant
  that joins with ``statusCallback`` sets the room's URL and its ``statusCallbackEvent``
  subset of start/end/join/leave/mute/hold; parameters ``ConferenceSid``,
  ``FriendlyName``, ``AccountSid``, ``StatusCallbackEvent`` (conference-start/-end,
  participant-join/-leave/-mute/-unmute/-hold/-unhold), ``SequenceNumber``, ``Timestamp``
  and, for participant events, ``CallSid``, ``Muted``, ``Hold``,
  ``StartConferenceOnEnter``, ``EndConferenceOnExit``.
Error handling: a frame that fails to mix or send is dropped (RtpSession counts send
errors); a participant's leave always runs (``finally``), so a crashed call never stays
in a room; a record that cannot be stored is logged (the live room is unaffected).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from email.utils import format_datetime

import trio

from gateway.codec import g711
from gateway.codec import rtp as rtpc
from gateway.codec import twiml_voice as tv
from gateway.core import call as C
from gateway.core import ids
from gateway.voice import audio
from gateway.voice.callleg import CallEnded, DialResult, Notifier
from gateway.voice.conference_wait import play_wait
from gateway.voice.interpreter import call_params
from gateway.voice.mixer import FRAME, Mixer

log = logging.getLogger("gateway.voice")

NS = "conference"
MAX_DONE = 1000                  # completed rooms kept in memory without a store
BEEP_PCM = g711.ulaw_decode(audio.beep(0.2, 880.0, 8000))
_SILENCE = {False: b"\xff" * FRAME, True: b"\xd5" * FRAME}
_EVENTS = {"start": "conference-start", "end": "conference-end", "join": "participant-join",
           "leave": "participant-leave", "mute": "participant-mute",
           "unmute": "participant-unmute", "hold": "participant-hold",
           "unhold": "participant-unhold"}
_SUBSCRIBE = {"mute": "mute", "unmute": "mute", "hold": "hold", "unhold": "hold"}


class Participant:
    def __init__(self, leg, opts: tv.Conference, notify: Notifier | None,
                 now: float | None = None) -> None:
        self.leg, self.opts, self.notify = leg, opts, notify
        self.sid = leg.call.sid
        self.alaw = bool(getattr(leg.rtp, "alaw", False))
        self.muted, self.hold = opts.muted, False
        self.waiting = False                  # hears its waitUrl, not the mix
        self.kicked = trio.Event()
        self.kicked_by_api = False
        self.date_created = self.date_updated = time.time() if now is None else now


class Room:
    def __init__(self, account_sid: str, name: str, wall=time.time, on_change=None) -> None:
        self.sid = ids.new_sid("CF")
        self.account_sid, self.name, self.wall = account_sid, name, wall
        self.on_change = on_change
        self.mixer = Mixer()
        self.parts: dict[str, Participant] = {}
        self.started = self.ended = False
        self.started_event = trio.Event()
        self.date_created = self.date_updated = wall()
        self.reason: str | None = None
        self.ending_call: str | None = None
        self.seq = 0
        self._hook: tuple[Notifier, str, str, frozenset[str]] | None = None

    @property
    def status(self) -> str:
        return "completed" if self.ended else "in-progress" if self.started else "init"

    def record(self) -> dict:
        """The Conference resource's state (stored; rendered by ``api.conferences``)."""
        return {"sid": self.sid, "account_sid": self.account_sid, "friendly_name": self.name,
                "status": self.status, "date_created": self.date_created,
                "date_updated": self.date_updated, "reason_conference_ended": self.reason,
                "call_sid_ending_conference": self.ending_call}

    def _touch(self) -> None:
        self.date_updated = self.wall()
        if self.on_change is not None:
            self.on_change(self)

    # -- membership -----------------------------------------------------------------
    def add(self, p: Participant) -> None:
        if self._hook is None and p.opts.status_callback and p.notify is not None:
            self._hook = (p.notify, p.opts.status_callback, p.opts.status_callback_method,
                          frozenset(p.opts.status_callback_event))
        others = bool(self.parts)
        self.parts[p.sid] = p
        self.mixer.add(p.sid, alaw=p.alaw, muted=p.muted)
        if p.opts.start_conference_on_enter and not self.started:
            self.started = True
            self.started_event.set()
            self._event("start")
        self._event("join", p)
        if others and p.opts.beep in ("true", "onEnter"):
            self.mixer.inject(BEEP_PCM)
        self._touch()

    def remove(self, p: Participant) -> None:
        if self.parts.pop(p.sid, None) is None:
            return
        self.mixer.remove(p.sid)
        self._event("leave", p)
        if self.parts and p.opts.beep in ("true", "onExit"):
            self.mixer.inject(BEEP_PCM)
        how = "kicked" if p.kicked_by_api else "left"
        if not self.parts:
            self.end(f"last-participant-{how}", p.sid)
        elif p.opts.end_conference_on_exit and self.started:
            self.end(f"participant-with-end-conference-on-exit-{how}", p.sid)
        else:
            self._touch()

    def end(self, reason: str = "conference-ended-via-api", call_sid: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.reason, self.ending_call = reason, call_sid
        for other in list(self.parts.values()):
            other.kicked.set()
        if self.started:
            self._event("end")
        self._touch()

    def kick(self, call_sid: str) -> bool:
        """API DELETE: the participant leaves; its call goes on after ``<Dial>``."""
        p = self.parts.get(call_sid)
        if p is None:
            return False
        p.kicked_by_api = True
        p.kicked.set()
        return True

    def update(self, call_sid: str, *, muted: bool | None = None,
               hold: bool | None = None) -> Participant | None:
        """API POST: mute/unmute and hold/unhold, effective from the next tick."""
        p = self.parts.get(call_sid)
        if p is None:
            return None
        changed = []
        if muted is not None and muted != p.muted:
            p.muted = muted
            changed.append("mute" if muted else "unmute")
        if hold is not None and hold != p.hold:
            p.hold = hold
            changed.append("hold" if hold else "unhold")
        if changed:
            self.mixer.set_muted(p.sid, p.muted or p.hold)
            p.date_updated = self.wall()
            for kind in changed:
                self._event(kind, p)
            self._touch()
        return p

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
                    if p is None or p.leg.ended or p.waiting:
                        continue
                    p.leg.rtp.relay(_SILENCE[p.alaw] if p.hold else frame, p.alaw)
            except Exception:                        # never let one frame end the room
                log.exception("conference %s: mixing failed", self.sid)
            tick += rtpc.FRAME_SECONDS
            now = trio.current_time()
            if now - tick > 0.1:
                tick = now
            await trio.sleep_until(tick)

    # -- callbacks ------------------------------------------------------------------
    def _event(self, kind: str, p: Participant | None = None) -> None:
        if self._hook is None or _SUBSCRIBE.get(kind, kind) not in self._hook[3]:
            return
        notify, url, method, _ = self._hook
        self.seq += 1
        params = [("ConferenceSid", self.sid), ("FriendlyName", self.name),
                  ("AccountSid", self.account_sid), ("StatusCallbackEvent", _EVENTS[kind]),
                  ("SequenceNumber", str(self.seq)),
                  ("Timestamp", format_datetime(datetime.fromtimestamp(self.wall(), UTC)))]
        if p is not None:
            params += [("CallSid", p.sid), ("Muted", str(p.muted).lower()),
                       ("Hold", str(p.hold).lower()),
                       ("StartConferenceOnEnter", str(p.opts.start_conference_on_enter).lower()),
                       ("EndConferenceOnExit", str(p.opts.end_conference_on_exit).lower())]
        try:
            notify(url, method, params)
        except Exception:
            log.exception("conference %s: status callback not queued", self.sid)


class ConferenceHub:
    """Every room of the process. ``nursery`` (set by the voice service) runs the rooms'
    tick tasks and record writes; ``store`` (optional) keeps the rooms' records."""

    def __init__(self, nursery: trio.Nursery | None = None, wall=time.time,
                 store=None) -> None:
        self.nursery, self.wall, self.store = nursery, wall, store
        self.rooms: dict[tuple[str, str], Room] = {}
        self.by_sid: dict[str, Room] = {}                 # live (not ended) rooms
        self.done: OrderedDict[str, dict] = OrderedDict()  # ended rooms, without a store
        self._locks: dict[str, trio.Lock] = {}

    def room(self, account_sid: str, name: str) -> Room | None:
        return self.rooms.get((account_sid, name))

    def live(self, sid: str) -> Room | None:
        room = self.by_sid.get(sid)
        return room if room is not None and not room.ended else None

    # -- records --------------------------------------------------------------------
    def _changed(self, room: Room) -> None:
        if room.ended:
            self.by_sid.pop(room.sid, None)
        if self.store is None:
            if room.ended:
                self.done[room.sid] = room.record()
                while len(self.done) > MAX_DONE:
                    self.done.popitem(last=False)
        elif self.nursery is not None:
            self.nursery.start_soon(self._save, room)

    async def _save(self, room: Room) -> None:
        """Write the room's record as it is *now* (FIFO lock: the last write is the
        latest state)."""
        lock = self._locks.setdefault(room.sid, trio.Lock())
        async with lock:
            try:
                await self.store.kv_put(NS, room.sid, room.record())
            except Exception:
                log.exception("conference %s: record not stored", room.sid)
        if room.ended:
            self._locks.pop(room.sid, None)

    async def records(self, account_sid: str) -> list[dict]:
        """Every room of the account (live and ended), newest first."""
        if self.store is not None:
            recs = {sid: d for sid, d in await self.store.kv_items(NS)
                    if d.get("account_sid") == account_sid}
        else:
            recs = {sid: d for sid, d in self.done.items() if d["account_sid"] == account_sid}
        for room in list(self.by_sid.values()):
            if room.account_sid == account_sid:
                recs[room.sid] = room.record()
        return sorted(recs.values(), key=lambda d: (d["date_created"], d["sid"]), reverse=True)

    async def record(self, sid: str) -> dict | None:
        room = self.by_sid.get(sid)
        if room is not None:
            return room.record()
        if self.store is not None:
            return await self.store.kv_get(NS, sid)
        return self.done.get(sid)

    async def recover(self) -> None:
        """Rooms a crash left open are completed (their calls are gone)."""
        if self.store is None:
            return
        for sid, d in await self.store.kv_items(NS):
            if d.get("status") != "completed":
                d.update(status="completed", date_updated=self.wall(),
                         reason_conference_ended=d.get("reason_conference_ended")
                         or "last-participant-left")
                await self.store.kv_put(NS, sid, d)

    # -- joining --------------------------------------------------------------------
    async def join(self, leg, opts: tv.Conference, *, time_limit: float,
                   hangup_on_star: bool, notify: Notifier | None = None,
                   fetch=None) -> DialResult:
        """Stay in room ``opts.name`` until leaving (see module rules); ``fetch`` gets
        the ``waitUrl``."""
        key = (leg.call.account_sid, opts.name)
        room = self.rooms.get(key)
        if room is not None and not room.ended and len(room.parts) >= opts.max_participants:
            log.info("conference %s full: call sid=%s not joined", opts.name, leg.call.sid)
            return DialResult(C.FAILED, None, 0)
        if room is None or room.ended:
            room = Room(*key, wall=self.wall, on_change=self._changed)
            self.rooms[key] = room
            self.by_sid[room.sid] = room
            assert self.nursery is not None, "ConferenceHub.nursery not set"
            self.nursery.start_soon(room.run)
        p = Participant(leg, opts, notify, self.wall())
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
                    if opts.wait_url and fetch is not None and not room.started:
                        n.start_soon(self._wait, room, p, fetch)
        finally:
            leg.rtp.on_audio = None
            room.remove(p)
            if room.ended and self.rooms.get(key) is room:
                del self.rooms[key]
        return DialResult(C.COMPLETED, None, int(trio.current_time() - t0))

    async def _wait(self, room: Room, p: Participant, fetch) -> None:
        """``waitUrl`` on ``p``'s leg until the room starts (then the mix takes over)."""
        async with trio.open_nursery() as n:
            async def stop() -> None:
                await room.started_event.wait()
                n.cancel_scope.cancel()

            n.start_soon(stop)
            p.waiting = True
            try:
                await play_wait(p.leg, p.opts.wait_url, p.opts.wait_method, fetch,
                                call_params(p.leg.call))
            except CallEnded:
                pass
            finally:
                p.waiting = False
            n.cancel_scope.cancel()
