"""SIPp scenario pieces for the project's SIP tests and benchmarks (SIPp as the carrier).

Owns the XML of the messages a carrier sends: an INVITE with an SDP offer (one G.711 codec
+ telephone-event), the ACK (``via`` = a fresh Via for a 2xx, ``[last_Via:]`` inside the
INVITE transaction), the 200 answering a BYE, and the ``<scenario>`` wrapper; and two
callee (UAS) scenarios for ``<Dial><Sip>``: ``uas_answer`` (optionally checks a header
and demands digest auth first) and ``uas_reject``, both able to add headers to their final
response (``reply_headers``, e.g. ``X-`` headers for ``DialSipHeader_*``). SIPp trims the indentation of CDATA
lines. Receiving steps of the caller scenarios are left to the caller. RFC 3262 pieces:
``invite(require_100rel=True)``, ``prack_reliable`` (PRACK a reliable 18x), ``bye``, and
``uas_reliable_180`` (rings reliably, wants the PRACK before its 200); SIPp refuses a
variable assigned but used once, so checked values are echoed in ``X-Checked``.
"""

from __future__ import annotations

FRESH_VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"

_INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: carrier <sip:15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:carrier@[local_ip]:[local_port]
      Max-Forwards: 70{extra}
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt} 101
      a=rtpmap:{pt} {codec}/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
"""

_ACK = """
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      {via}
      From: carrier <sip:15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

# 200 to the request just received (its Via/From/To/Call-ID/CSeq echoed)
_OK_ECHO = """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""

_OK_BYE = """
  <recv request="BYE" timeout="20000"/>
""" + _OK_ECHO




def invite(pt: int = 0, codec: str = "PCMU", *, require_100rel: bool = False) -> str:
    """The INVITE offering ``codec`` (payload type ``pt``) and telephone-event 101;
    ``require_100rel`` adds ``Require: 100rel`` (RFC 3262)."""
    extra = "\n      Supported: 100rel\n      Require: 100rel" if require_100rel else ""
    return _INVITE.format(pt=pt, codec=codec, extra=extra)


_RECV_RELIABLE = """
  <recv response="{status}">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="RSeq:" check_it="true" assign_to="rseq"/>
    </action>
  </recv>
  <send retrans="500">
    <![CDATA[
      PRACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: carrier <sip:15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} PRACK
      RAck: [$rseq] 1 INVITE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""


def prack_reliable(status: int = 180, cseq: int = 2) -> str:
    """Receive a reliable ``status`` (its RSeq must be there) and PRACK it (CSeq ``cseq``,
    after the INVITE's 1); then the PRACK's 200."""
    return _RECV_RELIABLE.format(status=status, cseq=cseq)


_BYE = """
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: carrier <sip:15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""


def bye(cseq: int = 2) -> str:
    """The carrier hangs up (CSeq ``cseq``) and waits for the 200."""
    return _BYE.format(cseq=cseq)


# an SDP answer with PCMU only (SIPp fills the addresses and the length)
_PCMU_ANSWER = """Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=callee 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
"""

_UAS_RELIABLE = """
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="inv_via"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="inv_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="inv_to"/>
      <ereg regexp=".*" search_in="hdr" header="CSeq:" assign_to="inv_cseq"/>
      <ereg regexp="100rel" search_in="hdr" header="Supported:" check_it="true" assign_to="s"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      Require: 100rel
      RSeq: 7
      Content-Length: 0

    ]]>
  </send>
  <recv request="PRACK">
    <action>
      <ereg regexp="^ *7 [0-9]+ INVITE *$" search_in="hdr" header="RAck:" check_it="true" assign_to="r"/>
    </action>
  </recv>
""" + _OK_ECHO + """  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      Via: [$inv_via]
      From: [$inv_from]
      To: [$inv_to];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$inv_cseq]
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      X-Checked: [$s] [$r]
      """ + _PCMU_ANSWER + """
    ]]>
  </send>
  <recv request="ACK"/>
"""


def uas_reliable_180() -> str:
    """A carrier that rings reliably (RSeq 7), wants the PRACK (RAck 7 n INVITE) before
    answering 200, then takes the ACK; follow with ``ok_bye()``."""
    return _UAS_RELIABLE


def ack(via: str = FRESH_VIA) -> str:
    return _ACK.format(via=via)


def ok_bye() -> str:
    """Wait for the BYE (20 s) and answer it 200."""
    return _OK_BYE


def scenario(body: str, name: str = "gw") -> str:
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="' + name + '">'
            + body + "</scenario>\n")


def _reply(status: str, extra: str = "", body: bool = False) -> str:
    sdp = _PCMU_ANSWER if body else "Content-Length: 0\n"
    return f"""
  <send{' retrans="500"' if body else ''}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      {extra}{sdp}
    ]]>
  </send>
"""


def _lines(headers) -> str:
    return "".join(f"{h}\n      " for h in headers)


def uas_answer(header: str | None = None, auth: tuple[str, str] | None = None,
               reply_headers: tuple[str, ...] = ()) -> str:
    """A callee: (``auth``: 401 with a digest challenge, ACK, then the INVITE must carry
    valid credentials, else 403 and SIPp stops with an error), 180, 200 with PCMU SDP
    (plus ``reply_headers``, whole "Name: value" lines), ACK, then waits for the BYE.
    ``header``: a regexp the INVITE must match (SIPp fails the call otherwise)."""
    check = (f'<action><ereg regexp="{header}" search_in="msg" check_it="true" '
             'assign_to="hdr"/></action>') if header else ""
    steps = f'<recv request="INVITE">{check}</recv>'
    if auth:
        steps += (_reply("401 Unauthorized",
                         'WWW-Authenticate: Digest realm="sipp", nonce="5f2e1c0a9b"\n      ')
                  + '<recv request="ACK"/>'
                  + '<recv request="INVITE"><action><verifyauth assign_to="authok" '
                  f'username="{auth[0]}" password="{auth[1]}"/></action></recv>'
                  '<nop hide="true" test="authok" next="authed"/>'
                  + _reply("403 Forbidden") + '<recv request="ACK"/>'
                  '<nop><action><exec int_cmd="stop_now"/></action></nop>'
                  '<label id="authed"/>')
    seen = "X-Seen: [$hdr]\n      " if header else ""       # SIPp: a variable must be used
    return scenario(steps + _reply("180 Ringing", seen)
                    + _reply("200 OK", _lines(reply_headers), body=True)
                    + '<recv request="ACK"/>' + _OK_BYE, "callee")


def uas_reject(status: str = "486 Busy Here", reply_headers: tuple[str, ...] = ()) -> str:
    """A callee that answers every INVITE with ``status`` (plus ``reply_headers``) and
    takes the ACK."""
    return scenario('<recv request="INVITE"/>' + _reply(status, _lines(reply_headers))
                    + '<recv request="ACK"/>', "callee")
