"""``<Enqueue waitUrl>``: what a queued caller hears until it is dequeued.

Owns: ``play_queue_wait(leg, url, method, fetch, params) -> bool`` (True: a ``<Leave>``
ran). ``params()`` is called before every request, so ``QueuePosition``/``QueueTime``
are fresh each time.

Rules (Twilio's): the answer is audio (looped, decoded once — ``conference_wait``'s
helpers) or TwiML whose ``<Play>``, ``<Say>``, ``<Pause>`` run in order, ``<Redirect>``
fetches the next document, ``<Leave>`` leaves the queue, ``<Hangup>`` hangs up; other
verbs are skipped (logged). When a document ends, ``waitUrl`` is requested again.
A fetch that fails, invalid TwiML, or a document that played nothing: silence from then
on (the function returns False; the caller stays queued).
Error handling: ``FetchError``/``TwimlError``/``AudioError`` are logged, no retries;
``CallEnded`` propagates.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin

import trio

from gateway.codec import twiml_voice as tv
from gateway.voice import audio
from gateway.voice.callleg import CallEnded, FetchError
from gateway.voice.conference_wait import MAX_ROUNDS, MIN_ROUND_S, _decode, _is_audio

log = logging.getLogger("gateway.voice")

MAX_DOCUMENTS = 10_000           # waitUrl requests per wait (a 1 s document: ~3 h)


async def play_queue_wait(leg, url: str, method: str, fetch, params) -> bool:
    for _ in range(MAX_DOCUMENTS):
        try:
            body, ctype = await fetch(url, method, params())
        except FetchError as exc:
            log.warning("call sid=%s waitUrl %s failed (%s): silence", leg.call.sid, url, exc)
            return False
        if _is_audio(body, ctype):
            try:
                ulaw = await _decode(body, ctype)
            except audio.AudioError as exc:
                log.warning("call sid=%s waitUrl %s: %s: silence", leg.call.sid, url, exc)
                return False
            for _ in range(MAX_ROUNDS if ulaw else 0):
                await leg.play_audio(ulaw)
            return False
        try:
            verbs = tv.parse_document(body).verbs
        except tv.TwimlError as exc:
            log.warning("call sid=%s waitUrl %s invalid TwiML (%s): silence", leg.call.sid,
                        url, exc)
            return False
        t0 = trio.current_time()
        nxt = await _run(leg, verbs, url)
        if nxt is True:
            return True
        if nxt is not None:
            url, method = nxt
        elif trio.current_time() - t0 < MIN_ROUND_S:
            log.warning("call sid=%s waitUrl %s played nothing: silence", leg.call.sid, url)
            return False
    return False


async def _run(leg, verbs: list, doc_url: str):
    """Run one document: True (``<Leave>``), (url, method) (``<Redirect>``) or None."""
    for verb in verbs:
        if isinstance(verb, tv.Leave):
            return True
        if isinstance(verb, tv.Redirect):
            return urljoin(doc_url, verb.url), verb.method
        if isinstance(verb, tv.Hangup):
            await leg.hangup()
            raise CallEnded()
        if not isinstance(verb, (tv.Say, tv.Play, tv.Pause)):
            log.warning("call sid=%s waitUrl %s: <%s> not allowed here; skipped",
                        leg.call.sid, doc_url, type(verb).__name__)
            continue
        rounds = MAX_ROUNDS if getattr(verb, "loop", 1) == 0 else getattr(verb, "loop", 1)
        for _ in range(rounds):
            if isinstance(verb, tv.Say):
                await leg.say(verb.text, verb.voice, verb.language)
            elif isinstance(verb, tv.Play):
                if verb.url:
                    await leg.play(urljoin(doc_url, verb.url))
            else:
                await leg.pause(float(verb.length))
    return None
