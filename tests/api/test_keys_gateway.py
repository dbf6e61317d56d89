"""API keys through the whole gateway (runtime wiring): keys are loaded at start and
work across a restart on the same database; the Account resource reads the config."""

from __future__ import annotations

import trio
from twilio.rest import Client

from tests.e2e.harness import ACCOUNT, LONG, gateway_env, wait_status

from .conftest import call


async def test_key_works_after_gateway_restart(tmp_path):
    with trio.fail_after(60):
        async with gateway_env(tmp_path) as env:
            primary = env.client()
            key = await call(primary.new_keys.create, friendly_name="ops")
            acct = await call(primary.api.account.fetch)
            assert acct.sid == ACCOUNT and acct.status == "active"
        async with gateway_env(tmp_path) as env:              # same database
            assert env.gw.api.keys.loaded                      # loaded at start
            assert [k.sid for k in env.gw.api.keys.for_account(ACCOUNT)] == [key.sid]
            app = Client(key.sid, key.secret, ACCOUNT)
            app.api.base_url = env.base_url
            msg = await call(app.messages.create, to="+15005550001", from_=LONG, body="key")
            assert msg.account_sid == ACCOUNT
            await wait_status(env, msg.sid, "delivered")
