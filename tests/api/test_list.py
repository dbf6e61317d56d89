"""Messages list: paging as the twilio library follows it, filters, envelope fields."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from .conftest import AC, LONG, NOW, TOLL, call, raw

DAY = 86400.0


async def _make(api, client, n, **kwargs):
    sids = []
    for i in range(n):
        msg = await call(client.messages.create, to=kwargs.get("to", "+15005550001"),
                         from_=kwargs.get("from_", LONG), body=f"m{i}")
        sids.append(msg.sid)
    return sids


async def test_paging_with_library(api, client):
    sids = await _make(api, client, 5)
    listed = await call(client.messages.list, limit=5, page_size=2)
    assert [x.sid for x in listed] == sids[::-1]          # newest first, no gaps/dupes
    streamed = await call(lambda: [x.sid for x in client.messages.stream(page_size=2)])
    assert streamed == sids[::-1]
    limited = await call(client.messages.list, limit=3, page_size=2)
    assert [x.sid for x in limited] == sids[::-1][:3]


async def test_envelope_fields(api, client):
    await _make(api, client, 5)
    base = f"/2010-04-01/Accounts/{AC}/Messages.json"
    status, _, page0 = await raw("GET", f"{api.base}{base}?PageSize=2")
    assert status == 200
    assert set(page0) == {"messages", "end", "first_page_uri", "next_page_uri", "page",
                          "page_size", "previous_page_uri", "start", "uri"}
    assert (page0["page"], page0["page_size"], page0["start"], page0["end"]) == (0, 2, 0, 1)
    assert page0["previous_page_uri"] is None
    assert page0["first_page_uri"] == f"{base}?PageSize=2&Page=0"
    assert page0["uri"] == f"{base}?PageSize=2&Page=0"
    nxt = page0["next_page_uri"]
    assert nxt.startswith(base + "?") and "PageToken=PA" in nxt
    status, _, page1 = await raw("GET", api.base + nxt)
    assert (page1["page"], page1["start"], page1["end"]) == (1, 2, 3)
    assert page1["uri"] == nxt
    assert page1["previous_page_uri"] == f"{base}?PageSize=2&Page=0"
    status, _, page2 = await raw("GET", api.base + page1["next_page_uri"])
    assert len(page2["messages"]) == 1 and page2["next_page_uri"] is None
    assert (page2["start"], page2["end"]) == (4, 4)
    # previous of page 2 resolves by offset to exactly page 1
    status, _, back = await raw("GET", api.base + page2["previous_page_uri"])
    assert [x["sid"] for x in back["messages"]] == [x["sid"] for x in page1["messages"]]
    all_sids = [x["sid"] for p in (page0, page1, page2) for x in p["messages"]]
    assert len(set(all_sids)) == 5


async def test_empty_list(api, client):
    assert await call(client.messages.list) == []
    _, _, page = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json")
    assert page["messages"] == [] and page["page_size"] == 50 and page["end"] == 0


async def test_filters_to_from(api, client):
    a = await _make(api, client, 2, to="+15005550001")
    b = await _make(api, client, 1, to="+15005550002", from_=TOLL)
    got = await call(client.messages.list, to="+15005550001")
    assert sorted(x.sid for x in got) == sorted(a)
    got = await call(client.messages.list, from_=TOLL)
    assert [x.sid for x in got] == b
    got = await call(client.messages.list, to="+15005550002", from_=LONG)
    assert got == []
    # filters survive into next_page_uri
    _, _, page = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json"
                                  "?To=%2B15005550001&PageSize=1")
    q = parse_qs(urlsplit(page["next_page_uri"]).query)
    assert q["To"] == ["+15005550001"] and q["PageSize"] == ["1"]


async def test_filter_date_sent(api, client):
    sids = await _make(api, client, 3)
    # sent on three consecutive days: NOW - 1 day, NOW, NOW + 1 day
    for sid, when in zip(sids, (NOW - DAY, NOW, NOW + DAY), strict=True):
        row = await api.store.get_message(sid)
        row.date_sent = when
        await api.store.save_message(row)
    today = datetime.fromtimestamp(NOW, UTC).date()
    on = await call(client.messages.list, date_sent=today)
    assert [x.sid for x in on] == [sids[1]]
    before = await call(client.messages.list, date_sent_before=today)   # on or before
    assert sorted(x.sid for x in before) == sorted(sids[:2])
    after = await call(client.messages.list, date_sent_after=today)     # on or after
    assert sorted(x.sid for x in after) == sorted(sids[1:])


async def test_paging_errors(api):
    base = f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json"
    status, _, body = await raw("GET", base + "?PageSize=1001")
    assert (status, body["code"]) == (400, 20007)
    status, _, body = await raw("GET", base + "?PageToken=garbage")
    assert (status, body["code"]) == (400, 21481)
    status, _, body = await raw("GET", base + "?PageSize=0")
    assert status == 400
    status, _, body = await raw("GET", base + "?DateSent=2024-13-45")
    assert status == 400
