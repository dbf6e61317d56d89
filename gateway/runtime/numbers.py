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
"""

from __future__ import annotations

import time
from dataclasses import fields, replace

from gateway.api.context import NUMBER_UPDATE_FIELDS, NumberView, number_sid
from gateway.core.numbers import guess_sender_class

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


class NumberRegistry:
    NS = "number"

    def __init__(self, settings, store):
        self.store = store
        started = time.time()
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
