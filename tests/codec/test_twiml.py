"""Messaging TwiML parsing, with the official twilio library as the document generator."""

import pytest
from twilio.twiml.messaging_response import Body, Media, MessagingResponse
from twilio.twiml.messaging_response import Message as LibMessage

from gateway.codec import twiml
from gateway.codec.twiml import Message, Redirect, TwimlError


def test_library_output_from_reference():
    r = MessagingResponse()
    r.message("Hello from gateway")
    m = LibMessage(to="+15005550001", from_="+15005550006", action="/status", method="POST")
    m.append(Body("Body text"))
    m.append(Media("https://example.com/cat.jpg"))
    r.append(m)
    r.redirect("https://example.com/next", method="POST")
    doc = str(r)
    # the exact text recorded in reference/twilio.md §6
    assert doc == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hello from gateway</Message>'
        '<Message action="/status" from="+15005550006" method="POST" to="+15005550001">'
        "<Body>Body text</Body><Media>https://example.com/cat.jpg</Media></Message>"
        '<Redirect method="POST">https://example.com/next</Redirect></Response>'
    )
    assert twiml.parse(doc) == [
        Message(body="Hello from gateway"),
        Message(
            to="+15005550001",
            from_="+15005550006",
            body="Body text",
            action="/status",
            method="POST",
            media=("https://example.com/cat.jpg",),
        ),
        Redirect(url="https://example.com/next", method="POST"),
    ]


def test_empty_response_forms():
    assert twiml.parse(str(MessagingResponse())) == []
    assert twiml.parse(b"<Response></Response>") == []
    assert twiml.parse(b"  \n<Response>\n  </Response>\n") == []


def test_whitespace_status_callback_and_get_method():
    doc = b"""<?xml version="1.0"?>
    <Response>
      <Message statusCallback="https://e.com/cb" method="get">
        <Body>
          hi there
        </Body>
        <Media> https://e.com/a.png </Media>
        <Media>https://e.com/b.png</Media>
      </Message>
    </Response>"""
    (m,) = twiml.parse(doc)
    assert m.body == "hi there"
    assert m.media == ("https://e.com/a.png", "https://e.com/b.png")
    assert m.method == "GET"
    assert m.status_callback == "https://e.com/cb"
    assert m.to == "" and m.from_ == ""


def test_unicode_and_escaped_text():
    (m,) = twiml.parse("<Response><Message>caf\u00e9 &amp; \U0001f600 &lt;3</Message></Response>")
    assert m.body == "caf\u00e9 & \U0001f600 <3"


def test_redirect_default_method_and_stops_document():
    actions = twiml.parse(
        b"<Response><Redirect>/next</Redirect><Message>never</Message></Response>"
    )
    assert actions == [Redirect(url="/next", method="POST")]


def test_legacy_sms_verb_and_unknown_verbs():
    doc = twiml.parse_document(b"<Response><Say>x</Say><Sms to='+1500'>hi</Sms></Response>")
    assert doc.actions == [Message(to="+1500", body="hi")]
    assert any("Say" in w for w in doc.warnings)


@pytest.mark.parametrize(
    "doc",
    [
        b"",
        b"   ",
        b"<Response><Message>unclosed</Response>",
        b"not xml at all",
        b"<Reply><Message>x</Message></Reply>",
        b'<!DOCTYPE r [<!ENTITY a "aaaa">]><Response><Message>&a;</Message></Response>',
        b"<Response><Message method='PUT'>x</Message></Response>",
        b"<Response><Redirect></Redirect></Response>",
    ],
)
def test_invalid_documents(doc):
    with pytest.raises(TwimlError) as info:
        twiml.parse(doc)
    assert info.value.code in (twiml.PARSE_FAILURE, twiml.SCHEMA_WARNING)


def test_too_many_media():
    media = "".join(f"<Media>https://e.com/{i}.png</Media>" for i in range(11))
    with pytest.raises(TwimlError):
        twiml.parse(f"<Response><Message>{media}</Message></Response>")
