"""gateway.io.http_common.parse_qs agrees with urllib.parse.parse_qs (blank values kept),
including its ASCII-escape fast path, non-ASCII escapes and malformed escapes."""

from urllib.parse import parse_qs as reference

from hypothesis import given
from hypothesis import strategies as st

from gateway.io.http_common import parse_qs

_CHARS = list("ab+%=&2B4F0zfé€ \x7f8;") + ["%2B", "%2b", "%C3%A9", "%E2%82", "%7F", "%80"]


@given(st.lists(st.sampled_from(_CHARS), max_size=30).map("".join))
def test_parse_qs_matches_urllib(s):
    assert parse_qs(s) == reference(s, keep_blank_values=True)


def test_typical_create_body():
    body = ("To=%2B15550000001&From=20100&Body=hello+w%C3%B6rld&StatusCallback="
            "http%3A%2F%2F127.0.0.1%3A40000%2Fstatus%3Fa%3D1")
    assert parse_qs(body) == {"To": ["+15550000001"], "From": ["20100"],
                              "Body": ["hello wörld"],
                              "StatusCallback": ["http://127.0.0.1:40000/status?a=1"]}
