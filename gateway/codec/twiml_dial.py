"""Voice TwiML ``<Dial>``: the verb and its nouns -> frozen dataclasses.

Owns: ``Dial``, ``Number``, ``Sip``, ``Conference``, ``Queue`` and their parsing
(``parse_dial``; ``queue_name`` is shared with ``<Enqueue>``). ``twiml_voice`` parses the
rest of a document and re-exports these names. Pure; no I/O.

Rules (Twilio's, ``reference/twilio.md`` §6):
- Dial text is one ``<Number>``. A ``<Dial>`` holding a ``<Conference>`` (or a
  ``<Queue>``) joins that room (dequeues from that queue); ``<Number>``/``<Sip>`` nouns
  beside it are ignored (warning); a second ``<Conference>``/``<Queue>``, both, or an empty
  name is a 12200 error. Nouns this gateway does not bridge (``<Client>``,
  ``<Application>``…) are skipped with a warning.
- ``<Sip>`` text must be a ``sip:`` or ``sips:`` URI (``voice.sip_dial`` checks the rest);
  queue names are 1..64 characters (Twilio's limit).
- ``record``: ``true``/``false`` are aliases of ``record-from-answer`` /
  ``do-not-record``; other unknown modes are 12200.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codec import twiml_attrs as A
from gateway.codec.twiml import _Node, _text

__all__ = ["Number", "Sip", "Conference", "Queue", "Dial", "parse_dial", "queue_name"]


@dataclass(frozen=True, slots=True)
class Number:
    number: str
    send_digits: str = ""
    url: str | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Sip:
    uri: str                                 # sip[s]:user@host[:port][;transport=..][?X-H=v]
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


_RECORD_MODES = {
    "true": "record-from-answer", "false": "do-not-record",
    "do-not-record": "do-not-record", "record-from-answer": "record-from-answer",
    "record-from-ringing": "record-from-ringing",
    "record-from-answer-dual": "record-from-answer-dual",
    "record-from-ringing-dual": "record-from-ringing-dual",
}
_BEEPS = {"true": "true", "false": "false", "onenter": "onEnter", "onexit": "onExit"}


def _conference(node: _Node) -> Conference:
    name = _text(node)
    if not name:
        raise A.bad("<Conference> without a room name")
    beep = (node.attrs.get("beep") or "true").strip()
    if beep.lower() not in _BEEPS:
        raise A.bad(f"<Conference beep={beep!r}>: true, false, onEnter or onExit")
    return Conference(
        name=name, muted=A.bool_attr(node, "muted", False), beep=_BEEPS[beep.lower()],
        start_conference_on_enter=A.bool_attr(node, "startConferenceOnEnter", True),
        end_conference_on_exit=A.bool_attr(node, "endConferenceOnExit", False),
        wait_url=A.opt(node, "waitUrl"), wait_method=A.method(node, "waitMethod"),
        max_participants=A.int_attr(node, "maxParticipants", 250, 2, 250),
        status_callback=A.opt(node, "statusCallback"),
        status_callback_method=A.method(node, "statusCallbackMethod"),
        status_callback_event=A.events(node))


def _sip(node: _Node) -> Sip:
    uri = _text(node)
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips") or not rest:
        raise A.bad(f"<Sip>{uri!r}: expected a sip: or sips: URI")
    return Sip(uri, username=A.opt(node, "username"), password=node.attrs.get("password"),
               url=A.opt(node, "url"), method=A.method(node),
               status_callback=A.opt(node, "statusCallback"),
               status_callback_method=A.method(node, "statusCallbackMethod"),
               status_callback_event=A.events(node))


def queue_name(node: _Node) -> str:
    name = _text(node)
    if not 1 <= len(name) <= 64:
        raise A.bad(f"<{node.tag}>{name!r}: a queue name is 1 to 64 characters")
    return name


def parse_dial(node: _Node, warnings: list[str]) -> Dial:
    numbers: list[Number | Sip] = []
    conference: Conference | None = None
    queue: Queue | None = None
    text = _text(node)
    if text:
        numbers.append(Number(text))
    for child in node.children:
        if child.tag == "Conference":
            if conference is not None:
                raise A.bad("<Dial> with more than one <Conference>")
            conference = _conference(child)
        elif child.tag == "Number":
            number = _text(child)
            if not number:
                raise A.bad("<Number> without a number")
            numbers.append(Number(number, send_digits=A.digits(child, "sendDigits"),
                                  url=A.opt(child, "url"), method=A.method(child)))
        elif child.tag == "Sip":
            numbers.append(_sip(child))
        elif child.tag == "Queue":
            if queue is not None:
                raise A.bad("<Dial> with more than one <Queue>")
            queue = Queue(queue_name(child), url=A.opt(child, "url"),
                          method=A.method(child))
        else:
            warnings.append(f"<Dial><{child.tag}> is not supported by this gateway; skipped")
    if conference is not None and queue is not None:
        raise A.bad("<Dial> with both <Conference> and <Queue>")
    if (conference is not None or queue is not None) and numbers:
        warnings.append("<Dial>: <Number>/<Sip> beside <Conference>/<Queue> ignored")
        numbers = []
    record = (node.attrs.get("record") or "do-not-record").strip()
    if record not in _RECORD_MODES:
        raise A.bad(f"<Dial record={record!r}>: unknown recording mode")
    return Dial(
        numbers=tuple(numbers),
        action=A.opt(node, "action"),
        method=A.method(node),
        timeout=A.int_attr(node, "timeout", 30, 1, 600),
        caller_id=A.opt(node, "callerId"),
        time_limit=A.int_attr(node, "timeLimit", 14400, 1, 86400),
        hangup_on_star=A.bool_attr(node, "hangupOnStar", False),
        record=_RECORD_MODES[record],
        conference=conference,
        queue=queue,
    )
