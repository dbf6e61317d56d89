"""The carriers at run time: one SMPP link, one health record and one breaker each, the
router over them, and everything operators see about them (healthz, admin, metrics).

Rules:
- Health inputs come only from link events (bind state, submit_sm_resp latency and
  status, lost submits) and DLR outcomes; the score is read at scrape/route time.
- Every breaker change and every reroute is logged once, with its reason.
- Admin view (``GET /admin/carriers``): ``submitted`` counts accepted submits since
  start; ``traffic_share`` is each carrier's part of the accepted submits of the last
  ``SHARE_WINDOW_S`` seconds (``RecentCounts``: one-second buckets in a ring, O(1) and no
  allocation per submit; a read sums the ring), 0.0 for all when nothing was sent then.
- Config reload (``reconfigure``, from ``runtime.reload``): router, weights, caps and
  health thresholds change in place; an unchanged carrier keeps its bind. A removed
  carrier leaves the router at once and its link closes after its in-flight window is
  answered (what is lost then is re-queued by the dispatcher and goes elsewhere); a
  carrier whose connection settings (``REBIND_KEYS``) changed is closed the same way and
  bound again with a fresh health record; a new carrier gets a link at once.
"""

from __future__ import annotations

import logging
from array import array

import trio

from gateway.core import errors
from gateway.core.health import CarrierHealth, HealthConfig
from gateway.core.routing import Router
from gateway.io.smpp_link import SmppLink
from gateway.observability.metrics import labelled

log = logging.getLogger("gateway.carriers")

SHARE_WINDOW_S = 60


class RecentCounts:
    """Events per key over the last ``window`` seconds, in one-second buckets.

    ``add(key, now)`` is O(1): the bucket of second ``int(now)`` is reset when it last
    held an older second. ``count(key, now)`` sums the buckets of the last ``window``
    seconds (the current, partly elapsed second included).
    """

    __slots__ = ("window", "_counts", "_seconds")

    def __init__(self, keys, window: int = SHARE_WINDOW_S) -> None:
        self.window = int(window)
        self._counts = {k: array("q", bytes(8 * self.window)) for k in keys}
        self._seconds = {k: array("q", [-1] * self.window) for k in keys}

    def add_key(self, key) -> None:
        if key not in self._counts:
            self._counts[key] = array("q", bytes(8 * self.window))
            self._seconds[key] = array("q", [-1] * self.window)

    def add(self, key, now: float, n: int = 1) -> None:
        sec = int(now)
        i = sec % self.window
        seconds = self._seconds[key]
        if seconds[i] != sec:
            seconds[i] = sec
            self._counts[key][i] = n
        else:
            self._counts[key][i] += n

    def count(self, key, now: float) -> int:
        oldest = int(now) - self.window
        counts, seconds = self._counts[key], self._seconds[key]
        return sum(counts[i] for i in range(self.window) if seconds[i] > oldest)


def health_config(settings) -> HealthConfig:
    """HealthConfig from ``[health]`` (keys with the same names override defaults)."""
    section = getattr(settings, "health", None)
    if section is None:
        return HealthConfig()
    known = {f for f in HealthConfig.__dataclass_fields__}
    values = {k: getattr(section, k) for k in known if hasattr(section, k)}
    return HealthConfig(**values)


