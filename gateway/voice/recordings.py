"""Call recordings (``<Record>``): WAV files under the state directory plus their
metadata in the store.

Owns: ``Recording`` (Twilio's Recording resource fields we keep), ``RecordingStore``
(save/get/list/read/delete), the file layout ``{state_dir}/recordings/{RE…}.wav`` where
``state_dir`` is the directory of ``[store] path`` (e.g. ``var/recordings/RE….wav``),
the kv namespace ``recording`` (value ``Recording.to_dict()``), and the
``RecordingUrl`` form ``{public_url}/2010-04-01/Accounts/{AC}/Recordings/{RE}`` (as
Twilio: no extension; ``.wav`` and the bare URL serve the WAV, ``.json`` the metadata).

Rules: the WAV is written to a temporary name and renamed (a reader never sees half a
file); file I/O runs in a worker thread. Recordings are never expired here (deleting is
the API's ``DELETE``). Sids are checked before they become file names.

Error handling: ``save`` raises ``OSError``/``StoreError`` to the caller (the leg logs
it and reports an empty recording); ``read`` returns None for a missing file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from gateway.core import ids

NS = "recording"


@dataclass(slots=True)
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    duration: int                 # whole seconds
    date_created: float
    size: int                     # bytes of the WAV file
    channels: int = 1
    source: str = "RecordVerb"
    status: str = "completed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Recording:
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})


def state_dir(store_path: str) -> Path:
    """The directory holding the store file (the gateway's state directory)."""
    return Path(store_path).expanduser().resolve().parent


class RecordingStore:
    def __init__(self, store, directory: Path | str, public_url: str, now) -> None:
        self.store = store
        self.dir = Path(directory)
        self.public_url = public_url.rstrip("/")
        self.now = now

    def path(self, sid: str) -> Path:
        if not ids.is_sid(sid, "RE"):
            raise ValueError(f"not a recording sid: {sid!r}")
        return self.dir / f"{sid}.wav"

    def url(self, rec: Recording) -> str:
        return f"{self.public_url}/2010-04-01/Accounts/{rec.account_sid}/Recordings/{rec.sid}"

    async def save(self, account_sid: str, call_sid: str, wav: bytes,
                   duration: int) -> Recording:
        sid = ids.new_sid("RE")
        final = self.path(sid)

        def write() -> None:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = final.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(wav)
            os.replace(tmp, final)

        await trio.to_thread.run_sync(write)
        rec = Recording(sid, account_sid, call_sid, int(duration), self.now(), len(wav))
        await self.store.kv_put(NS, sid, rec.to_dict())
        return rec

    async def get(self, sid: str) -> Recording | None:
        if not ids.is_sid(sid, "RE"):
            return None
        d = await self.store.kv_get(NS, sid)
        return Recording.from_dict(d) if d else None

    async def list(self, account_sid: str, call_sid: str | None = None) -> list[Recording]:
        """The account's recordings (of one call when ``call_sid``), newest first."""
        rows = [Recording.from_dict(d) for _, d in await self.store.kv_items(NS)]
        rows = [r for r in rows if r.account_sid == account_sid
                and (call_sid is None or r.call_sid == call_sid)]
        rows.sort(key=lambda r: (r.date_created, r.sid), reverse=True)
        return rows

    async def read(self, rec: Recording) -> bytes | None:
        path = self.path(rec.sid)

        def load() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None
        return await trio.to_thread.run_sync(load)

    async def delete(self, rec: Recording) -> None:
        path = self.path(rec.sid)
        await self.store.kv_delete(NS, rec.sid)
        await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
