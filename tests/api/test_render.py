"""Dates and page tokens, checked against the stdlib parsers the twilio library uses."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.api import paging, render
from gateway.core.errors import TwilioError


@given(st.integers(min_value=0, max_value=4_102_444_800))
def test_rfc2822_round_trips_through_email_utils(ts):
    text = render.rfc2822(float(ts))
    assert text.endswith(" +0000")
    assert email.utils.parsedate_to_datetime(text).timestamp() == ts
    assert text == email.utils.formatdate(ts, usegmt=True).replace("GMT", "+0000")


@given(st.lists(st.floats(min_value=-1e9, max_value=4.1e9), min_size=1, max_size=6))
def test_rfc2822_cached_second_matches_gmtime(stamps):
    """The last-second cache never answers for another second (fractions, negatives)."""
    for ts in stamps + [s + 0.5 for s in stamps] + stamps:
        t = time.gmtime(ts)
        assert render.rfc2822(ts) == time.strftime("%a, %d %b %Y %H:%M:%S +0000", t)


def test_known_dates():
    assert render.rfc2822(1692853305) == "Thu, 24 Aug 2023 05:01:45 +0000"
    assert render.iso8601(1692853305) == "2023-08-24T05:01:45Z"
    assert render.rfc2822(None) is None and render.iso8601(None) is None


@given(st.integers(min_value=0, max_value=2**62))
def test_page_token_round_trip(seq):
    token = paging.encode_token(seq)
    assert token.startswith("PA") and paging.decode_token(token) == seq


@pytest.mark.parametrize("token", ["", "PA", "XXabc", "PA!!!", "PA" + "YmVmb3JlOjE",
                                   "PA" + "YWZ0ZXI6LTE", "PA" + "YWZ0ZXI6eA"])
def test_bad_page_tokens(token):
    with pytest.raises(TwilioError) as info:
        paging.decode_token(token)
    assert info.value.code == 21481
