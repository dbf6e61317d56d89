"""Voice TwiML parsing, with the official twilio library's VoiceResponse as generator."""

import pytest
from twilio.twiml.voice_response import Dial as LibDial
from twilio.twiml.voice_response import Gather as LibGather
from twilio.twiml.voice_response import VoiceResponse

from gateway.codec import twiml_voice as tv
from gateway.codec.twiml_voice import (
    Dial,
    Gather,
    Hangup,
    Number,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
    TwimlError,
)


def test_library_document_from_reference():
    r = VoiceResponse()
    r.say("Hello", voice="alice", language="en-US", loop=2)
    r.play("https://e.com/a.mp3", loop=1)
    r.play(digits="ww1234")
    g = LibGather(action="/gather", finish_on_key="#", input="dtmf speech", method="POST",
                  num_digits=4, speech_timeout="auto", timeout=5)
    g.say("Enter code")
    r.append(g)
    d = LibDial(action="/dial", caller_id="+15005550006", record="record-from-answer", timeout=20)
    d.number("+15005550001", send_digits="ww12")
    d.sip("sip:a@b.com")
    d.client("alice")
    r.append(d)
    r.record(action="/rec", finish_on_key="#", max_length=30, play_beep=True,
             transcribe=True, transcribe_callback="/t")
    r.pause(length=2)
    r.redirect("/next", method="POST")
    r.reject(reason="busy")
    r.hangup()
    doc = tv.parse_document(str(r))
    assert doc.verbs == [
        Say("Hello", voice="alice", language="en-US", loop=2),
        Play("https://e.com/a.mp3", loop=1),
        Play("", digits="ww1234"),
        Gather(action="/gather", method="POST", timeout=5, finish_on_key="#", num_digits=4,
               input="dtmf speech", nested=(Say("Enter code"),)),
        Dial(numbers=(Number("+15005550001", send_digits="ww12"), tv.Sip("sip:a@b.com")),
             action="/dial",
             caller_id="+15005550006", record="record-from-answer", timeout=20),
        Record(action="/rec", finish_on_key="#", max_length=30, play_beep=True),
        Pause(2),
        Redirect("/next", "POST"),
        Reject("busy"),
        Hangup(),
    ]
    assert not any("Sip" in w for w in doc.warnings)      # <Sip> is dialled now
    assert any("Client" in w for w in doc.warnings)
    assert any("speech" in w for w in doc.warnings)


def test_defaults():
    verbs = tv.parse(
        b"<Response><Say>Hi</Say><Gather/><Record/><Dial>+15005550001</Dial>"
        b"<Pause/><Reject/><Play>http://x/a.wav</Play></Response>"
    )
    assert verbs[0] == Say("Hi", voice="man", language="en-US", loop=1)
    g = verbs[1]
    assert (g.action, g.method, g.timeout, g.finish_on_key, g.num_digits, g.input,
            g.action_on_empty_result) == (None, "POST", 5, "#", None, "dtmf", False)
    rec = verbs[2]
    assert (rec.action, rec.method, rec.timeout, rec.finish_on_key, rec.max_length,
            rec.play_beep, rec.recording_status_callback) == (
        None, "POST", 5, "1234567890*#", 3600, True, None)
    dial = verbs[3]
    assert dial.numbers == (Number("+15005550001"),)
    assert (dial.action, dial.method, dial.timeout, dial.caller_id, dial.time_limit,
            dial.hangup_on_star, dial.record) == (None, "POST", 30, None, 14400, False,
                                                  "do-not-record")
    assert verbs[4] == Pause(1)
    assert verbs[5] == Reject("rejected")
    assert verbs[6] == Play("http://x/a.wav", loop=1)


def test_library_defaults_render_and_parse():
    r = VoiceResponse()
    r.gather(num_digits=1, action_on_empty_result=True, timeout=3, finish_on_key="*")
    r.dial("+15005550002", hangup_on_star=True, time_limit=60, record=True)
    r.record(play_beep=False, recording_status_callback="https://e.com/r", timeout=0)
    g, d, rec = tv.parse(str(r))
    assert g.num_digits == 1 and g.action_on_empty_result and g.timeout == 3
    assert g.finish_on_key == "*"
    assert d.hangup_on_star and d.time_limit == 60 and d.record == "record-from-answer"
    assert not rec.play_beep and rec.recording_status_callback == "https://e.com/r"
    assert rec.timeout == 0


