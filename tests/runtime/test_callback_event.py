"""Which (message, status) a finished status callback clears: the fast path for the
order ``Messaging.callback_hook`` builds and the search for any other order agree."""

from gateway.runtime.callback_outbox import _message_event
from gateway.runtime.webhooks import Hook


def _hook(params):
    return Hook("status", "http://127.0.0.1:9/cb", "POST", params, "tok", idem="i")


def test_message_event_any_order():
    base = [("AccountSid", "AC1"), ("ApiVersion", "2010-04-01"), ("From", "+1"),
            ("To", "+2"), ("MessageSid", "SM1"), ("SmsSid", "SM1"),
            ("MessageStatus", "sent"), ("SmsStatus", "sent")]
    assert _message_event(_hook(base)) == ("SM1", "sent")
    assert _message_event(_hook(list(reversed(base)))) == ("SM1", "sent")
    assert _message_event(_hook(base[4:])) == ("SM1", "sent")           # short list
    swapped = base[:4] + [("MessageStatus", "x"), ("SmsSid", "SM1"), ("MessageSid", "SM9")]
    assert _message_event(_hook(swapped)) == ("SM9", "x")
    empty = base[:4] + [("MessageSid", ""), ("SmsSid", ""), ("MessageStatus", "sent")]
    assert _message_event(_hook(empty)) is None
    assert _message_event(_hook([("CallSid", "CA1"), ("CallStatus", "completed")])) is None
