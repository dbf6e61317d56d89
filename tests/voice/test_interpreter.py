"""The voice interpreter on a fake CallLeg and a fake fetcher (no sockets).

Time is trio's MockClock (autojump), so timeouts and prompt lengths cost no wall time.
"""

import math

import trio

from gateway.core import call as C
from gateway.voice.interpreter import (
    ERROR_TEXT,
    CallEnded,
    DialResult,
    FetchError,
    Interpreter,
    Next,
    RecordResult,
)

AC = "AC0123456789abcdef0123456789abcdef"
SAY_S = 1.0          # a fake <Say> lasts one second of mock time


class FakeLeg:
    def __init__(self, *, direction=C.INBOUND, record=None, dial=None):
        self.call = C.Call(sid="CA" + "1" * 32, account_sid=AC, from_="+15005550001",
                           to="+15005550006", direction=direction, status=C.RINGING)
        self.answered = False
        self.ended = False
        self.log: list[tuple] = []
        self.send, self.recv = trio.open_memory_channel(math.inf)
        self.record_result = record or RecordResult("http://gw/rec/RE1.wav", "RE1", 3, "#")
        self.dial_results = list(dial or [])

    def press(self, digits: str) -> None:
        for d in digits:
            self.send.send_nowait(d)

    def remote_hangup(self) -> None:
        self.ended = True

    def _check(self):
        if self.ended:
            raise CallEnded()

    async def answer(self):
        self._check()
        self.answered = True
        self.call.status = C.IN_PROGRESS
        self.log.append(("answer",))

    async def reject(self, reason):
        self.log.append(("reject", reason))
        self.ended = True

    async def hangup(self):
        if not self.ended:
            self.log.append(("hangup",))
        self.ended = True

    async def say(self, text, voice, language):
        self._check()
        self.log.append(("say", text, voice, language))
        await trio.sleep(SAY_S)
        self._check()

    async def play(self, url):
        self._check()
        self.log.append(("play", url))
        await trio.sleep(SAY_S)

    async def send_digits(self, digits):
        self.log.append(("digits", digits))

    async def pause(self, seconds):
        self.log.append(("pause", seconds))
        await trio.sleep(seconds)

    def clear_digits(self):
        while True:
            try:
                self.recv.receive_nowait()
            except trio.WouldBlock:
                return

    async def next_digit(self, timeout):
        self._check()
        with trio.move_on_after(math.inf if timeout is None else timeout):
            return await self.recv.receive()
        return None

    async def record(self, **kw):
        self._check()
        self.log.append(("record", kw))
        return self.record_result

    async def dial(self, numbers, **kw):
        self._check()
        self.log.append(("dial", [n.number for n in numbers], kw))
        return self.dial_results.pop(0) if self.dial_results else DialResult("completed", "CA" + "2" * 32, 7)


class FakeWeb:
    """URL -> TwiML (str), FetchError, or (body, content_type); records every request."""

    def __init__(self, pages):
        self.pages = pages
        self.requests: list[tuple[str, str, dict]] = []

    async def __call__(self, url, method, params):
        self.requests.append((url, method, dict(params)))
        page = self.pages.get(url)
        if page is None:
            raise FetchError(11200, "HTTP 404")
        if isinstance(page, Exception):
            raise page
        if callable(page):
            page = page(dict(params))
        if isinstance(page, tuple):
            return page
        return page.encode(), "text/xml"


U = "http://app/voice"


async def run(leg, web, first=None, **kw):
    interp = Interpreter(leg, web, **kw)
    with trio.fail_after(100000):
        await interp.run(first or Next(U, "POST"))
    return interp


def kinds(leg):
    return [e[0] for e in leg.log]


async def test_say_play_pause_then_document_end_hangs_up(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Say voice="alice" language="en-GB" loop="2">Hi</Say>'
                      '<Play digits="w1">/a.wav</Play><Pause length="3"/></Response>'})
    await run(leg, web)
    assert leg.log == [("answer",), ("say", "Hi", "alice", "en-GB"), ("say", "Hi", "alice", "en-GB"),
                       ("digits", "w1"), ("play", "http://app/a.wav"), ("pause", 3.0), ("hangup",)]
    (url, method, params), = web.requests
    assert (url, method) == (U, "POST")
    assert params["CallSid"] == leg.call.sid and params["AccountSid"] == AC
    assert params["From"] == "+15005550001" and params["To"] == "+15005550006"
    assert params["CallStatus"] == "ringing" and params["Direction"] == "inbound"
    assert params["ApiVersion"] == "2010-04-01"


