"""Status callbacks from the worker process (``[webhooks] sender = "process"``): signed
as in-process, counted by the gateway, and resent when the worker dies."""

import os
import signal

import trio
from twilio.request_validator import RequestValidator

from tests.e2e.harness import SHORT, TOKEN, gateway_env, wait_until


async def _send(env, n, cb):
    client = env.client()
    return await trio.to_thread.run_sync(lambda: [
        client.messages.create(to="+15558675310", from_=SHORT, body=f"w{i}", status_callback=cb).sid
        for i in range(n)])


async def test_worker_process_sends_signed_callbacks(tmp_path):
    async with gateway_env(tmp_path, webhooks='sender = "process"') as env:
        remote = env.gw.webhooks.remote
        assert remote is not None and remote.pid and remote.pid != os.getpid()
        cb = env.sink.url("/st")
        sids = await _send(env, 10, cb)
        hits = await env.sink.wait_for(lambda: len(env.sink.at("/st")) >= 20 and env.sink.at("/st"))
        assert {h.form["MessageSid"] for h in hits} == set(sids)
        validator = RequestValidator(TOKEN)
        assert all(validator.validate(cb, h.form, h.headers["x-twilio-signature"]) for h in hits)
        await wait_until(lambda: env.gw.webhooks.pending == 0)
        assert env.gw.webhooks.delivered == 20


async def test_dead_worker_is_replaced_and_nothing_is_lost(tmp_path):
    async with gateway_env(tmp_path, webhooks='sender = "process"') as env:
        remote = env.gw.webhooks.remote
        env.sink.replies["/st"] = (503, "text/plain", b"busy")   # keep hooks in the worker
        cb = env.sink.url("/st")
        sids = await _send(env, 5, cb)
        await env.sink.wait_for(lambda: len(env.sink.at("/st")) >= 5)
        old = remote.pid
        os.kill(old, signal.SIGKILL)
        env.sink.replies.pop("/st")
        await wait_until(lambda: remote.pid != old, timeout=10)
        ok = lambda: {h.form["MessageSid"] for h in env.sink.at("/st")}  # noqa: E731
        await wait_until(lambda: ok() >= set(sids) and env.gw.webhooks.pending == 0, timeout=30)
        tokens = {}
        for h in env.sink.at("/st"):
            key = (h.form["MessageSid"], h.form["MessageStatus"])
            tokens.setdefault(key, set()).add(h.headers["i-twilio-idempotency-token"])
        assert all(len(t) == 1 for t in tokens.values())       # same token on every attempt
