"""gateway.io.http_common.parse_qs agrees with urllib.parse.parse_qs (blank values kept),
including its ASCII-escape fast path, non-ASCII escapes and malformed escapes."""

from urllib.parse import parse_qs as reference

from hypothesis import given
from hypothesis import strategies as st

from gateway.io import http_common
from gateway.io.http_common import parse_qs

_CHARS = list("ab+%=&2B4F0zfé€ \x7f8;") + ["%2B", "%2b", "%C3%A9", "%E2%82", "%7F", "%80"]


@given(st.lists(st.sampled_from(_CHARS), max_size=30).map("".join))
def test_parse_qs_matches_urllib(s):
    expected = reference(s, keep_blank_values=True)
    assert parse_qs(s) == expected
    assert parse_qs(s) == expected          # again: repeated values come from the memo


def test_memo_is_bounded_and_keyed_by_the_exact_escape():
    for i in range(3 * http_common._UNQUOTED_MAX):
        assert parse_qs(f"u=http%3A%2F%2Fh%2F{i}") == {"u": [f"http://h/{i}"]}
    assert len(http_common._UNQUOTED) <= http_common._UNQUOTED_MAX
    assert parse_qs("a=%41%42&b=%41%62&c=%2b1%2B") == {"a": ["AB"], "b": ["Ab"], "c": ["+1+"]}
    assert parse_qs("a=%2B1&b=%2b+2&c=%2B%") == {"a": ["+1"], "b": ["+ 2"], "c": ["+%"]}


def test_typical_create_body():
    body = ("To=%2B15550000001&From=20100&Body=hello+w%C3%B6rld&StatusCallback="
            "http%3A%2F%2F127.0.0.1%3A40000%2Fstatus%3Fa%3D1")
    assert parse_qs(body) == {"To": ["+15550000001"], "From": ["20100"],
                              "Body": ["hello wörld"],
                              "StatusCallback": ["http://127.0.0.1:40000/status?a=1"]}