async def test_gather_posts_digits_to_action_then_runs_answer(autojump_clock):
    leg = FakeLeg()
    leg.press("9")                                   # before the Gather: discarded
    web = FakeWeb({U: '<Response><Say>menu</Say><Gather action="/g" numDigits="3"/></Response>',
                   "http://app/g": lambda p: f"<Response><Say>got {p['Digits']}</Say></Response>"})

    async def caller():
        await trio.sleep(SAY_S + 0.5)
        leg.press("123")
    async with trio.open_nursery() as n:
        n.start_soon(caller)
        await run(leg, web)
    assert web.requests[1][0] == "http://app/g"
    assert web.requests[1][2]["Digits"] == "123"
    assert web.requests[1][2]["CallStatus"] == "in-progress"
    assert ("say", "got 123", "man", "en-US") in leg.log


async def test_gather_finish_on_key_and_timeout_between_digits(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Gather timeout="2"/><Say>fell through</Say></Response>',
                   U + "?x": "<Response/>"})

    async def caller():
        await trio.sleep(1)
        leg.press("4")
        await trio.sleep(1.5)                        # within the 2 s inter-digit timeout
        leg.press("2#7")
    async with trio.open_nursery() as n:
        n.start_soon(caller)
        await run(leg, web)
    # no action: posts back to the document URL itself, with Digits, key not included
    assert len(web.requests) >= 2
    assert web.requests[1][0] == U and web.requests[1][2]["Digits"] == "42"
    assert web.requests[1][2]["FinishedOnKey"] == "#"


async def test_gather_no_input_falls_through_unless_action_on_empty_result(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Gather action="/g" timeout="1"/><Say>bye</Say></Response>'})
    await run(leg, web)
    assert len(web.requests) == 1
    assert ("say", "bye", "man", "en-US") in leg.log

    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Gather action="/g" timeout="1" actionOnEmptyResult="true"/>'
                      '</Response>', "http://app/g": "<Response/>"})
    await run(leg, web)
    assert web.requests[1][2]["Digits"] == ""


async def test_gather_barge_in_stops_nested_prompts(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Gather action="/g" numDigits="1">'
                      '<Say>one</Say><Say>two</Say><Say>three</Say></Gather></Response>',
                   "http://app/g": "<Response/>"})

    async def caller():
        await trio.sleep(SAY_S * 1.5)                 # during "two"
        leg.press("5")
    async with trio.open_nursery() as n:
        n.start_soon(caller)
        await run(leg, web)
    said = [e[1] for e in leg.log if e[0] == "say"]
    assert said == ["one", "two"]                     # "three" never started
    assert web.requests[1][2]["Digits"] == "5"


async def test_record_posts_recording_and_status_callback(autojump_clock):
    leg = FakeLeg()
    notes = []
    web = FakeWeb({U: '<Response><Record action="/r" maxLength="20" timeout="3" '
                      'recordingStatusCallback="/rs"/></Response>',
                   "http://app/r": "<Response><Hangup/></Response>"})
    await run(leg, web, notify=lambda *a: notes.append(a))
    rec = [e for e in leg.log if e[0] == "record"][0][1]
    assert rec == {"timeout": 3.0, "finish_on_key": "1234567890*#", "max_length": 20.0,
                   "play_beep": True, "trim": "trim-silence"}
    p = web.requests[1][2]
    assert (p["RecordingUrl"], p["RecordingDuration"], p["RecordingSid"], p["Digits"]) == (
        "http://gw/rec/RE1.wav", "3", "RE1", "#")
    assert notes[0][0] == "http://app/rs" and ("RecordingStatus", "completed") in notes[0][2]


async def test_empty_recording_makes_no_action_request(autojump_clock):
    leg = FakeLeg(record=RecordResult(None, None, 0, ""))
    web = FakeWeb({U: '<Response><Record action="/r"/><Say>nothing</Say></Response>'})
    await run(leg, web)
    assert len(web.requests) == 1 and ("say", "nothing", "man", "en-US") in leg.log


async def test_dial_action_and_defaults(autojump_clock):
    leg = FakeLeg(dial=[DialResult("completed", "CA" + "4" * 32, 12)])
    web = FakeWeb({U: '<Response><Dial action="/d" timeout="10"><Number>+15005550002</Number>'
                      '<Number sendDigits="1">+15005550003</Number></Dial></Response>',
                   "http://app/d": "<Response/>"})
    await run(leg, web)
    dials = [e for e in leg.log if e[0] == "dial"]
    assert [d[1] for d in dials] == [["+15005550002", "+15005550003"]]   # all at once
    assert dials[0][2] == {"timeout": 10.0, "caller_id": "+15005550001", "time_limit": 14400.0,
                           "hangup_on_star": False, "record": "do-not-record"}
    p = web.requests[1][2]
    assert (p["DialCallStatus"], p["DialCallSid"], p["DialCallDuration"]) == (
        "completed", "CA" + "4" * 32, "12")


async def test_dial_without_action_continues(autojump_clock):
    leg = FakeLeg(dial=[DialResult("no-answer", None, 0)])
    web = FakeWeb({U: '<Response><Dial callerId="+1999">+15005550002</Dial><Say>after</Say></Response>'})
    await run(leg, web)
    assert [e for e in leg.log if e[0] == "dial"][0][2]["caller_id"] == "+1999"
    assert ("say", "after", "man", "en-US") in leg.log and len(web.requests) == 1


