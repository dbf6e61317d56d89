"""The carriers at run time: one SMPP link, one health record and one breaker each, the
router over them, and everything operators see about them (healthz, admin, metrics).

Rules:
- Health inputs come only from link events (bind state, submit_sm_resp latency and
  status, lost submits) and DLR outcomes; the score is read at scrape/route time.
- Every breaker change and every reroute is logged once, with its reason.
"""

from __future__ import annotations

import logging

import trio

from gateway.core import errors
from gateway.core.health import CarrierHealth, HealthConfig
from gateway.core.routing import Router
from gateway.io.smpp_link import SmppLink
from gateway.observability.metrics import labelled

log = logging.getLogger("gateway.carriers")


def health_config(settings) -> HealthConfig:
    """HealthConfig from ``[health]`` (keys with the same names override defaults)."""
    section = getattr(settings, "health", None)
    if section is None:
        return HealthConfig()
    known = {f for f in HealthConfig.__dataclass_fields__}
    values = {k: getattr(section, k) for k in known if hasattr(section, k)}
    return HealthConfig(**values)


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
        self.by_name = {c.name: c for c in settings.carriers}
        # a carrier starts open (no link yet): its first bind is the first logged change
        self._breaker = {c.name: self.healths[c.name].breaker_state(now) for c in settings.carriers}
        self.reroutes: dict[tuple[str, str], int] = {}
        self.sent_by: dict[str, int] = {c.name: 0 for c in settings.carriers}
        self._m_latency = labelled(metrics.smpp_submit_latency) if metrics is not None else None
        self._m_pdus = labelled(metrics.smpp_pdus) if metrics is not None else None

    def build_links(self, handler) -> None:
        # cluster: on a Redis-backed gateway a link binds only while it holds a bind lease
        cluster = getattr(getattr(handler, "gw", None), "cluster", None)
        gate = getattr(cluster, "bind_gate", None)
        for c in self.settings.carriers:
            if getattr(c, "smpp", None) is not None:
                self.links[c.name] = SmppLink(c.name, c.smpp, handler, metrics=self.metrics)
                self.links[c.name].gate = gate   # cluster: None = always

    def free_slots(self) -> int:
        return sum(link.free_slots() for link in self.links.values() if link.state == "bound")

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
        h = self.healths[name]
        h.on_submit_resp(latency, status, now)
        if status == 0:
            self.sent_by[name] += 1
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
        total = sum(self.sent_by.values()) or 1
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
                "traffic_share": round(self.sent_by[c.name] / total, 4),
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
