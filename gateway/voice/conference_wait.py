"""``<Conference waitUrl>``: what a participant hears while its room has not started.

Owns: ``play_wait(leg, url, method, fetch, params)`` — fetch ``waitUrl`` once and play
what it returns on the participant's own leg, in a loop, until cancelled (the room
cancels it the moment it starts).

Rules (Twilio's):
- An audio answer (``audio/*``, or a body that is WAV/MP3) is decoded once and looped.
- A TwiML answer runs its ``<Play>``, ``<Say>`` and ``<Pause>`` (with their ``loop``)
  and starts over at the end; ``<Redirect>`` fetches the next document (relative URLs
  resolve against the document's URL). Other verbs are not allowed there (Twilio's
  13238) and are skipped with a warning.
- Nothing playable (empty document, only disallowed verbs, undecodable audio, a round
  whose every ``<Play>`` failed) or a fetch that fails: silence — the function returns and the participant hears the
  room's (silent) mix.
Error handling: ``FetchError``/``TwimlError``/``AudioError`` are logged and mean
silence; no retries. ``CallEnded`` propagates (the join ends on hangup anyway).
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin

import trio

from gateway.codec import twiml_voice as tv
from gateway.voice import audio
from gateway.voice.callleg import FetchError

log = logging.getLogger("gateway.voice")

MAX_DOCUMENTS = 50              # <Redirect> chains per wait
MAX_ROUNDS = 10_000             # a looping document is replayed at most this often
MIN_ROUND_S = 0.1               # a round shorter than this played nothing (failed fetches)


def _is_audio(body: bytes, ctype: str) -> bool:
    kind = (ctype or "").split(";")[0].strip().lower()
    return kind.startswith("audio/") or body[:4] == b"RIFF" or audio.is_mp3(body, kind)


async def _decode(body: bytes, ctype: str) -> bytes:
    if len(body) > audio.THREAD_DECODE_BYTES:
        return await trio.to_thread.run_sync(audio.decode_audio, body, ctype)
    return audio.decode_audio(body, ctype)


async def play_wait(leg, url: str, method: str, fetch, params: list[tuple[str, str]]) -> None:
    """Play ``url``'s wait audio/TwiML on ``leg`` until cancelled; returns when there is
    nothing (more) to play."""
    for _ in range(MAX_DOCUMENTS):
        try:
            body, ctype = await fetch(url, method, params)
        except FetchError as exc:
            log.warning("call sid=%s waitUrl %s failed (%s): silence", leg.call.sid, url, exc)
            return
        if _is_audio(body, ctype):
            try:
                ulaw = await _decode(body, ctype)
            except audio.AudioError as exc:
                log.warning("call sid=%s waitUrl %s: %s: silence", leg.call.sid, url, exc)
                return
            if not ulaw:
                return
            for _ in range(MAX_ROUNDS):
                await leg.play_audio(ulaw)
            return
        try:
            verbs = tv.parse_document(body).verbs
        except tv.TwimlError as exc:
            log.warning("call sid=%s waitUrl %s invalid TwiML (%s): silence", leg.call.sid,
                        url, exc)
            return
        nxt = await _run(leg, verbs, url)
        if nxt is None:
            return
        url, method = nxt
    log.warning("call sid=%s waitUrl: more than %d documents, silence", leg.call.sid,
                MAX_DOCUMENTS)


async def _run(leg, verbs: list, doc_url: str) -> tuple[str, str] | None:
    """Loop the document's prompts; a ``<Redirect>`` -> (url, method) to fetch next."""
    playable = [v for v in verbs if isinstance(v, (tv.Say, tv.Play, tv.Pause, tv.Redirect))]
    if len(playable) != len(verbs):
        log.warning("call sid=%s waitUrl %s: only Say/Play/Pause/Redirect allowed (13238)",
                    leg.call.sid, doc_url)
    if not any(_audible(v) for v in playable):
        redirect = next((v for v in playable if isinstance(v, tv.Redirect)), None)
        return (urljoin(doc_url, redirect.url), redirect.method) if redirect else None
    for _ in range(MAX_ROUNDS):
        t0 = trio.current_time()
        for verb in playable:
            if isinstance(verb, tv.Redirect):
                return urljoin(doc_url, verb.url), verb.method
            rounds = MAX_ROUNDS if getattr(verb, "loop", 1) == 0 else getattr(verb, "loop", 1)
            for _ in range(rounds):
                if isinstance(verb, tv.Say):
                    await leg.say(verb.text, verb.voice, verb.language)
                elif isinstance(verb, tv.Play):
                    await leg.play(urljoin(doc_url, verb.url))
                else:
                    await leg.pause(float(verb.length))
        if trio.current_time() - t0 < MIN_ROUND_S:     # every <Play> failed: no busy loop
            log.warning("call sid=%s waitUrl %s played nothing: silence", leg.call.sid,
                        doc_url)
            return None
    return None


def _audible(verb) -> bool:
    if isinstance(verb, tv.Say):
        return bool(verb.text)
    if isinstance(verb, tv.Play):
        return bool(verb.url)
    return isinstance(verb, tv.Pause) and float(verb.length) > 0
