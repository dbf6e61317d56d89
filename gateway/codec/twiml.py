"""Messaging TwiML: the reply document of an inbound-SMS webhook -> a list of actions.

Owns: parsing ``<Response>`` documents with ``<Message>`` (text, or ``<Body>`` and
``<Media>`` nouns), the legacy ``<Sms>`` verb (treated as ``<Message>``) and
``<Redirect>``. Pure function of bytes; no I/O.

Rules:
- Root must be ``<Response>``; anything else, malformed XML, a DOCTYPE or entity
  declaration (no entity expansion, no external fetches) -> ``TwimlError`` (code 12100,
  Twilio's "Document parse failure"). An empty body or whitespace only is a parse failure
  too (Twilio logs 11200/12100 for it); ``<Response/>`` is valid and means "no reply".
- Text is stripped of surrounding whitespace (indentation from pretty printers);
  a ``<Message>`` may hold text and/or ``<Body>`` nouns (joined) and up to 10 ``<Media>``.
- Defaults as Twilio: ``method`` POST for ``<Message>`` and ``<Redirect>``; ``to`` and
  ``from`` empty = "reply to the sender from the receiving number" (the runtime fills
  them in). Unknown verbs are skipped and reported in ``Document.warnings`` (Twilio's
  12200 schema warning does not stop execution either).
- A ``<Redirect>`` ends the document: verbs after it are not executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

PARSE_FAILURE = 12100
SCHEMA_WARNING = 12200
MAX_MEDIA = 10


class TwimlError(ValueError):
    def __init__(self, message: str, code: int = PARSE_FAILURE):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Message:
    to: str = ""
    from_: str = ""
    body: str = ""
    action: str | None = None
    method: str = "POST"
    status_callback: str | None = None
    media: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)


def _build_tree(data: bytes | str) -> _Node:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data.strip():
        raise TwimlError("empty TwiML document")
    parser = expat.ParserCreate()
    root: list[_Node] = []
    stack: list[_Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(tag, dict(attrs))
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text.append(text)

    def refuse(*_args: object) -> None:
        raise TwimlError("DOCTYPE and entity declarations are not allowed in TwiML")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise TwimlError(f"invalid XML: {exc}") from None
    return root[0]


def _text(node: _Node) -> str:
    return "".join(node.text).strip()


def _method(value: str | None) -> str:
    method = (value or "POST").strip().upper()
    if method not in ("GET", "POST"):
        raise TwimlError(f"invalid method {value!r}", SCHEMA_WARNING)
    return method


def _message(node: _Node, warnings: list[str]) -> Message:
    parts = [_text(node)] if _text(node) else []
    media: list[str] = []
    for child in node.children:
        if child.tag == "Body":
            if _text(child):
                parts.append(_text(child))
        elif child.tag == "Media":
            if _text(child):
                media.append(_text(child))
        else:
            warnings.append(f"unknown noun <{child.tag}> in <{node.tag}> skipped")
    if len(media) > MAX_MEDIA:
        raise TwimlError(f"more than {MAX_MEDIA} <Media> in one <Message>", SCHEMA_WARNING)
    a = node.attrs
    return Message(
        to=a.get("to", "").strip(),
        from_=a.get("from", "").strip(),
        body="\n".join(parts),
        action=a.get("action") or None,
        method=_method(a.get("method")),
        status_callback=a.get("statusCallback") or None,
        media=tuple(media),
    )


@dataclass(slots=True)
class Document:
    actions: list[Message | Redirect]
    warnings: list[str]


def parse_document(data: bytes | str) -> Document:
    """Parse a messaging TwiML document; raise ``TwimlError`` when it cannot run."""
    root = _build_tree(data)
    if root.tag != "Response":
        raise TwimlError(f"root element must be <Response>, got <{root.tag}>")
    actions: list[Message | Redirect] = []
    warnings: list[str] = []
    for node in root.children:
        if node.tag in ("Message", "Sms"):
            actions.append(_message(node, warnings))
        elif node.tag == "Redirect":
            url = _text(node)
            if not url:
                raise TwimlError("<Redirect> without a URL", SCHEMA_WARNING)
            actions.append(Redirect(url=url, method=_method(node.attrs.get("method"))))
            break
        else:
            warnings.append(f"unknown verb <{node.tag}> skipped")
    return Document(actions, warnings)


def parse(data: bytes | str) -> list[Message | Redirect]:
    """The actions of a messaging TwiML document, in order."""
    return parse_document(data).actions
