"""SIP digest authentication, client side (RFC 3261 §22, RFC 2617, RFC 8760).

Owns: parsing a ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge and
computing the matching ``Authorization``/``Proxy-Authorization`` value: algorithms MD5,
MD5-sess, SHA-256(-sess), SHA-512-256(-sess); ``qop=auth`` with ``nc`` and ``cnonce``
(``auth-int`` is used only when it is the sole qop offered).

Rules: pure functions; the caller supplies the cnonce (randomness injected) and the
nonce count. An unusable challenge (not Digest, unknown algorithm, no nonce) raises
``ValueError`` — the UA then reports the 401/407 as the call's failure.
"""

from __future__ import annotations

import hashlib

from gateway.codec.sip import Request

_ALGS = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"unsupported auth scheme {scheme!r}")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] == " ":
            i += 1
        if i < n and rest[i] == '"':
            j, chars = i + 1, []
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n:
                    j += 1
                chars.append(rest[j])
                j += 1
            params[name] = "".join(chars)
            i = j + 1
        else:
            j = rest.find(",", i)
            j = n if j < 0 else j
            params[name] = rest[i:j].strip()
            i = j
    if "nonce" not in params:
        raise ValueError("challenge without nonce")
    alg = params.get("algorithm", "MD5").upper()
    if alg.removesuffix("-SESS") not in _ALGS:
        raise ValueError(f"unsupported digest algorithm {alg!r}")
    return params


def _h(alg: str, data: str) -> str:
    return hashlib.new(_ALGS[alg], data.encode()).hexdigest()


def authorization(challenge: dict[str, str], *, method: str, uri: str, user: str,
                  password: str, cnonce: str, nc: int = 1, body: bytes = b"") -> str:
    """The credentials header value answering ``challenge`` for this request."""
    alg_full = challenge.get("algorithm", "MD5")
    alg = alg_full.upper().removesuffix("-SESS")
    realm, nonce = challenge.get("realm", ""), challenge["nonce"]
    ha1 = _h(alg, f"{user}:{realm}:{password}")
    if alg_full.upper().endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else ("auth-int" if "auth-int" in qops else None)
    if qop == "auth-int":
        ha2 = _h(alg, f"{method}:{uri}:{hashlib.new(_ALGS[alg], body).hexdigest()}")
    else:
        ha2 = _h(alg, f"{method}:{uri}")
    ncs = f"{nc:08x}"
    if qop:
        response = _h(alg, f"{ha1}:{nonce}:{ncs}:{cnonce}:{qop}:{ha2}")
    else:
        response = _h(alg, f"{ha1}:{nonce}:{ha2}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{response}"', f"algorithm={alg_full}"]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


def check(header_value: str, *, method: str, password: str) -> bool:
    """Server-side verification (used by tests acting as a challenging UAS)."""
    p = parse_challenge(header_value)  # same grammar as a challenge
    expected = authorization(p, method=method, uri=p["uri"], user=p["username"],
                             password=password, cnonce=p.get("cnonce", ""),
                             nc=int(p.get("nc", "1"), 16))
    return parse_challenge(expected)["response"] == p["response"]


def retry_request(old, resp, via: str, user: str, password: str, cnonce: str):
    """``old`` (a Request) again with credentials for ``resp``'s 401/407 challenge, CSeq+1
    and a new top Via (§22.2, §22.3); None when the challenge cannot be parsed."""
    hdr = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
    try:
        challenge = parse_challenge(resp.get(hdr) or "")
    except ValueError:
        return None
    cred = authorization(challenge, method=old.method, uri=old.uri, user=user,
                         password=password, cnonce=cnonce)
    req = Request(old.method, old.uri, list(old.headers), old.body)
    req.set("CSeq", f"{old.cseq.seq + 1} {old.method}")
    req.remove("Via")
    req.add("Via", via, first=True)
    req.set("Authorization" if resp.status == 401 else "Proxy-Authorization", cred)
    return req
