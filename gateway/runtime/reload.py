"""Configuration reload on SIGHUP (``systemctl reload gateway``): re-read the config file
the daemon started with, validate it exactly like ``gateway check-config``, and apply
what can change while running — without dropping binds, calls or queued messages.

Owns: the diff between the running ``Settings`` and the new ones, and applying it.

Rules:
- Invalid file: nothing changes. Every problem is logged once (one line each, as
  check-config prints them), ``gateway_config_reload_total{result="error"}`` counts it
  and ``STATUS=`` tells systemd the old config is still in force.
- Valid file: everything that can change live is applied in one synchronous step (no
  checkpoint in between, so no request and no dispatch sees half a config):
  * numbers and ``[[alpha_senders]]``: new ones get their sender queue; removed ones answer 21606 to new messages
    (as an unknown From) while what they had queued still drains; webhook URLs and
    ``status_callback`` follow CONTRACT §4 (an API override wins until the config's
    value of that field changes; stale overrides are then deleted from the store);
  * ``[rates]``: every sender's gate ``set_rate`` and queue capacity (new messages only:
    what is queued stays, a smaller capacity just refuses new ones with 21611);
  * routes, ``[routing]``, ``[health]``, carriers' priority/weight/max_tps/split;
    carriers added, removed or re-bound (``runtime.carriers``: links close only after
    their in-flight window is answered); unchanged carriers keep their binds;
  * messaging services (pools, sticky flag, webhooks), accounts and their auth tokens
    (a rotated token works at once, the old one gets 401), the log level.
- What cannot change live is logged once per key as "needs restart" and left as it
  runs; the rest still applies: ``[store]``, ``[api]`` listen/limits/public_url,
  ``[sip]``, ``[webhooks]``, ``[simulator]``, ``[logging] format``, carriers' SIP trunks,
  turning voice on; on a Redis cluster also carrier links and the set of numbers (their
  streams and bind leases are set up at start).
- sd_notify: ``RELOADING=1`` with ``MONOTONIC_USEC`` first, ``READY=1`` with ``STATUS=``
  after, valid or not (systemd 253+ ``Type=notify-reload`` protocol; older ones with
  ``Type=notify`` + ``ExecReload=kill -HUP`` accept the same messages).
- One reload at a time (a lock): a SIGHUP during a reload runs after it.

Error handling: an exception while applying is logged with its traceback and counted as
an error; the daemon keeps running (what was applied before it stays applied).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import trio

from gateway import settings as settings_mod
from gateway.io import sdnotify
from gateway.observability import logging as glog
from gateway.runtime.voice import VoiceService

log = logging.getLogger("gateway.reload")

#: (section, keys or None for the whole section) that only a restart applies
RESTART_KEYS = (
    ("store", None), ("sip", None), ("webhooks", None), ("simulator", None),
    ("api", ("listen", "public_url", "max_body_bytes", "max_connections")),
    ("logging", ("format",)),
)


@dataclass
class ReloadResult:
    ok: bool
    problems: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


def restart_only(old, new) -> list[str]:
    """Keys whose change needs a restart (``section.key``), in config order."""
    out = []
    for section, keys in RESTART_KEYS:
        a, b = getattr(old, section), getattr(new, section)
        if keys is None:
            if a != b:
                out.append(section)
            continue
        out += [f"{section}.{k}" for k in keys if getattr(a, k) != getattr(b, k)]
    old_sip = {c.name: c.sip for c in old.carriers if c.sip is not None}
    new_sip = {c.name: c.sip for c in new.carriers if c.sip is not None}
    out += [f"carriers.{n}.sip" for n in sorted(old_sip.keys() | new_sip.keys())
            if old_sip.get(n) != new_sip.get(n)]
    return out


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Reloader:
    def __init__(self, gw) -> None:
        self.gw = gw
        self.lock = trio.Lock()
        m = gw.metrics
        m.config_reloads.labels("ok"), m.config_reloads.labels("error")   # export 0s
        m.config_last_reload_ok.set(time.time())                        # the start's load

    async def reload(self) -> ReloadResult:
        async with self.lock:
            gw = self.gw
            while gw.api_port is None and not gw.stopped:   # SIGHUP during start-up
                await trio.sleep(0.05)
            sdnotify.notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}\n"
                            "STATUS=reloading configuration")
            result = await self._reload()
            m = gw.metrics
            m.config_reloads.labels("ok" if result.ok else "error").inc()
            if result.ok:
                m.config_last_reload_ok.set(time.time())
                status = gw._status_line()
            else:
                status = (f"config reload failed ({len(result.problems)} problems), "
                          "running on the previous config")
            sdnotify.notify("READY=1\nSTATUS=" + status)
            return result

    async def _reload(self) -> ReloadResult:
        gw = self.gw
        path = gw.settings.source
        if not path:
            return self._invalid(["config reload: the settings have no source file"])
        try:
            new = await trio.to_thread.run_sync(settings_mod.load, path)
        except settings_mod.ConfigError as exc:
            return self._invalid(exc.problems)
        try:
            result, stale = apply(gw, new)
        except Exception:
            log.exception("config reload: applying %s failed", path)
            return ReloadResult(False, ["applying the new config failed (see log)"])
        for number in stale:
            await gw.store.kv_delete(gw.registry.NS, number)
        for key in result.needs_restart:
            log.warning("config reload: %s changed, needs restart (still running on the "
                        "old value)", key)
        log.info("config reloaded file=%s changes=%s", path,
                 "; ".join(result.changes) or "none")
        return result

    def _invalid(self, problems: list[str]) -> ReloadResult:
        for line in problems:
            log.error("config reload refused: %s", line)
        log.error("config reload: %d problems, still running on the previous config",
                  len(problems))
        return ReloadResult(False, list(problems))


def apply(gw, new) -> tuple[ReloadResult, list[str]]:
    """Apply validated settings ``new`` to the running gateway in one synchronous step.
    Returns the result and the numbers whose stored API override became stale."""
    old = gw.settings
    restart = restart_only(old, new)
    if VoiceService.wanted(new) and not VoiceService.wanted(old):
        restart.append("voice (first SIP trunk or voice_url)")
    clustered = getattr(gw.cluster, "bind_gate", None) is not None
    if clustered and ({n.number for n in old.numbers} != {n.number for n in new.numbers}
                      or old.alpha_senders != new.alpha_senders):
        restart.append("numbers (added or removed, on a Redis cluster)")
        new = dataclasses.replace(new, numbers=old.numbers, alpha_senders=old.alpha_senders,
                                  messaging_services=old.messaging_services)
    # what needs a restart keeps its running value
    keep = {s: getattr(old, s) for s, keys in RESTART_KEYS if keys is None}
    keep["api"] = old.api
    keep["logging"] = dataclasses.replace(new.logging, format=old.logging.format)
    old_sip = {c.name: c.sip for c in old.carriers}
    keep["carriers"] = tuple(dataclasses.replace(c, sip=old_sip.get(c.name))
                             for c in new.carriers)
    effective = dataclasses.replace(new, **keep)
    changes: list[str] = []

    # -- one synchronous step from here on: no await ---------------------------------
    gw.settings = effective
    added, removed, stale = gw.registry.reconfigure(effective)
    disp = gw.dispatcher
    for number in added:
        disp.add_sender(number, gw.registry.get(number).type)
    alpha_added, alpha_removed = gw.registry.reconfigure_alpha(effective)
    for alpha in alpha_added:
        disp.add_sender(alpha.key, alpha.view.type)
    resized = 0
    for number in list(disp.capacity):
        view = gw.registry.get(number)
        cls = view.type if view is not None else disp.sched.sender_class(number)
        rate = gw.class_rate(cls)
        cap = int(rate * 3600 * effective.rates.queue_hours)
        if disp.capacity[number] != (rate, cap) or disp.sched.sender_class(number) != cls:
            disp.add_sender(number, cls)
            resized += 1
    if added or removed:
        changes.append(f"numbers +{len(added)} -{len(removed)}")
    if resized:
        changes.append(f"rates of {resized} senders")
    if alpha_added or alpha_removed:
        changes.append(f"alpha senders +{len(alpha_added)} -{len(alpha_removed)}")
    if stale:
        changes.append(f"config wins over API overrides of {len(stale)} numbers")
    views = {}
    for s in effective.messaging_services:
        view = gw._service_view(s)
        prev = gw._services.get(s.sid)
        if prev is not None:
            same = dataclasses.replace(view, date_created=prev.date_created,
                                       date_updated=prev.date_updated)
            view = prev if same == prev else dataclasses.replace(
                same, date_updated=view.date_updated)
        views[s.sid] = view
    gw._services = views
    gw._service_of_number = {n: s for s in views.values() for n in s.numbers}
    tokens = {a.sid: a.auth_token for a in effective.accounts}
    if tokens != gw.tokens:
        changes.append("accounts/auth tokens")
    gw.tokens = tokens
    changes += gw.carriers.reconfigure(effective, gw.nursery, links=not clustered)
    restart += [f"carriers.{c.split(':')[0]} link" for c in changes if "needs restart" in c]
    if old.logging.level != effective.logging.level:
        glog.set_level(effective.logging.level)
        changes.append(f"log level {effective.logging.level}")
    disp.wake.set()
    return ReloadResult(True, changes=changes, needs_restart=restart), stale
