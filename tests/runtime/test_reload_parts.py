"""The pieces a config reload is made of, each on its own: the router's in-place update
(gates kept, re-rated or new), the number registry's override rule on reconfigure (a
real SQLite store), what needs a restart, new health thresholds on a live record, and
the log level."""

from __future__ import annotations

import logging
import textwrap

import pytest
import trio

from gateway import settings as settings_mod
from gateway.core.health import CarrierHealth, HealthConfig
from gateway.core.rates import TokenBucket
from gateway.core.routing import CarrierSpec, Router
from gateway.observability import logging as glog
from gateway.runtime.carriers import apply_health_config, needs_rebind
from gateway.runtime.numbers import NumberRegistry
from gateway.runtime.reload import restart_only
from gateway.store.sqlite import SqliteStore

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
LONG = "+15005550006"


class Healthy:
    def snapshot(self, now):
        return "closed", 1.0, 1.0


def test_router_update_keeps_unchanged_gates_rerates_changed_and_uses_the_factory():
    made = []

    def factory(name, rate, burst, now):
        made.append((name, rate))
        return TokenBucket(rate, burst, now)

    r = Router({"+": ["a", "b"]}, [CarrierSpec("a", 1, 1, 10), CarrierSpec("b", 2, 1, 5)],
               gates=factory)
    gate_a, gate_b = r._buckets["a"], r._buckets["b"]
    assert r.take_carrier_token("a", 0.0, 10) == 0.0          # a's bucket now empty
    made.clear()
    r.update({"+": ["b", "c"], "+44": ["c"]},
             [CarrierSpec("a", 1, 1, 10), CarrierSpec("b", 1, 1, 50), CarrierSpec("c", 3, 1, 2)],
             0.5, 0.0)
    assert r._buckets["a"] is gate_a and r.take_carrier_token("a", 0.0) > 0   # state kept
    assert r._buckets["b"] is gate_b and gate_b.rate == 50                    # set_rate
    assert made == [("c", 2.0)]                                               # same factory
    assert r.prefer_margin == 0.5
    healths = {n: Healthy() for n in "abc"}
    assert set(r.choose("+15551234567", healths, 0.0)) == {"b", "c"}
    assert r.choose("+447700900000", healths, 0.0) == ["c"]                   # cache dropped
    with pytest.raises(ValueError):
        r.update({"+": ["zzz"]}, [CarrierSpec("a")], 0.2, 0.0)
    assert r.route_for("+447700900000") == ("c",)                             # unchanged


def write_cfg(path, sms_url: str, voice_url: str, extra: str = "", store: str = "gw.db",
              listen: str = "127.0.0.1:0", sip: str = "") -> settings_mod.Settings:
    path.write_text(textwrap.dedent(f"""
    [api]
    listen = "{listen}"
    [store]
    path = "{path.parent / store}"
    [[accounts]]
    sid = "{ACCOUNT}"
    auth_token = "t"
    [[carriers]]
    name = "a"
      [carriers.smpp]
      system_id = "gw"
      password = "pw"
    {sip}
    [[routes]]
    prefix = "+"
    carriers = ["a"]
    [[numbers]]
    number = "{LONG}"
    account = "{ACCOUNT}"
    sms_url = "{sms_url}"
    voice_url = "{voice_url}"
    """) + extra)
    return settings_mod.load(path)


async def test_registry_reconfigure_keeps_api_overrides_until_the_config_value_changes(tmp_path):
    cfg = tmp_path / "gw.toml"
    with trio.fail_after(10):
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        reg = NumberRegistry(write_cfg(cfg, "http://x/sms", "http://x/voice"), store)
        await reg.load()
        await reg.update(LONG, {"sms_url": "http://api/sms"})
        # another field of the number changes in the config: the override stays
        added, removed, stale = reg.reconfigure(write_cfg(cfg, "http://x/sms", "http://y/voice"))
        assert (added, removed, stale) == ([], [], [])
        view = reg.get(LONG)
        assert view.sms_url == "http://api/sms" and view.voice_url == "http://y/voice"
        # a number is added; the overridden field changes in the config: config wins
        extra = f'[[numbers]]\nnumber = "+15005550123"\naccount = "{ACCOUNT}"\n'
        added, removed, stale = reg.reconfigure(
            write_cfg(cfg, "http://z/sms", "http://y/voice", extra))
        assert (added, removed, stale) == (["+15005550123"], [], [LONG])
        assert reg.get(LONG).sms_url == "http://z/sms"
        assert reg.get("+15005550123").type == "long_code"
        # removed: gone from the API view
        added, removed, _ = reg.reconfigure(write_cfg(cfg, "http://z/sms", "http://y/voice"))
        assert removed == ["+15005550123"] and reg.get("+15005550123") is None
        await store.close()


def test_what_needs_a_restart(tmp_path):
    cfg = tmp_path / "gw.toml"
    base = write_cfg(cfg, "http://x/sms", "")
    assert restart_only(base, write_cfg(cfg, "http://changed/sms", "")) == []
    trunk = '\n  [carriers.sip]\n  host = "127.0.0.1"\n  port = 5070\n'
    changed = write_cfg(cfg, "http://x/sms", "", store="other.db", listen="127.0.0.1:1",
                        sip=trunk)
    assert restart_only(base, changed) == ["store", "api.listen", "carriers.a.sip"]
    a, b = base.carriers[0].smpp, changed.carriers[0].smpp
    assert not needs_rebind(a, b)


def test_new_health_thresholds_apply_to_a_live_record():
    h = CarrierHealth("a", HealthConfig(), 0.0)
    h.on_link(True, 0.0)
    apply_health_config(h, HealthConfig(open_below=0.3, close_above=0.9, window_s=20.0), 0.5)
    assert h.cfg.open_below == 0.3 and h.breaker.open_below == 0.3
    assert h.breaker.close_above == 0.9 and h._err.tau == 20.0
    assert h.breaker_state(1.0) == "closed" and h.score(1.0) == 1.0


def test_log_level_changes_at_run_time():
    root = logging.getLogger()
    before = root.level
    try:
        glog.set_level("warning")
        assert root.level == logging.WARNING
        glog.set_level("DEBUG")
        assert root.level == logging.DEBUG
        with pytest.raises(ValueError):
            glog.set_level("loud")
    finally:
        root.setLevel(before)
