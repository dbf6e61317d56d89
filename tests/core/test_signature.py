"""X-Twilio-Signature against twilio.request_validator, and connection overrides."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateway.core import signature as sig

TOKEN = "12345"
VECTOR_URL = "https://example.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
                 "From": "+14158675310", "To": "+18005551212"}


class MultiDict(dict):
    """What Flask hands the validator: repeated keys through getall()."""

    def __init__(self, pairs):
        super().__init__()
        self._pairs = list(pairs)
        for k, v in self._pairs:
            self[k] = v

    def getall(self, name):
        return [v for k, v in self._pairs if k == name]


def test_published_vector():
    assert sig.compute_signature(TOKEN, VECTOR_URL, VECTOR_PARAMS) == \
        "L/OH5YylLD5NRKLltdqwSvS0BnU="


def test_fragment_is_not_signed():
    with_frag = VECTOR_URL + "#ct=1000&rc=3&rp=all"
    s = sig.compute_signature(TOKEN, with_frag, VECTOR_PARAMS)
    assert s == RequestValidator(TOKEN).compute_signature(VECTOR_URL, VECTOR_PARAMS)
    assert RequestValidator(TOKEN).validate(VECTOR_URL, VECTOR_PARAMS, s)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
pairs = st.lists(st.tuples(st.sampled_from(["To", "From", "Body", "MediaUrl", "a", "B", "é", "Ω"])
                           | text, text), max_size=12)
urls = st.sampled_from([
    "https://example.com/sms", "http://127.0.0.1:8080/sms?x=1&y=%20z",
    "https://hooks.example.org:8443/a/b?q=%E2%9C%93", "http://h/ünï?k=v",
])


@settings(max_examples=200, deadline=None)
@given(url=urls, params=pairs, token=text.filter(bool))
def test_matches_twilio_library(url, params, token):
    lib = RequestValidator(token)
    expected = lib.compute_signature(url, MultiDict(params))
    grouped: dict[str, list[str]] = {}
    for k, v in params:
        grouped.setdefault(k, []).append(v)
    assert sig.compute_signature(token, url, params) == expected
    assert sig.compute_signature(token, url, grouped) == expected
    assert sig.compute_signature(token, url + "#rc=2", grouped) == expected
    assert lib.validate(url, MultiDict(params), expected)
    assert sig.validate(token, url, grouped, expected)
    assert not sig.validate(token, url, grouped, expected[:-2] + "xx")


@pytest.mark.parametrize(
    "signed_url,checked_url",
    [("https://example.com/x", "https://example.com:443/x"),
     ("https://example.com:443/x", "https://example.com/x"),
     ("http://example.com:8080/x", "http://example.com/x")],
)
def test_port_variants_like_library(signed_url, checked_url):
    s = sig.compute_signature(TOKEN, signed_url, VECTOR_PARAMS)
    assert sig.validate(TOKEN, checked_url, VECTOR_PARAMS, s) == \
        RequestValidator(TOKEN).validate(checked_url, VECTOR_PARAMS, s)


def test_sign_webhook_strips_fragment_and_userinfo():
    url, s, ov = sig.sign_webhook(TOKEN, "https://u:p@example.com/cb?x=1#rc=3&rp=5xx", {"A": "1"})
    assert url == "https://u:p@example.com/cb?x=1"
    assert RequestValidator(TOKEN).validate("https://example.com/cb?x=1", {"A": "1"}, s)
    assert ov.rc == 3 and ov.rp == frozenset({"5xx"})


@pytest.mark.parametrize(
    "frag,expect,problems",
    [
        ("", dict(ct=5000, rt=15000, tt=15000, rc=1, rp={"ct"}, sni=True), 0),
        ("ct=1000&rt=2000&tt=3000&rc=5&rp=4xx,5xx",
         dict(ct=1000, rt=2000, tt=3000, rc=5, rp={"4xx", "5xx"}), 0),
        ("rp=all&sni=n&e=dublin,tokyo", dict(rp={"all"}, sni=False,
                                             edges=("dublin", "tokyo")), 0),
        ("ct=50&rt=99999&rc=9", dict(ct=100, rt=15000, rc=5), 3),
        ("tt=abc&rc=-1", dict(tt=15000, rc=0), 2),
        ("rp=sometimes", dict(rp={"ct"}), 1),
        ("zz=1&rc=0", dict(rc=0), 1),
    ],
)
def test_parse_overrides(frag, expect, problems):
    for source in (frag, "https://x.example/cb?a=1#" + frag):
        ov = sig.parse_overrides(source)
        for k, v in expect.items():
            got = getattr(ov, k)
            assert (set(got) if k == "rp" else got) == v, (k, source)
        assert len(ov.problems) == problems


def test_override_helpers():
    ov = sig.parse_overrides("#ct=1500&rt=2500&tt=9000&rp=5xx,rt")
    assert (ov.connect_timeout, ov.read_timeout, ov.total_timeout) == (1.5, 2.5, 9.0)
    assert ov.retries_on("5xx") and ov.retries_on("rt") and not ov.retries_on("ct")
    assert sig.parse_overrides("#rp=all").retries_on("4xx")
    assert sig.parse_overrides("https://x/y").present == frozenset()