def test_whitespace_and_get_methods():
    verbs = tv.parse(b"""<?xml version="1.0"?>
    <Response>
      <Say voice="woman" language="fr-FR">
         Bonjour
      </Say>
      <Redirect method="get"> https://e.com/next </Redirect>
    </Response>""")
    assert verbs == [Say("Bonjour", voice="woman", language="fr-FR"),
                     Redirect("https://e.com/next", "GET")]


def test_empty_response_and_unknown_verbs():
    assert tv.parse(str(VoiceResponse())) == []
    doc = tv.parse_document(b"<Response><Refer>q</Refer><Hangup/></Response>")
    assert doc.verbs == [Hangup()]
    assert doc.warnings == ["unknown verb <Refer> skipped"]


@pytest.mark.parametrize("doc,code", [
    (b"", 12100),
    (b"   ", 12100),
    (b"<Response>", 12100),
    (b"<Reply/>", 12100),
    (b"<!DOCTYPE x [<!ENTITY a 'b'>]><Response>&a;</Response>", 12100),
    (b"<Response><Gather timeout='soon'/></Response>", 12200),
    (b"<Response><Gather method='PUT'/></Response>", 12200),
    (b"<Response><Gather finishOnKey='x'/></Response>", 12200),
    (b"<Response><Gather input='telepathy'/></Response>", 12200),
    (b"<Response><Redirect/></Response>", 12200),
    (b"<Response><Play/></Response>", 12200),
    (b"<Response><Reject reason='nope'/></Response>", 12200),
    (b"<Response><Dial record='maybe'>+1</Dial></Response>", 12200),
    (b"<Response><Record playBeep='yes'/></Response>", 12200),
    (b"<Response><Dial><Number/></Dial></Response>", 12200),
    (b"<Response><Play digits='12x'/></Response>", 12200),
])
def test_invalid_documents(doc, code):
    with pytest.raises(TwimlError) as info:
        tv.parse(doc)
    assert info.value.code == code


def test_gather_nesting_keeps_prompts_only():
    doc = tv.parse_document(
        b"<Response><Gather numDigits='3'><Say loop='0'>x</Say><Pause length='1'/>"
        b"<Play>http://a/b.wav</Play><Dial>+1</Dial></Gather></Response>")
    (g,) = doc.verbs
    assert g.nested == (Say("x", loop=0), Pause(1), Play("http://a/b.wav"))
    assert g.num_digits == 3
    assert doc.warnings == ["<Dial> is not allowed in <Gather>; skipped"]


def test_dial_conference_from_the_twilio_library():
    r = VoiceResponse()
    d = LibDial(action="/after", hangup_on_star=True, time_limit=600)
    d.conference("Room 1", muted=True, beep="onEnter", start_conference_on_enter=False,
                 end_conference_on_exit=True, wait_url="/hold", wait_method="GET",
                 max_participants=10, status_callback="/conf", status_callback_event="start end join leave",
                 status_callback_method="GET")
    r.append(d)
    (dial,) = tv.parse(str(r))
    assert dial.numbers == () and dial.action == "/after" and dial.hangup_on_star
    assert dial.conference == tv.Conference(
        "Room 1", muted=True, beep="onEnter", start_conference_on_enter=False,
        end_conference_on_exit=True, wait_url="/hold", wait_method="GET",
        max_participants=10, status_callback="/conf", status_callback_method="GET",
        status_callback_event=("start", "end", "join", "leave"))
    (plain,) = tv.parse("<Response><Dial><Conference>r</Conference></Dial></Response>")
    assert plain.conference == tv.Conference("r") and plain.conference.beep == "true"


def test_dial_conference_errors_and_numbers_beside_it():
    doc = tv.parse_document("<Response><Dial><Number>+15005550001</Number>"
                            "<Conference>r</Conference></Dial></Response>")
    assert doc.verbs[0].numbers == () and doc.verbs[0].conference.name == "r"
    assert any("Number" in w for w in doc.warnings)
    for bad in ("<Conference></Conference>", "<Conference beep='loud'>r</Conference>",
                "<Conference>a</Conference><Conference>b</Conference>",
                "<Conference muted='maybe'>r</Conference>"):
        with pytest.raises(TwimlError) as exc:
            tv.parse(f"<Response><Dial>{bad}</Dial></Response>")
        assert exc.value.code == tv.SCHEMA_WARNING
