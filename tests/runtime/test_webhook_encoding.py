"""The webhook fast paths agree with the general ones and with the twilio library."""

from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateway.runtime.webhooks import form_encode, sign

names = st.text(min_size=1, max_size=12)
values = st.text(max_size=30)


@given(st.lists(st.tuples(names, values), max_size=12))
def test_form_encode_matches_urlencode(pairs):
    assert form_encode(pairs) == urlencode(pairs).encode()


@given(st.dictionaries(names, values, max_size=10), st.sampled_from(
    ["https://example.com/cb", "http://127.0.0.1:9000/st?x=1&y=%20z"]))
def test_sign_matches_request_validator(params, url):
    pairs = list(params.items())
    assert RequestValidator("tok").validate(url, params, sign("tok", url, pairs))


class MultiDict(dict):
    """What the library accepts for repeated names (aiohttp's MultiDict has getall)."""

    def getall(self, name):
        return self[name]


def test_sign_repeated_names_uses_library_rule():
    pairs = [("A", "2"), ("A", "1"), ("B", "x")]
    expected = RequestValidator("tok").compute_signature(
        "https://e.com/", MultiDict({"A": ["2", "1"], "B": ["x"]}))
    assert sign("tok", "https://e.com/", pairs) == expected


@given(st.text(max_size=100), st.binary(max_size=300))
def test_hmac_sha1_matches_hmac(token, data):
    """Precomputed pad states: same digest as hmac, also for tokens over 64 bytes."""
    import hmac

    from gateway.runtime.webhook_encoding import _hmac_sha1
    assert _hmac_sha1(token, data) == hmac.digest(token.encode(), data, "sha1")
    assert _hmac_sha1(token, data) == hmac.digest(token.encode(), data, "sha1")   # cached
