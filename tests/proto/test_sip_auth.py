"""Digest client against the published vectors (RFC 2617 §3.5, RFC 7616 §3.9.1)."""

import pytest

from gateway.proto import sip_auth


def _response(header):
    return sip_auth.parse_challenge(header)["response"]


def test_rfc2617_md5_qop_auth():
    ch = sip_auth.parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    h = sip_auth.authorization(ch, method="GET", uri="/dir/index.html", user="Mufasa",
                               password="Circle Of Life", cnonce="0a4f113b", nc=1)
    assert _response(h) == "6629fae49393a05397450978507c4ef1"
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in h and "nc=00000001" in h


@pytest.mark.parametrize("alg,expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(alg, expected):
    ch = sip_auth.parse_challenge(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    h = sip_auth.authorization(ch, method="GET", uri="/dir/index.html", user="Mufasa",
                               password="Circle of Life", nc=1,
                               cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert _response(h) == expected
    assert sip_auth.check(h, method="GET", password="Circle of Life")
    assert not sip_auth.check(h, method="GET", password="wrong")


def test_no_qop_and_bad_challenges():
    ch = sip_auth.parse_challenge('Digest realm="r", nonce="n"')
    h = sip_auth.authorization(ch, method="INVITE", uri="sip:a@b", user="u", password="p",
                               cnonce="c")
    assert "qop" not in h and "cnonce" not in h
    for bad in ['Basic realm="r"', 'Digest realm="r"', 'Digest nonce="n", algorithm=SHA-1']:
        with pytest.raises(ValueError):
            sip_auth.parse_challenge(bad)
