"""The Account resource and Balance with the twilio library as the client."""

from __future__ import annotations

from twilio.base.exceptions import TwilioRestException

from .conftest import AC, AC2, TOKEN, TOKEN2, call, make_client, raw


async def _exc(fn, *args, **kwargs) -> TwilioRestException:
    try:
        await call(fn, *args, **kwargs)
    except TwilioRestException as exc:
        return exc
    raise AssertionError("no error")


async def test_account_fetch(api, client):
    for fetch in (client.api.account.fetch, client.api.accounts(AC).fetch,
                  client.api.v2010.accounts(AC).fetch):
        acct = await call(fetch)
        assert acct.sid == AC and acct.owner_account_sid == AC
        assert acct.status == "active" and acct.type == "Full"
        assert acct.auth_token == TOKEN          # as Twilio, to primary credentials only
        assert acct.friendly_name == AC          # no friendly_name configured
        assert acct.uri == f"/2010-04-01/Accounts/{AC}.json"
        assert acct.subresource_uris["messages"] == f"/2010-04-01/Accounts/{AC}/Messages.json"
        assert acct.subresource_uris["balance"] == f"/2010-04-01/Accounts/{AC}/Balance.json"
        assert acct.date_created is None


async def test_account_list_is_own_account(api, client):
    accounts = await call(client.api.accounts.list)
    assert [a.sid for a in accounts] == [AC]
    assert await call(client.api.accounts.list, status="closed") == []
    other = await call(make_client(api.base, AC2, TOKEN2).api.accounts.list)
    assert [a.sid for a in other] == [AC2]


async def test_other_account_is_404_and_update_is_405(api, client):
    exc = await _exc(client.api.accounts(AC2).fetch)
    assert (exc.status, exc.code) == (404, 20404)
    status, hdrs, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}.json",
                                   form={"FriendlyName": "x"})
    assert (status, body["code"]) == (405, 20004) and hdrs["Allow"] == "GET, HEAD"
    exc = await _exc(make_client(api.base, AC, "wrong").api.account.fetch)
    assert (exc.status, exc.code) == (401, 20003)


async def test_balance(api, client):
    bal = await call(client.balance.fetch)
    assert (bal.account_sid, bal.balance, bal.currency) == (AC, "0.00", "USD")
    exc = await _exc(client.api.accounts(AC2).balance.fetch)
    assert (exc.status, exc.code) == (404, 20404)
