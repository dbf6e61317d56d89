"""Logging: one line per event, text and JSON formats, redaction guard."""

import io
import logging

import orjson
import pytest

from gateway.observability import logging as glog


@pytest.fixture
def capture():
    stream = io.StringIO()
    handlers = []

    def make(fmt="text", level="debug"):
        handlers.append(glog.setup(level, fmt, stream=stream))
        return stream

    yield make
    root = logging.getLogger()
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(logging.WARNING)


def test_text_line_with_fields(capture):
    out = capture("text")
    glog.log_event(logging.getLogger("gateway.smpp"), "link bound", carrier="a b", window=64)
    line = out.getvalue()
    assert line.count("\n") == 1
    ts, level, logger, rest = line.rstrip("\n").split(" ", 3)
    assert ts.endswith("Z") and "T" in ts
    assert (level, logger) == ("INFO", "gateway.smpp")
    assert rest == 'link bound carrier="a b" window=64'


def test_json_lines(capture):
    out = capture("json")
    log = logging.getLogger("gateway.api")
    glog.log_event(log, "created", sid="SM1", status="queued")
    log.warning("plain %s", "args")
    first, second = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert first["msg"] == "created" and first["sid"] == "SM1" and first["level"] == "INFO"
    assert first["logger"] == "gateway.api" and first["ts"].endswith("Z")
    assert second["msg"] == "plain args" and second["level"] == "WARNING"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_and_bodies_are_redacted(capture, fmt):
    out = capture(fmt)
    glog.log_event(logging.getLogger("gateway.x"), "event", body="hello world",
                   auth_token="tok123", password="pw456", carrier="a")
    text = out.getvalue()
    assert "hello world" not in text and "tok123" not in text and "pw456" not in text
    assert text.count("[redacted]") == 3 and "carrier" in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_exception_stays_on_one_line(capture, fmt):
    out = capture(fmt)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("gateway.y").exception("failed")
    text = out.getvalue()
    assert text.count("\n") == 1 and "RuntimeError" in text


def test_level_filter_and_setup_replaces_handler(capture):
    out = capture("text", level="warning")
    capture("text", level="warning")          # a second setup replaces, no double lines
    log = logging.getLogger("gateway.z")
    log.info("hidden")
    glog.log_event(log, "shown", level=logging.ERROR)
    assert out.getvalue().count("\n") == 1 and "shown" in out.getvalue()
    with pytest.raises(ValueError):
        glog.setup("info", "xml")
    with pytest.raises(ValueError):
        glog.setup("loud", "text")


def test_level_names_any_case(capture):
    out = capture("text", level="WARNING")
    logging.getLogger("gateway.w").info("hidden")
    logging.getLogger("gateway.w").warning("shown")
    assert out.getvalue().count("\n") == 1
