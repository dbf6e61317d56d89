"""The Conferences/Participants REST resources, with the twilio library as the client,
over live rooms: two phones in a room; list/fetch/filters; mute a participant live (the
other stops hearing it); kick one (its call goes on with the ``<Dial action>``); end
the room through the API; a completed room stays listable."""

from __future__ import annotations

import trio
from twilio.base.exceptions import TwilioException, TwilioRestException

from ..e2e.harness import ACCOUNT
from ..e2e.voice_harness import NUMBER, voice_env
from .phone import phone, tone_power, tone_ulaw
from .test_conference import _room, _until


async def _api(fn):
    return await trio.to_thread.run_sync(fn)


async def _hears(listener, talker, freq: float) -> float:
    """Tone power of ``freq`` that ``listener`` hears while ``talker`` plays it."""
    listener.rtp.stop_recording()
    listener.rtp.start_recording()
    n0 = listener.rtp.stats["packets_in"]
    await talker.rtp.play(tone_ulaw(0.6, freq))
    await _until(lambda: listener.rtp.stats["packets_in"] > n0 + 30)
    return tone_power(listener.rtp.stop_recording(), freq)


async def test_list_fetch_mute_kick_and_end_via_api(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Dial action="/after"><Conference beep="false">room-api'
                b"</Conference></Dial></Response>"))
            sink.replies["/after"] = (200, "text/xml",
                                      b"<Response><Say>after</Say><Hangup/></Response>")
            client = env.client()
            async with phone(env.sip_port, NUMBER) as a, phone(env.sip_port, NUMBER) as b:
                room = await _until(lambda: (r := _room(env, "room-api")) and
                                    len(r.parts) == 2 and r)
                confs = await _api(lambda: client.conferences.list())
                assert [(c.sid, c.friendly_name, c.status) for c in confs] == [
                    (room.sid, "room-api", "in-progress")]
                assert confs[0].account_sid == ACCOUNT and confs[0].date_created is not None
                assert await _api(lambda: client.conferences.list(status="completed")) == []
                assert len(await _api(lambda: client.conferences.list(
                    friendly_name="room-api", status="in-progress"))) == 1
                got = await _api(lambda: client.conferences(room.sid).fetch())
                assert got.sid == room.sid and got.reason_conference_ended is None

                parts = await _api(lambda: client.conferences(room.sid).participants.list())
                sids = {p.call_sid for p in parts}
                assert sids == set(room.parts) and len(sids) == 2
                assert all(p.status == "connected" and p.muted is False and
                           p.conference_sid == room.sid for p in parts)
                a_sid = next(s for s, p in room.parts.items()
                             if p.leg.sip.call_id == a.call.call_id)
                b_sid = next(s for s in sids if s != a_sid)

                assert await _hears(b, a, 700) > 1e5                     # B hears A
                muted = await _api(lambda: client.conferences(room.sid)
                                   .participants(a_sid).update(muted=True))
                assert muted.muted is True and room.parts[a_sid].muted
                assert await _hears(b, a, 700) < 1e4                     # ...not any more
                only = await _api(lambda: client.conferences(room.sid)
                                  .participants.list(muted=True))
                assert [p.call_sid for p in only] == [a_sid]
                await _api(lambda: client.conferences(room.sid)
                           .participants(a_sid).update(muted=False))
                assert await _hears(b, a, 700) > 1e5                     # unmuted again

                # kick A: its call leaves the room and goes on with the Dial action
                assert await _api(lambda: client.conferences(room.sid)
                                  .participants(a_sid).delete()) is True
                hit = await sink.wait_for(lambda: next(
                    (h for h in sink.at("/after") if h.form["CallSid"] == a_sid), None))
                assert hit.form["DialCallStatus"] == "completed"
                with trio.fail_after(15):
                    await a.call.ended.wait()              # <Say>after</Say><Hangup/>
                assert set(room.parts) == {b_sid} and not room.ended
                try:
                    await _api(lambda: client.conferences(room.sid)
                               .participants(a_sid).fetch())
                    raise AssertionError("a kicked participant is still fetchable")
                except TwilioRestException as exc:
                    assert exc.status == 404 and exc.code == 20404

                # end the room: B goes on with its action too
                ended = await _api(lambda: client.conferences(room.sid)
                                   .update(status="completed"))
                assert ended.status == "completed"
                assert ended.reason_conference_ended == "conference-ended-via-api"
                with trio.fail_after(15):
                    await b.call.ended.wait()
            after = await sink.wait_for(lambda: len(sink.at("/after")) == 2 and sink.at("/after"))
            assert {h.form["CallSid"] for h in after} == {a_sid, b_sid}
            # completed rooms stay listable (stored records), participants are gone
            done = await _api(lambda: client.conferences.list(status="completed"))
            assert [c.sid for c in done] == [room.sid]
            assert await _api(lambda: client.conferences(room.sid).participants.list()) == []
            assert await _api(lambda: client.conferences.list(status="in-progress")) == []


async def test_refusals_and_other_accounts(tmp_path):
    with trio.fail_after(30):
        async with voice_env(tmp_path, []) as env:
            client = env.client()
            missing = "CF" + "0" * 32
            for call in (lambda: client.conferences(missing).fetch(),
                         lambda: client.conferences(missing).update(status="completed")):
                try:
                    await _api(call)
                    raise AssertionError("expected 404")
                except TwilioRestException as exc:
                    assert exc.status == 404 and exc.code == 20404
            try:                                  # lists raise the library's page error
                await _api(lambda: client.conferences(missing).participants.list())
                raise AssertionError("expected 404")
            except TwilioException as exc:
                assert exc.args[1].status_code == 404
            try:
                await _api(lambda: client.conferences.list(status="bogus"))
                raise AssertionError("expected 400")
            except TwilioException as exc:
                assert exc.args[1].status_code == 400
            page = await _api(lambda: client.conferences.page(page_size=5))
            assert list(page) == [] and page.next_page_url is None