async def test_redirect_get_and_relative(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: '<Response><Redirect method="GET">next</Redirect><Say>never</Say></Response>',
                   "http://app/next": "<Response><Say>there</Say></Response>"})
    await run(leg, web)
    assert web.requests[1][:2] == ("http://app/next", "GET")
    assert [e[1] for e in leg.log if e[0] == "say"] == ["there"]


async def test_reject_before_answer_and_hangup_verb(autojump_clock):
    leg = FakeLeg()
    await run(leg, FakeWeb({U: '<Response><Reject reason="busy"/><Say>x</Say></Response>'}))
    assert leg.log == [("reject", "busy")]
    leg = FakeLeg()
    await run(leg, FakeWeb({U: "<Response><Say>a</Say><Hangup/><Say>b</Say></Response>"}))
    assert kinds(leg) == ["answer", "say", "hangup"]


async def test_fallback_url_on_fetch_and_parse_failure(autojump_clock):
    for primary in (FetchError(11205, "connect"), "<Response><Bogus"):
        leg = FakeLeg()
        web = FakeWeb({U: primary, "http://fb/": "<Response><Say>fallback</Say></Response>"})
        await run(leg, web, fallback_url="http://fb/")
        assert web.requests[1][0] == "http://fb/"
        assert web.requests[1][2]["ErrorUrl"] == U
        assert web.requests[1][2]["ErrorCode"] in ("11205", "12100")
        assert ("say", "fallback", "man", "en-US") in leg.log


async def test_nothing_works_speaks_error_and_hangs_up(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({"http://fb/": FetchError(11200)})
    await run(leg, web, fallback_url="http://fb/")
    assert leg.log == [("answer",), ("say", ERROR_TEXT, "man", "en-US"), ("hangup",)]
    leg = FakeLeg()
    await run(leg, FakeWeb({}), Next(twiml="<Nope/>"))
    assert kinds(leg) == ["answer", "say", "hangup"]


async def test_inline_twiml_and_content_types(autojump_clock):
    leg = FakeLeg(direction=C.OUTBOUND_API)
    await run(leg, FakeWeb({}), Next(twiml="<Response><Say>inline</Say></Response>"))
    assert ("say", "inline", "man", "en-US") in leg.log
    leg = FakeLeg()
    await run(leg, FakeWeb({U: (b"hello there", "text/plain")}))
    assert ("say", "hello there", "man", "en-US") in leg.log
    leg = FakeLeg()
    await run(leg, FakeWeb({U: (b"RIFF....", "audio/wav")}))
    assert ("play", U) in leg.log and leg.log[-1] == ("hangup",)


async def test_remote_hangup_ends_quietly(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: "<Response><Say loop='0'>forever</Say></Response>"})

    async def caller():
        await trio.sleep(SAY_S * 3.5)
        leg.remote_hangup()
    async with trio.open_nursery() as n:
        n.start_soon(caller)
        await run(leg, web)
    assert 3 <= sum(1 for e in leg.log if e[0] == "say") <= 4
    assert ("hangup",) not in leg.log


async def test_replace_mid_call_runs_new_document(autojump_clock):
    leg = FakeLeg()
    web = FakeWeb({U: "<Response><Say loop='0'>hold music</Say></Response>"})
    interp = Interpreter(leg, web)

    async def operator():
        await trio.sleep(SAY_S * 2.5)
        interp.replace(Next(twiml="<Response><Say>new</Say></Response>"))
    with trio.fail_after(10000):
        async with trio.open_nursery() as n:
            n.start_soon(operator)
            await interp.run(Next(U))
    said = [e[1] for e in leg.log if e[0] == "say"]
    assert said[-1] == "new" and said.count("hold music") == 3
    assert leg.log[-1] == ("hangup",)


class HangsUpDuring(FakeLeg):
    """The caller hangs up while ``<Record>``/``<Dial>`` runs."""

    async def record(self, **kw):
        self.ended = True
        return RecordResult("http://gw/rec/RE1.wav", "RE1", 3, "hangup")

    async def dial(self, numbers, **kw):
        self.ended = True
        return DialResult("completed", "CA" + "2" * 32, 4)


async def test_action_after_caller_hangup_says_completed(autojump_clock):
    for verb in ('<Record action="/after"/>', '<Dial action="/after">+15005550002</Dial>'):
        leg = HangsUpDuring()
        web = FakeWeb({U: f"<Response>{verb}<Say>never</Say></Response>",
                       "http://app/after": "<Response><Say>moot</Say></Response>"})
        await run(leg, web)
        (after,) = [p for url, _, p in web.requests if url == "http://app/after"]
        assert after["CallStatus"] == "completed"             # Twilio's, not in-progress
        assert web.requests[0][2]["CallStatus"] == "ringing"
        assert not [e for e in leg.log if e[0] == "say"]      # the answer is ignored
