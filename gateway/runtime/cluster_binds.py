"""Cluster bind leases: which gateways may bind each carrier's system_id.

Owns: the ``BIND`` Lua lease (``P c:bind:<carrier>:<i>``, ``i < cluster_binds``, value
``"<gateway id>:<fencing token>"``, PX ``LEASE_MS``), the gate every ``SmppLink`` of a
Redis-backed gateway waits at before it connects (``SmppLink.gate``), and closing a
link whose lease is gone.

Rules:
- A gateway holds at most one lease per carrier (it runs one link per carrier), so at
  most ``cluster_binds`` gateways bind a system_id at once. Leases are taken with
  ``SET NX PX`` + a fencing token from ``INCR P c:fence`` and renewed by the holder only
  (value compared) every tick; a holder that dies stops renewing and another gateway
  takes the lease at its next tick once it expired (expiry + one tick: ~4 s).
- A link connects only while its lease is held. When a renewal says the lease is gone,
  or no renewal succeeded for ``VALID_FRACTION`` of the lease time (Redis unreachable,
  a renewal stalled, the process frozen: another gateway may take it soon), the link is
  closed at once (its unanswered submits are lost and re-queued, at least once).
- The local deadline ``valid_until`` is the last successful renewal's *send* time (local
  monotonic clock) + ``VALID_FRACTION`` of the lease: never later than Redis' expiry.
  ``may_send(name, now)`` (``Carriers.free_slots`` asks it before each dispatcher round)
  is False past it, so nothing is submitted on a bind whose lease may have moved, even
  before ``watch`` (a task that wakes at the deadline) has closed the link.
- The SMSC cannot check our fencing token: a holder frozen longer than the lease (VM
  pause) may still be *connected* when it wakes (until ``watch`` closes it), so the
  carrier may see cluster_binds + 1 binds for that moment; it sends nothing on it.

Error handling: a failed tick is logged; links are closed once the held leases may have
expired (see above). Released leases (graceful stop) are deleted only if still ours.
"""

from __future__ import annotations

import logging

import trio

log = logging.getLogger("gateway.cluster")

VALID_FRACTION = 0.8

BIND = """
local ttl = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  if i < #KEYS then
    local v = redis.call('GET', k)
    if v then
      local owner, tok = string.match(v, '^(.-):(%d+)$')
      if owner == ARGV[1] then
        if ARGV[3] == '1' then redis.call('PEXPIRE', k, ttl); return tonumber(tok) end
        redis.call('DEL', k); return 0
      end
    end
  end
end
if ARGV[3] ~= '1' then return 0 end
for i, k in ipairs(KEYS) do
  if i < #KEYS and redis.call('EXISTS', k) == 0 then
    local tok = redis.call('INCR', KEYS[#KEYS])
    redis.call('SET', k, ARGV[1] .. ':' .. tok, 'PX', ttl)
    return tok
  end
end
return 0
"""


class BindLeases:
    def __init__(self, cluster, lease_ms: int) -> None:
        self.cluster = cluster
        self.gw = cluster.gw
        self.lease_ms = lease_ms
        self.carriers = {c.name: c.smpp for c in self.gw.settings.carriers
                         if getattr(c, "smpp", None) is not None}
        self.held: dict[str, int] = {}        # carrier -> fencing token
        self.valid_until = 0.0
        self._changed = trio.Event()

    def keys(self, name: str) -> list[str]:
        smpp = self.carriers[name]
        n = int(getattr(smpp, "cluster_binds", 1) or 1)
        base = f"{self.cluster.p}bind:{name}:{smpp.system_id}:"
        return [base + str(i) for i in range(n)] + [self.cluster.p + "fence"]

    def holds_any(self) -> bool:
        return bool(self.held) or not self.carriers

    def may_send(self, name: str, now: float) -> bool:
        """``Carriers`` hook: submit on ``name``'s link now (lease held, deadline ahead)?"""
        return now < self.valid_until and name in self.held

    async def watch(self) -> None:
        """Close the links once the local deadline passes without a successful renewal
        (the renewal failed, hangs, or this process was frozen)."""
        while True:
            if self.held and trio.current_time() >= self.valid_until:
                self.expire_check()
            if self.held:
                await trio.sleep_until(self.valid_until)
            else:
                await self._changed.wait()

    async def gate(self, name: str) -> None:
        """``SmppLink.gate``: return once this gateway holds a bind lease for ``name``."""
        while not (name in self.held and trio.current_time() < self.valid_until):
            await self._changed.wait()

    async def tick(self, want: bool = True) -> None:
        started = trio.current_time()
        try:
            got = {}
            for name in self.carriers:
                tok = int(await self.cluster.store.evalsha(
                    "cluster_BIND", self.keys(name), [self.cluster.id, self.lease_ms,
                                                      "1" if want else "0"]))
                if tok:
                    got[name] = tok
        except BaseException:
            self.expire_check()
            raise
        self.valid_until = started + self.lease_ms / 1000 * VALID_FRACTION
        for name in set(self.held) | set(got):
            if self.held.get(name) != got.get(name):
                log.info("cluster bind lease carrier=%s id=%s %s", name, self.cluster.id,
                         "held" if name in got else "lost")
        lost = [n for n in self.held if n not in got]
        self.held = got
        for name in lost:
            self._close(name, "bind lease lost")
        self._changed.set()
        self._changed = trio.Event()

    def expire_check(self) -> None:
        """After a failed renewal: close every link once its lease may have lapsed."""
        if self.held and trio.current_time() >= self.valid_until:
            for name in list(self.held):
                self._close(name, "bind lease not renewed")
            self.held = {}

    def _close(self, name: str, reason: str) -> None:
        link = self.gw.carriers.links.get(name)
        if link is not None:
            log.warning("smpp %s: closing the bind (%s)", name, reason)
            link.drop(reason)
