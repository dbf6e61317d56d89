"""The write ops of ``SqliteStore``: functions run on the writer thread (or the writer
process, ``sqlite_proc``) with the writer connection, inside the group-commit
transaction of ``sqlite_writer``.

Owns: the SQL each store write executes (insert/create with idempotency key, save with
due tokens, delete, DLR map, kv, ping) and the periodic sweep of expired rows.

Rules: an op never commits (the writer does, once per batch); each is plain module-level
code so the process writer can name it; nothing here touches trio.
"""

from __future__ import annotations

import sqlite3

from gateway.store import due as D
from gateway.store import sqlite_schema as S
from gateway.store.base import DLR_TTL

IDEMPOTENCY_TTL = 24 * 3600.0
SWEEP_LIMIT = 5000


def w_insert(conn: sqlite3.Connection, row: tuple, due: str | None = None) -> None:
    conn.execute(S.INSERT_MSG, row + (due,))


def w_create_idem(conn: sqlite3.Connection, row: tuple, key: str, now: float,
                   due: str | None = None):
    """Insert unless (account, key) already names a live message; return that message."""
    account = row[2]
    hit = conn.execute("SELECT sid FROM idempotency WHERE account_sid = ? AND key = ?",
                       (account, key)).fetchone()
    if hit is not None:
        old = conn.execute(S.SELECT_MSG + " WHERE sid = ?", (hit[0],)).fetchone()
        if old is not None:
            return S.msg_of(old)
    conn.execute(S.INSERT_MSG, row + (due,))
    conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                 (account, key, row[1], now))
    return None


def w_save(conn: sqlite3.Connection, row: tuple, remove: str = "", add: str = "") -> None:
    if conn.execute(*S.update_args(row, remove, add)).rowcount == 0:
        conn.execute(S.INSERT_MSG, row + (D.apply(None, "", add),))


def w_clear_due(conn: sqlite3.Connection, pairs: list) -> None:
    conn.executemany(S.CLEAR_DUE, [(sid, ";" + tok) for sid, remove in pairs
                                   for tok in D.split(remove)])


def w_delete(conn: sqlite3.Connection, sid: str) -> bool:
    gone = conn.execute("DELETE FROM messages WHERE sid = ?", (sid,)).rowcount > 0
    if gone:
        conn.execute("DELETE FROM idempotency WHERE sid = ?", (sid,))
    return gone


def w_map(conn: sqlite3.Connection, carrier: str, cmid: str, sid: str, now: float) -> None:
    conn.execute("INSERT OR REPLACE INTO dlr_map VALUES (?, ?, ?, ?)", (carrier, cmid, sid, now))


def w_kv_put(conn: sqlite3.Connection, ns: str, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))


def w_kv_delete(conn: sqlite3.Connection, ns: str, key: str) -> None:
    conn.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))


def w_ping(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('ping', ?)", (now,))


def w_sweep(conn: sqlite3.Connection, now: float) -> int:
    n = conn.execute(
        "DELETE FROM dlr_map WHERE (carrier, carrier_message_id) IN (SELECT carrier, "
        "carrier_message_id FROM dlr_map WHERE created < ? LIMIT ?)",
        (now - DLR_TTL, SWEEP_LIMIT)).rowcount
    n += conn.execute(
        "DELETE FROM idempotency WHERE (account_sid, key) IN (SELECT account_sid, key "
        "FROM idempotency WHERE created < ? LIMIT ?)",
        (now - IDEMPOTENCY_TTL, SWEEP_LIMIT)).rowcount
    return n
