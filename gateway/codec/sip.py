"""SIP message codec (RFC 3261 §7, §18.3, §20): parse and serialize requests/responses.

Owns: ``Request``/``Response`` (ordered header list + body), ``parse`` for one UDP
datagram, ``StreamDecoder`` for TCP (Content-Length framing, keepalive CRLFs skipped),
``Message.encode`` (Content-Length always written, header names in their long form).

Rules:
- Tolerant as §7.3 asks: header names are case-insensitive and compact forms (v, f, t, i,
  m, l, c, k, s, e, o, r, u, x, y, b, j, a, d) are expanded; folded continuation lines are
  unfolded; a header may repeat or be comma-joined (``get_all`` splits list headers).
- Strict where the grammar is not ambiguous: the start line has exactly three parts
  (single SP), version SIP/2.0 (else 505), the mandatory headers (Via, From, To, Call-ID,
  CSeq) must be present and parse, CSeq's method must equal the request's.
- Every failure is ``SipError`` carrying the status to answer with (400, 505, 513);
  no other exception leaves ``parse``/``StreamDecoder.feed`` for any input bytes.
"""

from __future__ import annotations

from gateway.codec.sip_headers import (
    CSeq,
    NameAddr,
    SipError,
    Uri,
    Via,
    is_token,
    split_commas,
)

__all__ = ["SipError", "Request", "Response", "Message", "parse", "StreamDecoder",
           "Uri", "NameAddr", "Via", "CSeq", "REASONS", "error_response", "split_commas"]

MAX_MESSAGE = 65535

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
           "l": "Content-Length", "c": "Content-Type", "k": "Supported", "s": "Subject",
           "e": "Content-Encoding", "o": "Event", "r": "Refer-To", "u": "Allow-Events",
           "x": "Session-Expires", "y": "Identity", "b": "Referred-By", "j": "Reject-Contact",
           "a": "Accept-Contact", "d": "Request-Disposition"}
_CANON = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
    "Max-Forwards", "Route", "Record-Route", "Allow", "Accept", "Supported", "Require",
    "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization",
    "User-Agent", "Server", "Session-Expires", "P-Asserted-Identity", "Expires", "Event",
    "Subject", "Content-Encoding", "Min-SE", "Allow-Events", "Unsupported", "Warning",
    "Reason", "Timestamp", "Date", "Organization", "Accept-Language", "Accept-Encoding",
    "Content-Disposition", "Refer-To", "Referred-By", "RSeq", "RAck")}
_CANON["www-authenticate"] = "WWW-Authenticate"
# headers whose values are comma-separated lists (RFC 3261 §7.3.1)
_LIST = {"via", "route", "record-route", "contact", "allow", "supported", "require",
         "accept", "unsupported", "proxy-require", "p-asserted-identity", "allow-events",
         "accept-encoding", "accept-language", "content-encoding"}
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

REASONS = {100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183:
           "Session Progress", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           407: "Proxy Authentication Required", 408: "Request Timeout",
           415: "Unsupported Media Type", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
           491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
           503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
           513: "Message Too Large", 603: "Decline"}


def canonical(name: str) -> str:
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANON.get(low) or "-".join(p[:1].upper() + p[1:] for p in low.split("-"))


class Message:
    """Headers are an ordered list of (canonical name, value); body is bytes."""

    def __init__(self, headers: list[tuple[str, str]] | None = None, body: bytes = b""):
        self.headers: list[tuple[str, str]] = [(canonical(n), v) for n, v in headers or []]
        self.body = body

    # --- header access -------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.get_all(name)
        return vals[0] if vals else default

    def get_all(self, name: str) -> list[str]:
        cname = canonical(name)
        raw = [v for n, v in self.headers if n == cname]
        if cname.lower() in _LIST:
            return [item for v in raw for item in split_commas(v)]
        return raw

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.headers.append((canonical(name), value))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        item = (canonical(name), value)
        if first:
            self.headers.insert(0, item)
        else:
            self.headers.append(item)

    def remove(self, name: str) -> None:
        cname = canonical(name)
        self.headers = [(n, v) for n, v in self.headers if n != cname]

    # --- typed views ---------------------------------------------------------------
    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self.get_all("Via")[0])

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.get("CSeq") or "")

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.get("To") or "")

    @property
    def contact(self) -> NameAddr | None:
        vals = self.get_all("Contact")
        return NameAddr.parse(vals[0]) if vals and vals[0] != "*" else None

    def _head_lines(self) -> list[str]:
        lines = [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return lines

    def _start_line(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self) -> bytes:
        head = "\r\n".join([self._start_line(), *self._head_lines()]) + "\r\n\r\n"
        return head.encode() + self.body


class Request(Message):
    def __init__(self, method: str, uri: str, headers=None, body: bytes = b""):
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} {self.call_id}>"


class Response(Message):
    def __init__(self, status: int, reason: str | None = None, headers=None, body: bytes = b""):
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} {self.call_id}>"


