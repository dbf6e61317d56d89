"""Voice TwiML: the document a voice webhook answers -> a list of verbs.

Owns: parsing ``<Response>`` documents with ``<Say>``, ``<Play>``, ``<Pause>``,
``<Gather>`` (nesting ``<Say>``/``<Play>``/``<Pause>``), ``<Record>``, ``<Dial>`` (text,
``<Number>``/``<Sip>`` nouns, one ``<Conference>`` or one ``<Queue>``), ``<Enqueue>``,
``<Leave>``, ``<Redirect>``, ``<Hangup>`` and ``<Reject>``, into frozen
dataclasses with Twilio's defaults (``reference/twilio.md`` §6). Pure; no I/O.

Rules:
- Root must be ``<Response>``; malformed XML, DOCTYPE/entity declarations, an empty
  body -> ``TwimlError`` code 12100 (the XML reader is shared with messaging TwiML).
- An attribute value that cannot be used (``timeout="soon"``, ``method="PUT"``, a
  ``<Play>``/``<Redirect>`` without a URL, ``<Reject reason="x">``) -> ``TwimlError``
  code 12200 (Twilio's schema validation error): the document does not run.
- Unknown verbs, and nouns this gateway does not bridge (``<Client>``,
  ``<Application>``…), are skipped and listed in ``Document.warnings``. A ``<Dial>``
  holding a ``<Conference>`` (or a ``<Queue>``) joins that room (dequeues from that
  queue); ``<Number>``/``<Sip>`` nouns beside it are ignored (warning); a second
  ``<Conference>``/``<Queue>``, both, or an empty name is a 12200 error.
- ``<Sip>`` text must be a ``sip:`` URI (``sips:`` is refused: no TLS client here);
  ``<Enqueue>`` names are 1..64 characters (Twilio's limit).
- Attribute values keep Twilio's meaning: ``loop="0"`` = repeat until hangup (the
  interpreter caps it); ``numDigits`` absent = unlimited (``None``); ``action`` absent =
  ``None`` (the interpreter resolves it to the current document URL where Twilio does).
- ``record`` on ``<Dial>``: ``true``/``false`` are aliases of ``record-from-answer`` /
  ``do-not-record``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codec.twiml import PARSE_FAILURE, SCHEMA_WARNING, TwimlError, _build_tree, _Node, _text

__all__ = [
    "Say", "Play", "Pause", "Gather", "Record", "Number", "Sip", "Conference", "Queue", "Dial",
    "Enqueue", "Leave", "Redirect", "Hangup", "Reject", "Document", "TwimlError", "parse", "parse_document", "PARSE_FAILURE",
    "SCHEMA_WARNING",
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
class Number:
    number: str
    send_digits: str = ""
    url: str | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Sip:
    uri: str                                 # sip:user@host[:port][;transport=..][?X-H=v]
    username: str | None = None
    password: str | None = None
    url: str | None = None                   # whisper TwiML for the callee
    method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_event: tuple[str, ...] = ()
    send_digits: str = ""                    # (not a <Sip> attribute; <Number>'s shape)


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    url: str | None = None                   # TwiML played to the dequeued caller
    method: str = "POST"


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
class Conference:
    name: str
    muted: bool = False
    beep: str = "true"                       # true | false | onEnter | onExit
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    wait_url: str | None = None              # played while the room waits (none: silence)
    wait_method: str = "POST"
    max_participants: int = 250
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_event: tuple[str, ...] = ()   # start end join leave (others ignored)


@dataclass(frozen=True, slots=True)
class Dial:
    numbers: tuple[Number | Sip, ...] = ()
    action: str | None = None
    method: str = "POST"
    timeout: int = 30
    caller_id: str | None = None
    time_limit: int = 14400
    hangup_on_star: bool = False
    record: str = "do-not-record"
    conference: Conference | None = None
    queue: Queue | None = None


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

_DTMF = set("0123456789*#")
_RECORD_MODES = {
    "true": "record-from-answer", "false": "do-not-record",
    "do-not-record": "do-not-record", "record-from-answer": "record-from-answer",
    "record-from-ringing": "record-from-ringing",
    "record-from-answer-dual": "record-from-answer-dual",
    "record-from-ringing-dual": "record-from-ringing-dual",
}


@dataclass(slots=True)
class Document:
    verbs: list[Verb]
    warnings: list[str]


def _bad(message: str) -> TwimlError:
    return TwimlError(message, SCHEMA_WARNING)


def _int(node: _Node, name: str, default: int, lo: int = 0, hi: int = 10**7) -> int:
    raw = node.attrs.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise _bad(f"<{node.tag} {name}={raw!r}>: not an integer") from None
    if not lo <= value <= hi:
        raise _bad(f"<{node.tag} {name}={raw!r}>: out of range {lo}..{hi}")
    return value


def _bool(node: _Node, name: str, default: bool) -> bool:
    raw = node.attrs.get(name)
    if raw is None or raw.strip() == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    raise _bad(f"<{node.tag} {name}={raw!r}>: expected true or false")


def _method(node: _Node, name: str = "method") -> str:
    raw = node.attrs.get(name)
    method = (raw or "POST").strip().upper()
    if method not in ("GET", "POST"):
        raise _bad(f"<{node.tag} {name}={raw!r}>: expected GET or POST")
    return method


def _opt(node: _Node, name: str) -> str | None:
    raw = node.attrs.get(name)
    return raw.strip() if raw and raw.strip() else None


def _keys(node: _Node, name: str, default: str) -> str:
    raw = node.attrs.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if any(ch not in _DTMF for ch in raw):
        raise _bad(f"<{node.tag} {name}={raw!r}>: only 0-9, * and # allowed")
    return raw


def _digits(node: _Node, name: str) -> str:
    raw = (node.attrs.get(name) or "").strip()
    if any(ch not in _DTMF and ch not in "wW" for ch in raw):
        raise _bad(f"<{node.tag} {name}={raw!r}>: only 0-9, *, #, w and W allowed")
    return raw


def _say(node: _Node) -> Say:
    return Say(
        text=_text(node),
        voice=(node.attrs.get("voice") or "man").strip(),
        language=(node.attrs.get("language") or "en-US").strip(),
        loop=_int(node, "loop", 1),
    )


def _play(node: _Node) -> Play:
    url = _text(node)
    digits = _digits(node, "digits")
    if not url and not digits:
        raise _bad("<Play> needs a URL or digits")
    return Play(url=url, loop=_int(node, "loop", 1), digits=digits)


def _pause(node: _Node) -> Pause:
    return Pause(length=_int(node, "length", 1, 0, 86400))


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
        raise _bad(f"<Gather input={input_!r}>: dtmf, speech or 'dtmf speech'")
    if "speech" in input_.split():
        warnings.append("<Gather input='speech'>: speech recognition is not supported; "
                        "only DTMF is collected")
    return Gather(
        action=_opt(node, "action"),
        method=_method(node),
        timeout=_int(node, "timeout", 5, 0, 600),
        finish_on_key=_keys(node, "finishOnKey", "#")[:1],
        num_digits=_int(node, "numDigits", 0, 1, 10000) if num is not None and num.strip() else None,
        input=input_,
        nested=tuple(nested),
        action_on_empty_result=_bool(node, "actionOnEmptyResult", False),
        language=(node.attrs.get("language") or "en-US").strip(),
    )


def _record(node: _Node) -> Record:
    return Record(
        action=_opt(node, "action"),
        method=_method(node),
        timeout=_int(node, "timeout", 5, 0, 3600),
        finish_on_key=_keys(node, "finishOnKey", "1234567890*#"),
        max_length=_int(node, "maxLength", 3600, 1, 14400),
        play_beep=_bool(node, "playBeep", True),
        recording_status_callback=_opt(node, "recordingStatusCallback"),
        recording_status_callback_method=_method(node, "recordingStatusCallbackMethod"),
        trim=(node.attrs.get("trim") or "trim-silence").strip(),
    )


_BEEPS = {"true": "true", "false": "false", "onenter": "onEnter", "onexit": "onExit"}


def _conference(node: _Node) -> Conference:
    name = _text(node)
    if not name:
        raise _bad("<Conference> without a room name")
    beep = (node.attrs.get("beep") or "true").strip()
    if beep.lower() not in _BEEPS:
        raise _bad(f"<Conference beep={beep!r}>: true, false, onEnter or onExit")
    events = tuple((node.attrs.get("statusCallbackEvent") or "").replace(",", " ").split())
    return Conference(
        name=name, muted=_bool(node, "muted", False), beep=_BEEPS[beep.lower()],
        start_conference_on_enter=_bool(node, "startConferenceOnEnter", True),
        end_conference_on_exit=_bool(node, "endConferenceOnExit", False),
        wait_url=_opt(node, "waitUrl"), wait_method=_method(node, "waitMethod"),
        max_participants=_int(node, "maxParticipants", 250, 2, 250),
        status_callback=_opt(node, "statusCallback"),
        status_callback_method=_method(node, "statusCallbackMethod"),
        status_callback_event=events)


def _sip(node: _Node) -> Sip:
    uri = _text(node)
    if not uri.lower().startswith("sip:") or len(uri) <= 4:
        raise _bad(f"<Sip>{uri!r}: expected a sip: URI")
    return Sip(uri, username=_opt(node, "username"), password=node.attrs.get("password"),
               url=_opt(node, "url"), method=_method(node),
               status_callback=_opt(node, "statusCallback"),
               status_callback_method=_method(node, "statusCallbackMethod"),
               status_callback_event=tuple(
                   (node.attrs.get("statusCallbackEvent") or "").replace(",", " ").split()))


def _queue_name(node: _Node) -> str:
    name = _text(node)
    if not 1 <= len(name) <= 64:
        raise _bad(f"<{node.tag}>{name!r}: a queue name is 1 to 64 characters")
    return name


def _enqueue(node: _Node) -> Enqueue:
    return Enqueue(_queue_name(node), action=_opt(node, "action"), method=_method(node),
                   wait_url=_opt(node, "waitUrl"),
                   wait_url_method=_method(node, "waitUrlMethod"))


def _dial(node: _Node, warnings: list[str]) -> Dial:
    numbers: list[Number | Sip] = []
    conference: Conference | None = None
    queue: Queue | None = None
    text = _text(node)
    if text:
        numbers.append(Number(text))
    for child in node.children:
        if child.tag == "Conference":
            if conference is not None:
                raise _bad("<Dial> with more than one <Conference>")
            conference = _conference(child)
        elif child.tag == "Number":
            number = _text(child)
            if not number:
                raise _bad("<Number> without a number")
            numbers.append(Number(number, send_digits=_digits(child, "sendDigits"),
                                  url=_opt(child, "url"), method=_method(child)))
        elif child.tag == "Sip":
            numbers.append(_sip(child))
        elif child.tag == "Queue":
            if queue is not None:
                raise _bad("<Dial> with more than one <Queue>")
            queue = Queue(_queue_name(child), url=_opt(child, "url"), method=_method(child))
        else:
            warnings.append(f"<Dial><{child.tag}> is not supported by this gateway; skipped")
    if conference is not None and queue is not None:
        raise _bad("<Dial> with both <Conference> and <Queue>")
    if (conference is not None or queue is not None) and numbers:
        warnings.append("<Dial>: <Number>/<Sip> beside <Conference>/<Queue> ignored")
        numbers = []
    record = (node.attrs.get("record") or "do-not-record").strip()
    if record not in _RECORD_MODES:
        raise _bad(f"<Dial record={record!r}>: unknown recording mode")
    return Dial(
        numbers=tuple(numbers),
        action=_opt(node, "action"),
        method=_method(node),
        timeout=_int(node, "timeout", 30, 1, 600),
        caller_id=_opt(node, "callerId"),
        time_limit=_int(node, "timeLimit", 14400, 1, 86400),
        hangup_on_star=_bool(node, "hangupOnStar", False),
        record=_RECORD_MODES[record],
        conference=conference,
        queue=queue,
    )


def _redirect(node: _Node) -> Redirect:
    url = _text(node)
    if not url:
        raise _bad("<Redirect> without a URL")
    return Redirect(url=url, method=_method(node))


def _reject(node: _Node) -> Reject:
    reason = (node.attrs.get("reason") or "rejected").strip()
    if reason not in ("rejected", "busy"):
        raise _bad(f"<Reject reason={reason!r}>: rejected or busy")
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
            verbs.append(_dial(node, warnings))
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
