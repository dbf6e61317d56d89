"""SDP parse and RFC 3264 offer/answer with golden offers: SIPp's default uac offer, a
Linphone-like multi-codec offer with video, a carrier offer preferring PCMA, hold forms."""

from __future__ import annotations

import pytest

from gateway.codec import sdp

SIPP_OFFER = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
              b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
              b"a=rtpmap:0 PCMU/8000\r\n")

LINPHONE_OFFER = b"""v=0
o=alice 3362 1470 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
m=video 9078 RTP/AVP 96
a=rtpmap:96 VP8/90000
"""

CARRIER_OFFER = (b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nt=0 0\r\n"
                 b"m=audio 40000 RTP/AVP 8 0 126\r\nc=IN IP4 203.0.113.9\r\n"
                 b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
                 b"a=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-15\r\n"
                 b"a=ptime:20\r\na=sendrecv\r\n")


def lines(data: bytes) -> list[str]:
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    return data.decode().split("\r\n")[:-1]


def test_parse_sipp_default():
    o = sdp.parse(SIPP_OFFER)
    assert (o.connection_host, o.audio_port, o.payload_types) == ("127.0.0.1", 6000, [0])
    assert o.rtpmap == {0: "PCMU/8000"}
    assert o.telephone_event_pt is None and o.ptime is None
    assert o.direction == "sendrecv" and not o.on_hold


def test_answer_sipp_default_golden():
    body, pt = sdp.answer(sdp.parse(SIPP_OFFER), "127.0.0.1", 20000, session_id=42)
    assert pt == 0
    assert lines(body) == [
        "v=0", "o=gateway 42 0 IN IP4 127.0.0.1", "s=gateway", "c=IN IP4 127.0.0.1",
        "t=0 0", "m=audio 20000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=ptime:20",
        "a=sendrecv"]


def test_linphone_offer_picks_pcmu_and_8k_telephone_event_rejects_video():
    o = sdp.parse(LINPHONE_OFFER)
    assert o.payload_types == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert o.rtpmap[0] == "PCMU/8000" and o.rtpmap[18] == "G729/8000"
    assert o.telephone_event_pt == 100
    assert o.fmtp[96] == "useinbandfec=1"
    assert len(o.media) == 2
    body, pt = sdp.answer(o, "10.0.0.1", 30000, session_id=7, version=3)
    assert pt == 0
    assert lines(body) == [
        "v=0", "o=gateway 7 3 IN IP4 10.0.0.1", "s=gateway", "c=IN IP4 10.0.0.1",
        "t=0 0", "m=audio 30000 RTP/AVP 0 100", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:100 telephone-event/8000", "a=fmtp:100 0-16", "a=ptime:20",
        "a=sendrecv", "m=video 0 RTP/AVP 96"]
    # the answer is itself parseable and agrees
    a = sdp.parse(body)
    assert (a.audio_port, a.payload_types, a.telephone_event_pt) == (30000, [0, 100], 100)
    assert a.media[1].port == 0


def test_carrier_offer_prefers_pcma_keeps_dtmf_pt_and_media_level_c():
    o = sdp.parse(CARRIER_OFFER)
    assert o.connection_host == "203.0.113.9"
    assert (o.telephone_event_pt, o.ptime) == (126, 20)
    body, pt = sdp.answer(o, "198.51.100.1", 20002)
    assert pt == 8
    ls = lines(body)
    assert "m=audio 20002 RTP/AVP 8 126" in ls
    assert "a=rtpmap:8 PCMA/8000" in ls and "a=fmtp:126 0-15" in ls
    _, pt_u = sdp.answer(o, "198.51.100.1", 20002, supported=(0,))
    assert pt_u == 0


def test_hold_forms_and_answer_direction():
    held = CARRIER_OFFER.replace(b"a=sendrecv", b"a=sendonly")
    o = sdp.parse(held)
    assert o.direction == "sendonly" and o.on_hold
    assert "a=recvonly" in lines(sdp.answer(o, "1.2.3.4", 1000)[0])
    old_style = sdp.parse(CARRIER_OFFER.replace(b"203.0.113.9", b"0.0.0.0"))
    assert old_style.on_hold and old_style.direction == "sendrecv"
    inactive = sdp.parse(CARRIER_OFFER.replace(b"a=sendrecv", b"a=inactive"))
    assert inactive.on_hold
    assert "a=inactive" in lines(sdp.answer(inactive, "1.2.3.4", 1000)[0])
    # session-level direction applies when the media level has none
    sess = sdp.parse(SIPP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n"))
    assert sess.direction == "recvonly" and not sess.on_hold


def test_dynamic_pcmu_payload_type_is_matched_by_name():
    o = sdp.parse(b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 96 101\r\n"
                  b"a=rtpmap:96 pcmu/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    body, pt = sdp.answer(o, "2.2.2.2", 6)
    assert pt == 96 and "a=rtpmap:96 PCMU/8000" in lines(body)


@pytest.mark.parametrize("offer", [
    SIPP_OFFER.replace(b"RTP/AVP 0", b"RTP/AVP 18").replace(b"0 PCMU", b"18 G729"),
    SIPP_OFFER.replace(b"m=audio 6000", b"m=audio 0"),
    SIPP_OFFER.replace(b"m=audio", b"m=video"),
])
def test_unusable_offers_raise(offer):
    with pytest.raises(sdp.SdpError):
        sdp.answer(sdp.parse(offer), "1.2.3.4", 1000)


def test_offer_builder_round_trips():
    body = sdp.offer("192.0.2.1", 4000, session_id=5)
    assert lines(body) == [
        "v=0", "o=gateway 5 0 IN IP4 192.0.2.1", "s=gateway", "c=IN IP4 192.0.2.1",
        "t=0 0", "m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
        "a=ptime:20", "a=sendrecv"]
    o = sdp.parse(body)
    assert (o.connection_host, o.audio_port, o.payload_types, o.telephone_event_pt) == (
        "192.0.2.1", 4000, [0, 8, 101], 101)
    # answering our own offer picks PCMU and keeps 101
    ans, pt = sdp.answer(o, "192.0.2.2", 4002)
    assert pt == 0 and sdp.parse(ans).telephone_event_pt == 101
    v6 = sdp.parse(sdp.offer("2001:db8::1", 4000, dtmf_pt=None))
    assert v6.connection_host == "2001:db8::1" and v6.telephone_event_pt is None
