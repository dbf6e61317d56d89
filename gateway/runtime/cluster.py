"""Scale-out: several gateways on one Redis store share sender queues, rates and binds.

Owns: the design below, ``make_cluster``, the hooks the gateway calls (``LocalCluster``:
the single-gateway (SQLite) case, each hook the plain local action) and ``RedisCluster``'s
state, keys and start/stop. Its parts: slot leases, rebalancing and handover in
``cluster_slots``; sender streams (intake, read, claim, ack) and callback dedupe in
``cluster_streams``; rates in ``cluster_rates``; carrier bind leases in ``cluster_binds``.

Design (``RedisCluster``, keys under ``P c:``):
- Binds: each carrier's system_id has ``[carriers.smpp] cluster_binds`` leases (default
  1); a link connects only while its gateway holds one (``cluster_binds``). Only
  gateways holding a bind lease ("drainers") own sender queues, so queued work always
  sits on a gateway that can send it.
- Senders are hashed into ``SLOTS`` slots; slot lease ``lease:<slot>`` =
  ``"<gateway id>:<fencing token>"`` (token from INCR ``fence``), PX ``LEASE_MS``,
  renewed every ``LEASE_MS/3`` by ``TICK``, which also refreshes the member and drainer
  sets and takes free slots up to the fair share ceil(SLOTS / drainers).
- A message enters its sender stream ``q:<from>`` (entry ``sid``, ``n`` segments) at most
  once (marker ``r:<sid>``; not written for queued ones created routed, which never go
  through ``ROUTE``), with the sender's queued-segment counter ``n:<from>``:
  queued and accepted (Messaging Service) messages inside the create script, so before
  the 201; scheduled ones when due (``ROUTE``; the first gateway wins, the others find
  the marker). The counter is the cluster-wide depth the 21611 check uses (the create
  script refuses atomically).
- The slot owner XREADGROUPs its senders' streams, loads each message and queues it on
  its local dispatcher; the entry is XACKed + XDELed (and the counter decremented) when
  the message is ``sent`` or final, by ``ACK``, which refuses unless the lease still
  holds this gateway's token (a stale owner's ack is refused; the entry stays pending).
  One ``ACK`` call carries a scheduling step's acks: fenced entry by entry, then one
  XACK + one XDEL (all ids) and one DECRBY (their segments) per stream.
- Rates: every segment needs credit from Redis token buckets (per sender, per capped
  carrier), see ``cluster_rates``: N gateways never exceed a class rate or ``max_tps``.
- Rebalancing: a gateway above its share drains extra slots (idle ones first, busy ones
  too under constant load): it stops reading them, takes their queued messages out of
  its dispatcher (their entries stay pending), waits until its in-flight ones are acked
  (at most ``DRAIN_S``), then deletes the lease. The next owner XAUTOCLAIMs every
  pending entry of the slot. ``handover(slot)`` does the same on request and marks the
  slot for another gateway (``handoff:<slot>``, taken even above share).
- Death: leases of a dead gateway expire; its slots are taken and their pending entries
  claimed and sent again (at least once); its bind lease moves within ~4 s.
- A gateway none of whose lease renewals succeeded for ``VALID_FRACTION`` of
  ``LEASE_MS`` (failed, hung, or the process froze; measured from the last successful
  renewal's send time) stops draining its slots and closes its binds at that local
  deadline, before another gateway may take them (``cluster_slots``, ``cluster_binds``).
- Status callbacks once per (message, status): ``SET NX cb:<sid>:<status>``.

Guarantees: a 201-acknowledged message is in Redis (message + stream entry) with
``appendfsync always``, and is sent at least once by exactly one sender-queue owner at a
time; duplicates are possible only when a gateway dies or stalls with submits in
flight, or a drain times out. Callbacks: at least once, deduplicated per status.

What Redis replication/failover can lose: replicas are asynchronous. A failover to a
replica loses acknowledged writes not yet replicated: created messages (the 201 was
sent), stream entries, acks (those messages are sent again), lease values (two gateways
may briefly own a slot or a bind: duplicates, rates exceeded for ~one lease time) and
bucket state (one burst extra). Run one primary with AOF on a reliable disk; with
Sentinel, ``min-replicas-to-write`` narrows but does not close the window.
Lua scripts derive keys from their arguments: one Redis primary, not Redis Cluster.

Error handling: a failed tick, read or claim is logged and retried after ``LEASE_MS/3``;
callback dedupe errors send the callback anyway (at least once).
"""

from __future__ import annotations

import secrets

