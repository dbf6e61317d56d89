"""SDP (RFC 8866) for G.711 voice: parse an offer, build an answer (RFC 3264), build an offer.

Owns: ``Sdp`` (the audio stream's address, formats, rtpmap/fmtp, ptime, direction, hold),
``parse``, ``answer`` (PCMU or PCMA in the offerer's order + telephone-event with the
offerer's payload type), ``offer``.

Rules: pure, no I/O, no clock (session ids are random or passed in). Lines may end in CRLF
or LF; unknown lines are ignored. The answer keeps one m-line per offered m-line: every
stream but the first usable audio one is rejected with port 0 (RFC 3264 §6). Error
handling: ``SdpError`` when there is no audio stream or no common codec (callers reply 488).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gateway.codec.rtp import DEFAULT_DTMF_PT, PT_PCMA, PT_PCMU

STATIC = {PT_PCMU: "PCMU/8000", PT_PCMA: "PCMA/8000", 3: "GSM/8000", 9: "G722/8000",
          18: "G729/8000", 13: "CN/8000"}
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
            "inactive": "inactive"}
_CODEC_NAME = {PT_PCMU: "PCMU", PT_PCMA: "PCMA"}


class SdpError(ValueError):
    """Unusable SDP (no audio stream, no common codec, malformed m-line)."""


@dataclass(slots=True)
class Media:
    kind: str                       # "audio", "video", ...
    port: int
    proto: str                      # "RTP/AVP", ...
    formats: list[str]
    connection_host: str | None = None
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None
    direction: str | None = None


@dataclass(slots=True)
class Sdp:
    connection_host: str | None     # audio c= (media level wins over session level)
    audio_port: int                 # 0 when the audio stream is rejected/absent
    payload_types: list[int]        # audio formats in the sender's preference order
    rtpmap: dict[int, str]          # pt -> "PCMU/8000" (static PTs filled in)
    fmtp: dict[int, str]
    telephone_event_pt: int | None
    ptime: int | None
    direction: str                  # sendrecv | sendonly | recvonly | inactive
    origin: str = ""
    media: list[Media] = field(default_factory=list)
    audio_index: int = -1           # index of the audio stream in ``media``

    @property
    def on_hold(self) -> bool:
        """RFC 3264 §8.4 (a=sendonly/inactive) or the RFC 2543 form c=0.0.0.0."""
        return self.direction in ("sendonly", "inactive") or self.connection_host == "0.0.0.0"

    def codec_name(self, pt: int) -> str:
        return self.rtpmap.get(pt, "").split("/")[0].upper()


def _int(s: str, what: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise SdpError(f"bad {what}: {s!r}") from None


def parse(data: bytes | str) -> Sdp:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    session_c = None
    session_dir = None
    origin = ""
    media: list[Media] = []
    cur: Media | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:].strip()
        if key == "o":
            origin = value
        elif key == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"bad m-line: {value!r}")
            port = _int(parts[1].split("/")[0], "m-line port")
            cur = Media(parts[0].lower(), port, parts[2], parts[3:])
            media.append(cur)
        elif key == "c":
            parts = value.split()
            host = parts[2].split("/")[0] if len(parts) >= 3 else None
            if cur is None:
                session_c = host
            else:
                cur.connection_host = host
        elif key == "a":
            name, _, arg = value.partition(":")
            name = name.strip().lower()
            if name in _DIRECTIONS:
                if cur is None:
                    session_dir = name
                else:
                    cur.direction = name
            elif cur is None:
                continue
            elif name == "rtpmap":
                pt, _, enc = arg.strip().partition(" ")
                if pt.isdigit():
                    cur.rtpmap[int(pt)] = enc.strip()
            elif name == "fmtp":
                pt, _, params = arg.strip().partition(" ")
                if pt.isdigit():
                    cur.fmtp[int(pt)] = params.strip()
            elif name == "ptime":
                try:
                    cur.ptime = int(float(arg.strip()))
                except ValueError:
                    pass
    audio_index = next((i for i, m in enumerate(media) if m.kind == "audio"
                        and m.proto.upper().startswith("RTP/")), -1)
    if audio_index < 0:
        return Sdp(session_c, 0, [], {}, {}, None, None, session_dir or "sendrecv",
                   origin, media, -1)
    a = media[audio_index]
    pts = [int(f) for f in a.formats if f.isdigit()]
    rtpmap = {pt: STATIC[pt] for pt in pts if pt in STATIC}
    rtpmap.update({pt: enc for pt, enc in a.rtpmap.items() if pt in pts})
    te = next((pt for pt in pts
               if rtpmap.get(pt, "").lower().startswith("telephone-event/8000")), None)
    return Sdp(a.connection_host or session_c, a.port, pts, rtpmap, dict(a.fmtp), te,
               a.ptime, a.direction or session_dir or "sendrecv", origin, media, audio_index)


def _session_id(session_id: int | None) -> int:
    return random.getrandbits(48) if session_id is None else session_id


def _head(host: str, sid: int, version: int) -> list[str]:
    ip = "IP6" if ":" in host else "IP4"
    return ["v=0", f"o=gateway {sid} {version} IN {ip} {host}", "s=gateway",
            f"c=IN {ip} {host}", "t=0 0"]


def _audio_lines(port: int, codecs: list[int], dtmf_pt: int | None, direction: str,
                 ptime: int = 20) -> list[str]:
    fmts = [*codecs, *([dtmf_pt] if dtmf_pt is not None else [])]
    lines = [f"m=audio {port} RTP/AVP {' '.join(map(str, fmts))}"]
    lines += [f"a=rtpmap:{pt} {_CODEC_NAME[pt]}/8000" for pt in codecs]
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += [f"a=ptime:{ptime}", f"a={direction}"]
    return lines


def _render(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def choose_codec(offer: Sdp, supported: tuple[int, ...] = (PT_PCMU, PT_PCMA)) -> int:
    """First offered format that is PCMU or PCMA (by rtpmap name, so remapped PTs work)."""
    for pt in offer.payload_types:
        name = offer.codec_name(pt)
        for ours in supported:
            if name == _CODEC_NAME[ours] and offer.rtpmap.get(pt, "").endswith("/8000"):
                return pt
    raise SdpError("no common codec (need PCMU or PCMA)")


def answer(offer: Sdp, host: str, port: int, *, session_id: int | None = None,
           version: int = 0, supported: tuple[int, ...] = (PT_PCMU, PT_PCMA),
           direction: str | None = None) -> tuple[bytes, int]:
    """RFC 3264 answer -> (sdp bytes, codec payload type).

    The codec is the offerer's most preferred PCMU/PCMA; telephone-event is included with
    the offerer's payload type when offered. The direction mirrors the offer (sendonly ->
    recvonly, hold) unless ``direction`` is given.
    """
    if offer.audio_index < 0 or offer.audio_port == 0:
        raise SdpError("offer has no usable audio stream")
    codec = choose_codec(offer, supported)
    name = offer.codec_name(codec)
    mode = direction or _REVERSE.get(offer.direction, "sendrecv")
    lines = _head(host, _session_id(session_id), version)
    for i, m in enumerate(offer.media):
        if i != offer.audio_index:
            lines.append(f"m={m.kind} 0 {m.proto} {' '.join(m.formats) or '0'}")
            continue
        te = offer.telephone_event_pt
        fmts = [codec, *([te] if te is not None else [])]
        lines.append(f"m=audio {port} RTP/AVP {' '.join(map(str, fmts))}")
        lines.append(f"a=rtpmap:{codec} {name}/8000")
        if te is not None:
            lines.append(f"a=rtpmap:{te} telephone-event/8000")
            lines.append(f"a=fmtp:{te} {offer.fmtp.get(te, '0-16')}")
        lines += [f"a=ptime:{offer.ptime or 20}", f"a={mode}"]
    return _render(lines), codec


def offer(host: str, port: int, *, codecs: tuple[int, ...] = (PT_PCMU, PT_PCMA),
          dtmf_pt: int | None = DEFAULT_DTMF_PT, session_id: int | None = None,
          version: int = 0, direction: str = "sendrecv") -> bytes:
    """Our offer: PCMU, PCMA (in that order), telephone-event/8000 on ``dtmf_pt``."""
    lines = _head(host, _session_id(session_id), version)
    lines += _audio_lines(port, list(codecs), dtmf_pt, direction)
    return _render(lines)
