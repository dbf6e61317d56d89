"""Phone numbers as the API and the pipeline see them: the config's ``[[numbers]]`` plus
webhook URLs changed through the IncomingPhoneNumbers API.

Rules:
- An API update persists in the store (kv namespace ``number``) together with the
  config values it replaced; it wins over the config until the config's value for that
  number changes (then the config wins again and the stale override is dropped).
- The ``PN`` sid is stable: derived from account and number (same on every gateway).
- Config reload (``reconfigure``): the same rule as at start, applied to the new
  config in memory at once; the stale overrides it drops are returned for the caller
  to delete from the store. A number no longer in the config disappears from the API
  (its stored override stays, as at start, and comes back if the number does).
- Alphanumeric sender IDs (``[[alpha_senders]]``) live beside the numbers, looked up by
  ``(account, sender_id)`` case-insensitively (the configured spelling is what is sent);
  they are not IncomingPhoneNumbers and have no API overrides. Their queue key is
  ``core.numbers.sender_key`` (``"AC…|ID"``); ``reconfigure_alpha`` applies a reload.
- A deliver_sm addressed to a sender ID (no handset can reply to one; a carrier bug)
  is acknowledged and dropped without a webhook, logged once per sender ID
  (``alpha_mo``; the sender ID may belong to several accounts, so it has no owner).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields, replace

from gateway.api.context import NUMBER_UPDATE_FIELDS, NumberView, number_sid
from gateway.core.ids import stable_sid
from gateway.core.numbers import ALPHANUMERIC, guess_sender_class, sender_key

log = logging.getLogger("gateway.numbers")
URL_FIELDS = frozenset(NUMBER_UPDATE_FIELDS.values())


def _from_config(n, started: float) -> NumberView:
    return NumberView(
        account_sid=n.account, phone_number=n.number,
        type=n.type or guess_sender_class(n.number),
        friendly_name=getattr(n, "friendly_name", "") or n.number,
        sms_url=n.sms_url or "", sms_method=(n.sms_method or "POST").upper(),
        sms_fallback_url=n.sms_fallback_url or "", status_callback=n.status_callback or "",
        voice_url=n.voice_url or "", voice_method=(n.voice_method or "POST").upper(),
        voice_fallback_url=n.voice_fallback_url or "",
        date_created=started, date_updated=started, sid=number_sid(n.account, n.number),
    )


@dataclass(frozen=True, slots=True)
class AlphaSender:
    """A configured alphanumeric sender ID. ``view`` is what the Messages API uses as the
    sender (``type`` alphanumeric); ``key`` its sender queue."""
    view: NumberView
    prefixes: tuple[str, ...] = ()
    date_created: float = 0.0

    @property
    def sender_id(self) -> str:
        return self.view.phone_number

    @property
    def key(self) -> str:
        return sender_key(self.view.account_sid, self.view.phone_number)

    @property
    def sid(self) -> str:
        """Stable ``AI`` sid (Messaging v1 AlphaSenders)."""
        return stable_sid("AI", self.view.account_sid, self.view.phone_number)

    def reaches(self, to: str) -> bool:
        """May send to ``to``: never +1 (US/CA), else any or one of ``prefixes``."""
        if to.startswith("+1") or not to.startswith("+"):
            return False
        return not self.prefixes or to.startswith(self.prefixes)


def _alphas(settings, started: float) -> dict[tuple[str, str], AlphaSender]:
    out = {}
    for a in getattr(settings, "alpha_senders", ()):
        view = NumberView(account_sid=a.account, phone_number=a.sender_id, type=ALPHANUMERIC,
                          friendly_name=a.friendly_name or a.sender_id,
                          status_callback=a.status_callback or "",
                          date_created=started, date_updated=started)
        out[(a.account, a.sender_id.upper())] = AlphaSender(view, tuple(a.prefixes), started)
    return out


def _bare(a: AlphaSender) -> tuple:
    return replace(a.view, date_created=0.0, date_updated=0.0), a.prefixes


class NumberRegistry:
    NS = "number"

    def __init__(self, settings, store):
        self.store = store
        started = time.time()
        self.alphas: dict[tuple[str, str], AlphaSender] = _alphas(settings, started)
        self._alpha_mo_logged: set[str] = set()
        self.base: dict[str, NumberView] = {n.number: _from_config(n, started) for n in settings.numbers}
        self.views: dict[str, NumberView] = dict(self.base)
        self.overrides: dict[str, dict] = {}    # number -> stored API override

    async def load(self) -> None:
        for number, stored in await self.store.kv_items(self.NS):
            self.overrides[number] = stored
        for number in self._apply_overrides():
            await self.store.kv_delete(self.NS, number)   # config changed: it wins

    def _apply_overrides(self) -> list[str]:
        """Views = base + still valid overrides; returns the numbers whose override is
        stale (the config's value of an overridden field changed), forgotten here."""
        stale = []
        for number, stored in list(self.overrides.items()):
            base = self.base.get(number)
            if base is None:
                continue
            was = stored.get("base", {})
            if any(was.get(k) != getattr(base, k) for k in stored.get("fields", {})):
                del self.overrides[number]
                stale.append(number)
                continue
            self.views[number] = replace(
                base, date_updated=stored.get("date_updated", base.date_updated),
                **stored.get("fields", {}),
            )
        return stale

    def reconfigure(self, settings) -> tuple[list[str], list[str], list[str]]:
        """Config reload: ``(added, removed, stale)`` numbers; stale overrides are to be
        deleted from the store by the caller. Synchronous: one step for the event loop."""
        now = time.time()
        old = self.base
        base = {}
        for n in settings.numbers:
            view = _from_config(n, now)
            prev = old.get(n.number)
            if prev is not None:
                same = replace(view, date_created=prev.date_created,
                               date_updated=prev.date_updated)
                view = prev if same == prev else replace(same, date_updated=now)
            base[n.number] = view
        added = [n for n in base if n not in old]
        removed = [n for n in old if n not in base]
        self.base = base
        self.views = dict(base)
        return added, removed, self._apply_overrides()

    def reconfigure_alpha(self, settings) -> tuple[list[AlphaSender], list[AlphaSender]]:
        """Config reload of ``[[alpha_senders]]``: ``(added, removed)``; an unchanged
        sender keeps its object (and date)."""
        new = _alphas(settings, time.time())
        for k, a in new.items():
            prev = self.alphas.get(k)
            if prev is not None and _bare(prev) == _bare(a):
                new[k] = prev
        added = [a for k, a in new.items() if k not in self.alphas]
        removed = [a for k, a in self.alphas.items() if k not in new]
        self.alphas = new
        return added, removed

    def alpha_mo(self, dst: str, carrier: str) -> bool:
        """True when ``dst`` is a configured sender ID (the MO is to be acked and
        dropped); logs the first one per sender ID."""
        up = dst.upper()
        if not any(k[1] == up for k in self.alphas):
            return False
        if up not in self._alpha_mo_logged:
            self._alpha_mo_logged.add(up)
            log.warning("MO addressed to alphanumeric sender %s carrier=%s: acked and "
                        "dropped (replies to a sender ID cannot be delivered; logged once)",
                        dst, carrier)
        return True

    def alpha(self, account: str, sender_id: str) -> AlphaSender | None:
        return self.alphas.get((account, sender_id.upper()))

    def alpha_senders(self, account: str | None = None) -> list[AlphaSender]:
        return [a for a in self.alphas.values() if account is None or a.view.account_sid == account]

    def get(self, number: str) -> NumberView | None:
        return self.views.get(number)

    def for_account(self, account: str) -> list[NumberView]:
        return [v for v in self.views.values() if v.account_sid == account]

    async def update(self, number: str, changes: dict) -> NumberView:
        base = self.base[number]
        changes = {k: v for k, v in changes.items() if k in URL_FIELDS}
        for k in ("sms_method", "voice_method", "sms_fallback_method",
                  "voice_fallback_method", "status_callback_method"):
            if k in changes:
                changes[k] = changes[k].upper()
        now = time.time()
        view = replace(self.views[number], date_updated=now, **changes)
        overridden = {f.name: getattr(view, f.name) for f in fields(NumberView)
                      if f.name in URL_FIELDS and getattr(view, f.name) != getattr(base, f.name)}
        record = {"fields": overridden, "base": {k: getattr(base, k) for k in overridden},
                  "date_updated": now}
        await self.store.kv_put(self.NS, number, record)
        self.overrides[number] = record
        if self.base.get(number) is not base:    # a reload came in meanwhile: its rule
            self._apply_overrides()
            return self.views.get(number, view)
        self.views[number] = view
        return view