def apply_health_config(h: CarrierHealth, cfg: HealthConfig, now: float) -> None:
    """New thresholds, weights and windows for a live health record (its history stays)."""
    h.cfg = cfg
    h._quick_latency = cfg.latency_floor * cfg.latency_ok_ratio
    for d in (h._ok, h._err, h._timeout, h._throttle):
        d.tau = cfg.window_s
    h._lat_fast_sum.tau = h._lat_fast_n.tau = cfg.latency_fast_s
    h._lat_base_sum.tau = h._lat_base_n.tau = cfg.latency_baseline_s
    h._dlr_ok.tau = h._dlr_all.tau = cfg.dlr_window_s
    h._opt_ok.tau = h._opt_all.tau = cfg.options_window_s
    b = h.breaker
    b.open_below, b.close_above = cfg.open_below, cfg.close_above
    b.cooldown, b.cooldown_max = cfg.cooldown_s, cfg.cooldown_max_s
    b.stable_after, b.probe_rate = cfg.stable_after_s, cfg.probe_rate
    b.probes_to_close, b.ramp_s, b.ramp_floor = cfg.probes_to_close, cfg.ramp_s, cfg.ramp_floor
    b.probe_bucket.set_rate(cfg.probe_rate, 1.0, now)
    h._cache_at = float("-inf")


#: SMPP keys whose change needs a new bind; the others apply at once (``max_tps``,
#: ``split``) or at the link's next bind (window, timers)
REBIND_KEYS = ("host", "port", "system_id", "password", "tls", "bind", "system_type")


def needs_rebind(old, new) -> bool:
    if old is None or new is None:
        return old is not new
    return any(getattr(old, k) != getattr(new, k) for k in REBIND_KEYS)


def _status_label(status: int) -> str:
    """A bounded label value for a command_status: known names, else "vendor"/"other"."""
    if status == 0:
        return "ok"
    name = errors.SMPP_STATUS_NAMES.get(status) if hasattr(errors, "SMPP_STATUS_NAMES") else None
    if name:
        return name
    return "vendor" if status >= 0x400 else f"0x{status:02x}" if status < 0x100 else "other"


