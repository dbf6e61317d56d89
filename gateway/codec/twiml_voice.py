"""Voice TwiML: the document a voice webhook answers -> a list of verbs.

Owns: parsing ``<Response>`` documents with ``<Say>``, ``<Play>``, ``<Pause>``,
``<Gather>`` (nesting ``<Say>``/``<Play>``/``<Pause>``), ``<Record>``, ``<Dial>``,
``<Enqueue>``, ``<Leave>``, ``<Redirect>``, ``<Hangup>`` and ``<Reject>``, into frozen
dataclasses with Twilio's defaults (``reference/twilio.md`` §6). ``<Dial>`` and its
nouns (``Number``, ``Sip``, ``Conference``, ``Queue``) are parsed by ``twiml_dial`` and
re-exported here; attribute readers are ``twiml_attrs``. Pure; no I/O.

Rules:
- Root must be ``<Response>``; malformed XML, DOCTYPE/entity declarations, an empty
  body -> ``TwimlError`` code 12100 (the XML reader is shared with messaging TwiML).
- An attribute value that cannot be used (``timeout="soon"``, ``method="PUT"``, a
  ``<Play>``/``<Redirect>`` without a URL, ``<Reject reason="x">``) -> ``TwimlError``
  code 12200 (Twilio's schema validation error): the document does not run.
- Unknown verbs, and nouns this gateway does not bridge, are skipped and listed in
  ``Document.warnings`` (``<Dial>``'s own rules: ``twiml_dial``).
- ``<Enqueue>`` names are 1..64 characters (Twilio's limit).
- Attribute values keep Twilio's meaning: ``loop="0"`` = repeat until hangup (the
  interpreter caps it); ``numDigits`` absent = unlimited (``None``); ``action`` absent =
  ``None`` (the interpreter resolves it to the current document URL where Twilio does).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codec import twiml_attrs as A
from gateway.codec.twiml import PARSE_FAILURE, SCHEMA_WARNING, TwimlError, _build_tree, _Node, _text
from gateway.codec.twiml_dial import Conference, Dial, Number, Queue, Sip, parse_dial, queue_name

__all__ = [
    "Say", "Play", "Pause", "Gather", "Record", "Number", "Sip", "Conference", "Queue", "Dial",
    "Enqueue", "Leave", "Redirect", "Hangup", "Reject", "Document", "TwimlError", "parse",
    "parse_document", "PARSE_FAILURE", "SCHEMA_WARNING",
]


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    voice: str = "man"
    language: str = "en-US"
    loop: int = 1


@dataclass(frozen=True, slots=True)
class Play:
    url: str = ""
    loop: int = 1
    digits: str = ""


@dataclass(frozen=True, slots=True)
class Pause:
    length: int = 1


@dataclass(frozen=True, slots=True)
class Gather:
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    input: str = "dtmf"
    nested: tuple[Say | Play | Pause, ...] = ()
    action_on_empty_result: bool = False
    language: str = "en-US"


@dataclass(frozen=True, slots=True)
class Record:
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "1234567890*#"
    max_length: int = 3600
    play_beep: bool = True
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    trim: str = "trim-silence"


@dataclass(frozen=True, slots=True)
class Enqueue:
    name: str
    action: str | None = None
    method: str = "POST"
    wait_url: str | None = None
    wait_url_method: str = "POST"


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "rejected"


Verb = Say | Play | Pause | Gather | Record | Dial | Enqueue | Leave | Redirect | Hangup | Reject


@dataclass(slots=True)
class Document:
    verbs: list[Verb]
    warnings: list[str]


def _say(node: _Node) -> Say:
    return Say(
        text=_text(node),
        voice=(node.attrs.get("voice") or "man").strip(),
        language=(node.attrs.get("language") or "en-US").strip(),
        loop=A.int_attr(node, "loop", 1),
    )


def _play(node: _Node) -> Play:
    url = _text(node)
    digits = A.digits(node, "digits")
    if not url and not digits:
        raise A.bad("<Play> needs a URL or digits")
    return Play(url=url, loop=A.int_attr(node, "loop", 1), digits=digits)


def _pause(node: _Node) -> Pause:
    return Pause(length=A.int_attr(node, "length", 1, 0, 86400))


_PROMPTS = {"Say": _say, "Play": _play, "Pause": _pause}


def _gather(node: _Node, warnings: list[str]) -> Gather:
    nested: list[Say | Play | Pause] = []
    for child in node.children:
        build = _PROMPTS.get(child.tag)
        if build is None:
            warnings.append(f"<{child.tag}> is not allowed in <Gather>; skipped")
            continue
        nested.append(build(child))
    num = node.attrs.get("numDigits")
    input_ = (node.attrs.get("input") or "dtmf").strip()
    if not set(input_.split()) <= {"dtmf", "speech"} or not input_:
        raise A.bad(f"<Gather input={input_!r}>: dtmf, speech or 'dtmf speech'")
    if "speech" in input_.split():
        warnings.append("<Gather input='speech'>: speech recognition is not supported; "
                        "only DTMF is collected")
    return Gather(
        action=A.opt(node, "action"),
        method=A.method(node),
        timeout=A.int_attr(node, "timeout", 5, 0, 600),
        finish_on_key=A.keys(node, "finishOnKey", "#")[:1],
        num_digits=(A.int_attr(node, "numDigits", 0, 1, 10000)
                    if num is not None and num.strip() else None),
        input=input_,
        nested=tuple(nested),
        action_on_empty_result=A.bool_attr(node, "actionOnEmptyResult", False),
        language=(node.attrs.get("language") or "en-US").strip(),
    )


def _record(node: _Node) -> Record:
    return Record(
        action=A.opt(node, "action"),
        method=A.method(node),
        timeout=A.int_attr(node, "timeout", 5, 0, 3600),
        finish_on_key=A.keys(node, "finishOnKey", "1234567890*#"),
        max_length=A.int_attr(node, "maxLength", 3600, 1, 14400),
        play_beep=A.bool_attr(node, "playBeep", True),
        recording_status_callback=A.opt(node, "recordingStatusCallback"),
        recording_status_callback_method=A.method(node, "recordingStatusCallbackMethod"),
        trim=(node.attrs.get("trim") or "trim-silence").strip(),
    )


def _enqueue(node: _Node) -> Enqueue:
    return Enqueue(queue_name(node), action=A.opt(node, "action"), method=A.method(node),
                   wait_url=A.opt(node, "waitUrl"),
                   wait_url_method=A.method(node, "waitUrlMethod"))


def _redirect(node: _Node) -> Redirect:
    url = _text(node)
    if not url:
        raise A.bad("<Redirect> without a URL")
    return Redirect(url=url, method=A.method(node))


def _reject(node: _Node) -> Reject:
    reason = (node.attrs.get("reason") or "rejected").strip()
    if reason not in ("rejected", "busy"):
        raise A.bad(f"<Reject reason={reason!r}>: rejected or busy")
    return Reject(reason)


def parse_document(data: bytes | str) -> Document:
    """Parse a voice TwiML document; raise ``TwimlError`` when it cannot run."""
    root = _build_tree(data)
    if root.tag != "Response":
        raise TwimlError(f"root element must be <Response>, got <{root.tag}>", PARSE_FAILURE)
    verbs: list[Verb] = []
    warnings: list[str] = []
    for node in root.children:
        tag = node.tag
        if tag in _PROMPTS:
            verbs.append(_PROMPTS[tag](node))
        elif tag == "Gather":
            verbs.append(_gather(node, warnings))
        elif tag == "Record":
            verbs.append(_record(node))
        elif tag == "Dial":
            verbs.append(parse_dial(node, warnings))
        elif tag == "Enqueue":
            verbs.append(_enqueue(node))
        elif tag == "Leave":
            verbs.append(Leave())
        elif tag == "Redirect":
            verbs.append(_redirect(node))
        elif tag == "Hangup":
            verbs.append(Hangup())
        elif tag == "Reject":
            verbs.append(_reject(node))
        else:
            warnings.append(f"unknown verb <{tag}> skipped")
    return Document(verbs, warnings)


def parse(data: bytes | str) -> list[Verb]:
    """The verbs of a voice TwiML document, in order."""
    return parse_document(data).verbs
