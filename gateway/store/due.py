"""Due tokens: work owed for a message that must survive a crash, stored *with* the
message (SQLite column ``messages.due``, Redis hash ``P due``) so that it becomes durable
in the same write as the change that causes it.

Owns: the stored format, how a write's removals/additions apply, and the buffer of
clears waiting for a write (shared by both backends).

Tokens: a status name = that status callback is not answered yet (``Message.advance``
adds it); ``mo:<key>`` = an MO whose deliver_sm_resp was not known to be sent
(``runtime.inbound``). A stored value is ``";tok;tok"``; nothing due = NULL / absent.
No token is a prefix of another (status names; ``mo:`` + fixed-length hex), so a
backend may remove one token with a plain ``replace(value, ";tok", "")``; a value may
then hold a token twice (harmless: removal removes every copy).

Rules:
- Every message write carries ``(remove, add)`` strings in the stored format; removals
  apply first, an addition already present is not repeated (``apply``).
- ``clear`` is sync and buffers (no write). The next save of that message takes the
  buffered removals into its own write (``for_write``: folded, no extra write); the
  owner of the flush task writes what is left with one batched op (``drain``).
- Backends that coalesce several saves of one message into the last one (SQLite) keep
  the changes of their uncommitted saves (``unsaved``) and merge them into the next save
  of that message; ``committed`` forgets them once their write is done.
"""

from __future__ import annotations

MO_PREFIX = "mo:"


def join(tokens) -> str:
    if not isinstance(tokens, list):
        tokens = list(tokens)
    return ";" + ";".join(tokens) if tokens else ""


def split(value: str | bytes | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, bytes):
        value = value.decode()
    return [t for t in value.split(";") if t]


def apply(old: str | None, remove: str, add: str) -> str | None:
    """The stored value after removing then adding tokens (None when nothing is left)."""
    toks = split(old)
    if remove:
        gone = set(split(remove))
        toks = [t for t in toks if t not in gone]
    for t in split(add):
        if t not in toks:
            toks.append(t)
    return join(toks) or None


def _merge(a: str, b: str) -> str:
    if not a:
        return b
    if not b or a == b:
        return a
    toks = split(a)
    toks += [t for t in split(b) if t not in toks]
    return join(toks)


class DueBuffer:
    __slots__ = ("clears", "unsaved", "coalescing")

    def __init__(self, coalescing: bool) -> None:
        self.clears: dict[str, list[str]] = {}          # sid -> tokens to remove
        self.unsaved: dict[str, list[str]] = {}          # sid -> [remove, add] in flight
        self.coalescing = coalescing

    def __len__(self) -> int:
        return len(self.clears)

    def clear(self, sid: str, token: str) -> None:
        toks = self.clears.get(sid)
        if toks is None:
            self.clears[sid] = [token]
        elif token not in toks:
            toks.append(token)
        pending = self.unsaved.get(sid)
        if pending is not None:
            added = pending[1]
            tok = ";" + token
            if added == tok:            # the common case: the only token added
                pending[1] = ""
            # ";tok" not in the string: certainly not one of its tokens (cheap pre-check)
            elif tok in added and token in split(added):
                pending[1] = join([t for t in split(added) if t != token])

    def for_write(self, sid: str, adds: list[str]) -> list[str]:
        """[remove, add] for a save of ``sid`` issued now; empties ``adds``. Hand the
        same list to ``committed`` when the write is done."""
        toks = self.clears.pop(sid, None)
        remove = join(toks) if toks else ""
        add = join(adds) if adds else ""
        if adds:
            adds.clear()
        change = [remove, add]
        if self.coalescing:
            prev = self.unsaved.get(sid)
            if prev is not None:
                change = [_merge(prev[0], remove), _merge(prev[1], add)]
            if change[0] or change[1]:
                self.unsaved[sid] = change
        return change

    def committed(self, sid: str, change: list[str]) -> None:
        if self.unsaved.get(sid) is change:
            del self.unsaved[sid]

    def restore(self, pairs: list[tuple[str, str]]) -> None:
        """Buffer again what ``drain`` returned (its write failed)."""
        for sid, remove in pairs:
            for token in split(remove):
                self.clear(sid, token)

    def drain(self) -> list[tuple[str, str]]:
        """Every buffered clear as (sid, remove); the buffer is emptied."""
        out = [(sid, join(toks)) for sid, toks in self.clears.items()]
        self.clears = {}
        return out


class BufferedDueClears:
    """The store methods every backend answers from its ``DueBuffer`` (``self._due``):
    ``clear_due_nowait`` only buffers, ``due_backlog`` counts what is not written yet."""

    _due: DueBuffer

    def clear_due_nowait(self, sid: str, token: str) -> None:
        self._due.clear(sid, token)

    @property
    def due_backlog(self) -> int:
        return len(self._due)