# --- parsing ---------------------------------------------------------------------------
def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Header section (without the blank line) and the rest, or None if incomplete."""
    i = data.find(b"\r\n\r\n")
    j = data.find(b"\n\n")
    if i >= 0 and (j < 0 or i <= j):
        return data[:i], data[i + 4:]
    if j >= 0:
        return data[:j], data[j + 2:]
    return None


def _parse_head(head: bytes) -> tuple[Message, int | None]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start, raw = lines[0], lines[1:]
    unfolded: list[str] = []
    for line in raw:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise SipError(400, "continuation before first header")
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    headers = []
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipError(400, f"bad header line {line[:40]!r}")
        headers.append((name, value.strip()))
    msg = _parse_start(start, headers)
    clen = msg.get("Content-Length")
    length = None
    if clen is not None:
        if not clen.isdigit() or len(clen) > 9:
            raise SipError(400, "bad Content-Length")
        length = int(clen)
    _validate(msg)
    return msg, length


def _parse_start(start: str, headers) -> Message:
    if any(c in start for c in "\r\0"):
        raise SipError(400, "control character in start line")
    parts = start.split(" ")
    if start.upper().startswith("SIP/"):
        if len(parts) < 2 or len(parts) == 2 and start.endswith(" "):
            raise SipError(400, "bad status line")
        if parts[0].upper() != "SIP/2.0":
            raise SipError(505, "Version Not Supported")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipError(400, "bad status code")
        return Response(int(code), " ".join(parts[2:]), headers)
    if len(parts) != 3:
        raise SipError(400, "bad request line")
    method, uri, version = parts
    if not is_token(method):
        raise SipError(400, "bad method")
    if not version.upper().startswith("SIP/"):
        raise SipError(400, "bad version")
    if version.upper() != "SIP/2.0":
        raise SipError(505, "Version Not Supported")
    Uri.parse(uri)
    return Request(method, uri, headers)


def _validate(msg: Message) -> None:
    for name in _MANDATORY:
        if not msg.get_all(name):
            raise SipError(400, f"missing {name}")
    if len([n for n, _ in msg.headers if n in ("Call-ID", "CSeq", "From", "To")]) != 4:
        raise SipError(400, "duplicate From/To/Call-ID/CSeq")
    msg.vias  # noqa: B018 - parse for validation
    cseq = msg.cseq
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    if not msg.call_id or any(c.isspace() for c in msg.call_id):
        raise SipError(400, "bad Call-ID")
    mf = msg.get("Max-Forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise SipError(400, "bad Max-Forwards")
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipError(400, "CSeq method does not match")
    for c in msg.get_all("Contact"):
        if c != "*":
            NameAddr.parse(c)
    for name in ("Route", "Record-Route"):
        for v in msg.get_all(name):
            NameAddr.parse(v)


def parse(data: bytes) -> Request | Response:
    """Parse one datagram. Without Content-Length the body is the rest of the datagram."""
    if len(data) > MAX_MESSAGE:
        raise SipError(513, "Message Too Large")
    data = data.lstrip(b"\r\n")
    split = _split_head(data)
    if split is None:
        # tolerate a message with headers only and no blank line at the end
        split = (data.rstrip(b"\r\n"), b"")
    head, rest = split
    if not head:
        raise SipError(400, "empty message")
    msg, length = _parse_head(head)
    if length is not None:
        if length > len(rest):
            raise SipError(400, "Content-Length larger than message")
        rest = rest[:length]
    msg.body = rest
    return msg  # type: ignore[return-value]


def error_response(data: bytes, err: SipError) -> Response | None:
    """Best-effort stateless answer to an unparseable request: the error's status with
    the raw Via/From/To/Call-ID/CSeq lines copied; None when there is no Via to route
    it (or the garbage was a response, which is never answered)."""
    if data.lstrip()[:4].upper() == b"SIP/" or not data.strip():
        return None
    resp = Response(err.status, err.reason)
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    for line in head.splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in _ECHO:
            resp.add(name.strip(), value.strip().replace("\x00", ""))
    return resp if resp.get("Via") else None


_ECHO = {"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"}


class StreamDecoder:
    """TCP framing: ``feed`` bytes, get complete messages. A SipError leaves the decoder
    unusable (the connection should be answered with its status and closed)."""

    def __init__(self, max_message: int = MAX_MESSAGE):
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[Request | Response]:
        self._buf += data
        out = []
        while True:
            while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
                del self._buf[: 2 if self._buf[:1] == b"\r" else 1]
            if self._buf == b"\r":
                break
            split = _split_head(bytes(self._buf))
            if split is None:
                if len(self._buf) > self._max:
                    raise SipError(513, "Message Too Large")
                break
            head, rest = split
            msg, length = _parse_head(head)
            length = length or 0
            if length > self._max:
                raise SipError(513, "Message Too Large")
            if len(rest) < length:
                break
            msg.body = rest[:length]
            del self._buf[: len(self._buf) - len(rest) + length]
            out.append(msg)
        return out