class Carriers:
    def __init__(self, settings, metrics=None):
        self.settings = settings
        self.metrics = metrics
        now = trio.current_time()
        cfg = health_config(settings)
        self.healths: dict[str, CarrierHealth] = {
            c.name: CarrierHealth(c.name, cfg, now) for c in settings.carriers
        }
        self.router = Router(settings.routes, settings.carriers, settings.routing.prefer_margin)
        self.links: dict[str, SmppLink] = {}
        self._handler = None          # the links' handler and cluster gate (build_links)
        self._gate = None
        self._retiring: set[str] = set()   # removed by a reload, link still closing
        #: cluster hook ``(carrier, now) -> bool``: may this gateway submit on that bind now
        self.may_send = None
        self.by_name = {c.name: c for c in settings.carriers}
        # a carrier starts open (no link yet): its first bind is the first logged change
        self._breaker = {c.name: self.healths[c.name].breaker_state(now) for c in settings.carriers}
        self.reroutes: dict[tuple[str, str], int] = {}
        self.sent_by: dict[str, int] = {c.name: 0 for c in settings.carriers}
        self.recent = RecentCounts(self.sent_by)     # traffic share over SHARE_WINDOW_S
        self._m_latency = labelled(metrics.smpp_submit_latency) if metrics is not None else None
        self._m_pdus = labelled(metrics.smpp_pdus) if metrics is not None else None

    def build_links(self, handler) -> None:
        # cluster: on a Redis-backed gateway a link binds only while it holds a bind lease
        cluster = getattr(getattr(handler, "gw", None), "cluster", None)
        self._gate = getattr(cluster, "bind_gate", None)
        self._handler = handler
        self.may_send = getattr(cluster, "may_send", None)
        for c in self.settings.carriers:
            if getattr(c, "smpp", None) is not None:
                self.links[c.name] = self._make_link(c)

    def _make_link(self, c) -> SmppLink:
        link = SmppLink(c.name, c.smpp, self._handler, metrics=self.metrics)
        link.gate = self._gate   # cluster: None = always
        return link

    # -- config reload ----------------------------------------------------------------------
    def reconfigure(self, settings, nursery, links: bool = True) -> list[str]:
        """Apply ``settings`` (already validated): synchronous, one step for the event
        loop; link closes and binds run as tasks in ``nursery``. Returns what changed,
        one phrase per carrier, for the log. ``links=False`` (cluster: bind leases are
        fixed at start) leaves every link as it is: such changes need a restart."""
        now = trio.current_time()
        old, new = self.by_name, {c.name: c for c in settings.carriers}
        self.router.update(settings.routes, settings.carriers, settings.routing.prefer_margin,
                           now)
        cfg = health_config(settings)
        for h in self.healths.values():
            apply_health_config(h, cfg, now)
        changes = []
        for name, c in new.items():
            prev = None if name in self._retiring else old.get(name)
            if prev is None:
                self._retiring.discard(name)        # back while its old link closes
                self._add(c, cfg, now)
                if not links:
                    changes.append(f"{name}: added, link needs restart")
                else:
                    changes.append(f"{name}: added")
                    if getattr(c, "smpp", None) is not None and self._handler is not None:
                        link = self.links[name] = self._make_link(c)
                        nursery.start_soon(link.run)
            elif needs_rebind(prev.smpp, c.smpp) and not links:
                changes.append(f"{name}: connection settings need restart")
            elif needs_rebind(prev.smpp, c.smpp):
                changes.append(f"{name}: rebind")
                nursery.start_soon(self._rebind, c, self.links.pop(name, None), cfg)
            else:
                link = self.links.get(name)
                if link is not None:
                    link.cfg = c.smpp   # window/timers: next bind; close() uses it now
                if prev != c:
                    changes.append(f"{name}: updated")
        for name in old:
            if name not in new and name not in self._retiring:
                changes.append(f"{name}: removed" + ("" if links else ", link needs restart"))
                if links:
                    self._retiring.add(name)
                    nursery.start_soon(self._retire, name, self.links.pop(name, None))
        self.settings = settings
        self.by_name = {**old, **new}   # retiring ones stay known until closed
        return changes

    def _add(self, c, cfg: HealthConfig, now: float) -> None:
        self.healths[c.name] = CarrierHealth(c.name, cfg, now)
        self._breaker[c.name] = self.healths[c.name].breaker_state(now)
        self.sent_by.setdefault(c.name, 0)
        self.recent.add_key(c.name)

    async def _retire(self, name: str, link: SmppLink | None) -> None:
        """Close a removed carrier's link once its window is answered, then forget it."""
        if link is not None:
            await link.close()
        log.info("carrier removed carrier=%s", name)
        if self.settings.carrier(name) is None:
            self._retiring.discard(name)
            for d in (self.healths, self._breaker, self.sent_by, self.by_name):
                d.pop(name, None)

    async def _rebind(self, c, link: SmppLink | None, cfg: HealthConfig) -> None:
        """Connection settings changed: close the old bind gracefully, bind anew."""
        if link is not None:
            await link.close()
        cur = self.by_name.get(c.name)
        if cur is None or cur.smpp != c.smpp or c.name in self._retiring or \
                c.name in self.links:
            return                  # changed or removed again meanwhile: that reload wins
        self._add(c, cfg, trio.current_time())   # new endpoint: fresh health record
        new = self.links[c.name] = self._make_link(c)
        log.info("carrier rebinding carrier=%s", c.name)
        await new.run()

    def free_slots(self) -> int:
        may_send = self.may_send
        if may_send is None:
            return sum(link.free_slots() for link in self.links.values()
                       if link.state == "bound")
        now = trio.current_time()           # cluster: only binds whose lease is valid now
        return sum(link.free_slots() for name, link in self.links.items()
                   if link.state == "bound" and may_send(name, now))

    def split_mode(self, name: str) -> str:
        smpp = self.by_name[name].smpp
        return getattr(smpp, "split", "udh8") or "udh8"

    # -- health inputs --------------------------------------------------------------------
    def on_link_state(self, name: str, up: bool, reason: str) -> None:
        now = trio.current_time()
        self.healths[name].on_link(up, now)
        log.info("carrier link %s carrier=%s reason=%s", "up" if up else "down", name, reason)
        self.check_breaker(name, now)

    def on_submit_resp(self, name: str, latency: float, status: int) -> None:
        now = trio.current_time()
        h = self.healths.get(name)
        if h is None:               # a carrier removed by a reload, answering late
            return
        h.on_submit_resp(latency, status, now)
        if status == 0:
            self.sent_by[name] += 1
            self.recent.add(name, now)
        if self._m_latency is not None:
            self._m_latency(name).observe(latency)
            self._m_pdus(name, "submit_sm_resp", _status_label(status)).inc()
        if status != 0 and not errors.is_retryable_smpp_status(status):
            self.check_breaker(name, now)

    def on_lost(self, name: str, reason: str) -> None:
        now = trio.current_time()
        self.healths[name].on_timeout(now)
        self.check_breaker(name, now)

    def on_dlr(self, name: str, delivered: bool) -> None:
        self.healths[name].on_dlr(delivered, trio.current_time())

    def count_reroute(self, src: str, dst: str) -> None:
        key = (src, dst)
        self.reroutes[key] = self.reroutes.get(key, 0) + 1
        if self.reroutes[key] == 1 or self.reroutes[key] % 1000 == 0:
            log.warning("reroute from_carrier=%s to_carrier=%s count=%d", src, dst, self.reroutes[key])
        if self.metrics is not None:
            self.metrics.reroutes.labels(src, dst).inc()

    def check_breaker(self, name: str, now: float) -> None:
        state = self.healths[name].breaker_state(now)
        if state != self._breaker[name]:
            log.warning(
                "carrier breaker carrier=%s from=%s to=%s score=%.2f",
                name, self._breaker[name], state, self.healths[name].score(now),
            )
            self._breaker[name] = state

    async def watch(self) -> None:
        """Re-evaluate breakers twice a second (cool-downs and recoveries need time)."""
        while True:
            now = trio.current_time()
            for name in self.healths:
                self.check_breaker(name, now)
            await trio.sleep(0.5)

    # -- views ----------------------------------------------------------------------------
    def healthz(self) -> dict:
        now = trio.current_time()
        out = {}
        for c in self.settings.carriers:
            link = self.links.get(c.name)
            entry = {
                "smpp": "bound" if link is not None and link.state == "bound" else "down",
                "health": round(self.healths[c.name].score(now), 3),
            }
            if getattr(c, "sip", None) is not None:
                entry["sip"] = "up" if self._sip_up.get(c.name) else "down"
            out[c.name] = entry
        return out

    _sip_up: dict = {}

    def set_sip_state(self, name: str, up: bool) -> None:
        """The voice service's OPTIONS probe result for a carrier's SIP trunk."""
        if not self._sip_up:
            self._sip_up = {}
        self._sip_up[name] = up

    def admin(self) -> list[dict]:
        now = trio.current_time()
        recent = {name: self.recent.count(name, now) for name in self.sent_by}
        total = sum(recent.values()) or 1
        rows = []
        for c in self.settings.carriers:
            h = self.healths[c.name]
            link = self.links.get(c.name)
            rows.append({
                "name": c.name,
                "priority": c.priority,
                "weight": c.weight,
                "score": round(h.score(now), 4),
                "breaker": h.breaker_state(now),
                "inputs": h.inputs(now),
                "smpp": link.state if link is not None else "none",
                "window_free": link.free_slots() if link is not None else 0,
                "submitted": self.sent_by[c.name],
                "submitted_recent": recent[c.name],
                "traffic_share": round(recent[c.name] / total, 4),
                "traffic_share_window_s": self.recent.window,
            })
        return rows

    def metric_rows(self) -> dict:
        """{carrier: (score, {link: up}, breaker_state)} for the scrape-time collector."""
        now = trio.current_time()
        out = {}
        for name, h in self.healths.items():
            link = self.links.get(name)
            links = {"smpp": link is not None and link.state == "bound"}
            out[name] = (h.score(now), links, h.breaker_state(now))
        return out