import trio
from coredis.exceptions import StreamDuplicateConsumerGroupError

from gateway.runtime.cluster_binds import BIND, BindLeases
from gateway.runtime.cluster_rates import RATE, ClusterRates
from gateway.runtime.cluster_slots import LEASE_MS, RELEASE, SLOTS, TICK, SlotLeases, slot_of
from gateway.runtime.cluster_streams import ACK, GROUP, SenderStreams

__all__ = ["SLOTS", "LocalCluster", "RedisCluster", "make_cluster", "slot_of"]


def make_cluster(gw):
    """``RedisCluster`` when the store is Redis, else ``LocalCluster``."""
    if getattr(gw.store, "backend", "") == "redis":
        return RedisCluster(gw)
    return LocalCluster(gw)


class LocalCluster:
    """One gateway owns everything; every hook is the plain local action."""

    members = 1
    bind_gate = None            # SmppLink.gate: bind always
    may_send = None             # Carriers: (carrier, now) -> bool; None = always

    def __init__(self, gw) -> None:
        self.gw = gw

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    def should_load(self, msg) -> bool:
        """Place this stored pending message at start (``Gateway._load``)?"""
        return True

    def route(self, msg) -> bool:
        """Queue a stored message on its sender; False when that queue is full."""
        return self.gw.dispatcher.enqueue(msg)

    def on_status(self, msg) -> None:
        """Every status change of a message handled on this gateway."""

    def deliver_callback(self, msg, hook) -> None:
        self.gw.webhooks.enqueue(hook)


class RedisCluster(SlotLeases, SenderStreams, LocalCluster):
    def __init__(self, gw) -> None:
        super().__init__(gw)
        self.store = gw.store
        self.id = secrets.token_hex(6)
        self.p = self.store.prefix + "c:"
        self.held: dict[int, int] = {}                 # slot -> fencing token
        self.draining: dict[int, float] = {}           # slot -> release deadline
        self._handoff: set[int] = set()                # draining on request (handover)
        self.entry_of: dict[str, tuple[int, str, bytes, int]] = {}  # sid -> slot,key,id,n
        self.members = 1
        self.drainers = 0
        self.claimed = 0
        self.handovers = 0
        self._changed = trio.Event()
        self._valid_until = 0.0                        # slot leases: local deadline
        self._held_changed = trio.Event()
        #: False simulates a crash in tests: leases are left to expire, not released
        self.release_on_stop = True
        self._created_routed: set[str] = set()
        self._acks: list[tuple] = []                   # queued for the next ACK call
        self._ack_wake = trio.Event()
        self._acks_done = trio.Event()
        self._acks_done.set()
        self.ack_calls = 0
        self.binds = BindLeases(self, LEASE_MS)
        self.bind_gate = self.binds.gate
        self.may_send = self.binds.may_send
        self.rates = ClusterRates(self)
        self.store.on_create = self._route_on_create
        self.store.on_create_undo = self._created_routed.discard

    # -- keys -----------------------------------------------------------------------------
    def stream(self, number: str) -> str:
        return f"{self.p}q:{number}"

    def depth_key(self, number: str) -> str:
        return f"{self.p}n:{number}"

    def lease(self, slot: int) -> str:
        return f"{self.p}lease:{slot}"

    def senders(self) -> list[str]:
        return list(self.gw.dispatcher.capacity)

    def senders_of(self, slot: int) -> list[str]:
        return [n for n in self.senders() if slot_of(n) == slot]

    def serving(self, number: str) -> bool:
        """This gateway reads and sends ``number``'s queue now."""
        slot = slot_of(number)
        return slot in self.held and slot not in self.draining \
            and trio.current_time() < self._valid_until

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        c = self.store.client
        scripts = {"TICK": TICK, "RELEASE": RELEASE, "ACK": ACK, "BIND": BIND, "RATE": RATE}
        for name, source in scripts.items():
            await self.store.register_script("cluster_" + name, source)
        for number in self.senders():
            try:
                await c.xgroup_create(self.stream(number), GROUP, "0", mkstream=True)
            except StreamDuplicateConsumerGroupError:
                pass                                 # another gateway created it
        self.rates.install()
        await self.binds.tick()                      # links built next bind at once
        await self._tick(acquire=False)              # announce ourselves, take nothing yet
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self.binds.watch)
                nursery.start_soon(self.watch_slots)
                nursery.start_soon(self._read_loop)
                nursery.start_soon(self._ack_loop)
                nursery.start_soon(self.rates.run)
                task_status.started()
        finally:
            if self.release_on_stop:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await self._release_all()
