"""A real SIGHUP to ``python -m gateway run``: the daemon tells systemd RELOADING=1 (with
MONOTONIC_USEC) then READY=1, the new config is in force through the API (rotated token,
added number), the carrier keeps its one bind, and an invalid file afterwards changes
nothing, is logged, and counts in ``gateway_config_reload_total{result="error"}``."""

from __future__ import annotations

import re
import signal

import pytest
import trio

from tests.e2e.harness import ACCOUNT, TOKEN, config_text
from tests.e2e.process_harness import Api, GatewayProcess, NotifySocket, start_sim

pytestmark = pytest.mark.slow

DEAD_SINK = 9
NEW_NUMBER = "+15005550123"
NEW_NUMBER_TOML = f"""
[[numbers]]
number = "{NEW_NUMBER}"
account = "{ACCOUNT}"
type = "long_code"
"""


async def test_sighup_reloads_the_config_file(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sim = await start_sim(nursery, dlr_delay_ms=5)
            cfg = tmp_path / "gw.toml"
            cfg.write_text(config_text(tmp_path, [("a", sim.port)], DEAD_SINK))
            gw = GatewayProcess(cfg, tmp_path / "gw.log", env=notify.env())
            try:
                old, new = Api(await gw.start()), None
                ready = await notify.wait_for("READY=1", 5)
                assert (await old.get("/2010-04-01/Accounts/" + ACCOUNT + "/Messages.json"))[0] == 200

                cfg.write_text(config_text(tmp_path, [("a", sim.port)], DEAD_SINK,
                                           numbers_extra=NEW_NUMBER_TOML)
                               .replace(f'auth_token = "{TOKEN}"', 'auth_token = "rotated"'))
                hup = trio.current_time()
                gw.signal(signal.SIGHUP)
                reloading = await notify.wait_for("RELOADING=1", 10, after=ready)
                again = await notify.wait_for("READY=1", 10, after=reloading)
                datagram = next(m for t, m in notify.messages if t >= reloading and "RELOADING=1" in m)
                assert re.search(r"^MONOTONIC_USEC=\d+$", datagram, re.M), datagram
                assert hup <= reloading <= again
                await gw.wait_log(re.compile(rb"config reloaded"), 5)

                new = Api(gw.api_port, token="rotated")
                paths = "/2010-04-01/Accounts/" + ACCOUNT + "/IncomingPhoneNumbers.json"
                assert (await old.get(paths))[0] == 401
                status, body = await new.get(paths)
                assert status == 200 and NEW_NUMBER.encode() in body
                status, msg = await new.create(To="+15558675310", From=NEW_NUMBER, Body="hi")
                assert status == 201, msg
                assert sum(sim.stats["binds"].values()) == 1 and sim.bound_count == 1

                # an invalid file: refused, logged, counted; the running config stays
                cfg.write_text(cfg.read_text().replace("queue_hours = 10", "queue_hours = -1"))
                gw.signal(signal.SIGHUP)
                reloading = await notify.wait_for("RELOADING=1", 10, after=again)
                await notify.wait_for("READY=1", 10, after=reloading)
                assert any("reload failed" in ln for t, ln in notify.lines() if t >= reloading)
                await gw.wait_log(re.compile(rb"config reload refused: .*rates\.queue_hours"), 5)
                status, metrics = await new.get("/metrics")
                assert status == 200
                assert re.search(rb'gateway_config_reload_total\{result="error"\} 1\.0', metrics)
                assert re.search(rb'gateway_config_reload_total\{result="ok"\} 1\.0', metrics)
                assert (await new.get(paths))[0] == 200
                assert gw.proc.returncode is None

                gw.signal(signal.SIGTERM)
                assert await gw.wait(30) == 0, gw.log_text()[-3000:]
            finally:
                for api in (old, new):
                    if api is not None:
                        await api.aclose()
                await gw.stop()
                notify.close()
                nursery.cancel_scope.cancel()
