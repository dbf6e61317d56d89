"""SIPp scenario pieces for the project's SIP tests and benchmarks (SIPp as the carrier).

Owns the XML of the messages a carrier sends: an INVITE with an SDP offer (one G.711 codec
+ telephone-event), the ACK (``via`` = a fresh Via for a 2xx, ``[last_Via:]`` inside the
INVITE transaction), the 200 answering a BYE, and the ``<scenario>`` wrapper. SIPp trims
the indentation of CDATA lines. Receiving steps are left to the caller.
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
      Max-Forwards: 70
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

_OK_BYE = """
  <recv request="BYE" timeout="20000"/>
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




def invite(pt: int = 0, codec: str = "PCMU") -> str:
    """The INVITE offering ``codec`` (payload type ``pt``) and telephone-event 101."""
    return _INVITE.format(pt=pt, codec=codec)


def ack(via: str = FRESH_VIA) -> str:
    return _ACK.format(via=via)


def ok_bye() -> str:
    """Wait for the BYE (20 s) and answer it 200."""
    return _OK_BYE


def scenario(body: str, name: str = "gw") -> str:
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="' + name + '">'
            + body + "</scenario>\n")
