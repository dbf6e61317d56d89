"""SQLite schema, pragmas and the Message <-> row codec for ``SqliteStore``.

Owns: the DDL (tables, indexes), connection set-up, and how a ``Message`` becomes a row.

Rules:
- Hot columns (used to filter, page and recover) are real columns; every other field of
  ``Message`` goes into one msgpack map (``data``) that stores only non-default values,
  so adding a field to ``Message`` needs no migration, and unknown keys are ignored.
- ``seq`` is the table's rowid (``INTEGER PRIMARY KEY``): appends stay in order and
  ``max(seq)`` is a lookup. ``sid`` is unique.
- The pending and sent indexes are partial; queries must repeat their WHERE text exactly
  (``PENDING_WHERE``, ``SENT_WHERE``) or SQLite will not use them.
- ``due`` (``gateway.store.due``): work owed for the message, written by the same
  statement as the change that causes it through the SQL function ``due_apply`` (on
  writer connections); partial index ``messages_due`` (``DUE_WHERE``) finds them at start.
- Schema changes bump ``SCHEMA_VERSION`` (``PRAGMA user_version``); ``migrate`` upgrades
  an older file in place (version 1 -> 2: ``ALTER TABLE messages ADD COLUMN due``).
"""

from __future__ import annotations

import calendar
import datetime
import sqlite3

import msgpack

from gateway.core.message import Message, field_defaults
from gateway.store import due as D

SCHEMA_VERSION = 2

PENDING_WHERE = "status IN ('accepted', 'scheduled', 'queued', 'sending')"
SENT_WHERE = "status = 'sent'"
DUE_WHERE = "due IS NOT NULL"

DDL = f"""
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY,
  sid TEXT NOT NULL UNIQUE,
  account_sid TEXT NOT NULL,
  from_ TEXT NOT NULL,
  to_ TEXT NOT NULL,
  status TEXT NOT NULL,
  date_created REAL NOT NULL,
  date_sent REAL,
  date_updated REAL NOT NULL,
  data BLOB NOT NULL,
  due TEXT
);
CREATE INDEX IF NOT EXISTS messages_account ON messages(account_sid);
CREATE INDEX IF NOT EXISTS messages_account_to ON messages(account_sid, to_);
CREATE INDEX IF NOT EXISTS messages_account_from ON messages(account_sid, from_);
CREATE INDEX IF NOT EXISTS messages_pending ON messages(seq) WHERE {PENDING_WHERE};
CREATE INDEX IF NOT EXISTS messages_sent ON messages(seq) WHERE {SENT_WHERE};
CREATE INDEX IF NOT EXISTS messages_due ON messages(seq) WHERE {DUE_WHERE};
CREATE TABLE IF NOT EXISTS idempotency (
  account_sid TEXT NOT NULL,
  key TEXT NOT NULL,
  sid TEXT NOT NULL,
  created REAL NOT NULL,
  PRIMARY KEY (account_sid, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created);
CREATE TABLE IF NOT EXISTS dlr_map (
  carrier TEXT NOT NULL,
  carrier_message_id TEXT NOT NULL,
  sid TEXT NOT NULL,
  created REAL NOT NULL,
  PRIMARY KEY (carrier, carrier_message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dlr_map_created ON dlr_map(created);
CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value
) WITHOUT ROWID;
"""

HOT = ("seq", "sid", "account_sid", "from_", "to", "status", "date_created", "date_sent",
       "date_updated", "due")
_HOT_SET = frozenset(HOT)


COLD_DEFAULTS = field_defaults(_HOT_SET)
COLD = tuple(COLD_DEFAULTS)

COLS = ("seq, sid, account_sid, from_, to_, status, date_created, date_sent, date_updated, "
        "data")
SELECT_MSG = f"SELECT {COLS} FROM messages"
SELECT_DUE = f"SELECT {COLS}, due FROM messages WHERE {DUE_WHERE} ORDER BY seq"
INSERT_MSG = (f"INSERT INTO messages ({COLS}, due) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_PLAIN = ("UPDATE messages SET from_ = ?2, status = ?3, date_sent = ?4, "
                "date_updated = ?5, data = ?6 WHERE sid = ?1")
# a write that changes due tokens (?7 removed, ?8 added; '' = none).
# No token is a prefix of another (``gateway.store.due``), so replace() of one ';tok'
# is exact: the common cases stay in SQL; several removals go through due_apply.
UPDATE_MSG = ("UPDATE messages SET from_ = ?2, status = ?3, date_sent = ?4, "
              "date_updated = ?5, data = ?6, due = CASE WHEN instr(substr(?7, 2), ';') = 0 "
              "THEN nullif(replace(coalesce(due, ''), ?7, '') || ?8, '') "
              "ELSE due_apply(due, ?7, ?8) END WHERE sid = ?1")
# one token per row of the executemany
CLEAR_DUE = (f"UPDATE messages SET due = nullif(replace(due, ?2, ''), '') "
             f"WHERE sid = ?1 AND {DUE_WHERE}")

_pack = msgpack.Packer(use_bin_type=True).pack


def _cold_fn():
    """``cold(msg)``: the non-default cold fields as a dict (``COLD`` order), as straight-
    line code generated from ``COLD_DEFAULTS`` (a loop with ``getattr`` cost ~3x more;
    it runs for every create and save)."""
    env: dict[str, object] = {}
    lines = ["def cold(m):", "    d = {}"]
    for i, (name, default) in enumerate(COLD_DEFAULTS.items()):
        env[f"_d{i}"] = default
        lines.append(f"    v = m.{name}")
        lines.append(f"    if v != _d{i}: d[{name!r}] = v")
    lines.append("    return d")
    exec("\n".join(lines), env)  # noqa: S102 - fixed field names of Message
    return env["cold"]


_cold = _cold_fn()


def row_of(msg: Message) -> tuple:
    """The insert row (same order as ``COLS``)."""
    return (msg.seq, msg.sid, msg.account_sid, msg.from_, msg.to, msg.status,
            msg.date_created, msg.date_sent, msg.date_updated, _pack(_cold(msg)))


def update_args(row: tuple, remove: str, add: str) -> tuple[str, tuple]:
    """(statement, parameters) of the update of a ``row_of`` row and its due change:
    ``UPDATE_PLAIN`` (due untouched: no partial-index upkeep) when there is none."""
    if remove or add:
        return UPDATE_MSG, (row[1], row[3], row[5], row[7], row[8], row[9], remove, add)
    return UPDATE_PLAIN, (row[1], row[3], row[5], row[7], row[8], row[9])


def msg_of(row: tuple) -> Message:
    seq, sid, account_sid, from_, to, status, created, sent, updated, data = row
    cold = msgpack.unpackb(data, raw=False)
    if not isinstance(cold, dict):
        cold = {}
    kwargs = {k: v for k, v in cold.items() if k in COLD_DEFAULTS}
    return Message(sid=sid, account_sid=account_sid, from_=from_, to=to, status=status,
                   date_created=created, date_sent=sent, date_updated=updated, seq=seq,
                   **kwargs)


def day_start(day: str) -> float:
    """Epoch seconds of 00:00 UTC on ``day`` (``YYYY-MM-DD``); ValueError if malformed."""
    return float(calendar.timegm(datetime.date.fromisoformat(day).timetuple()))


def connect(path: str, *, writer: bool, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (explicit BEGIN/COMMIT) with our pragmas."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread,
                           timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    if writer:
        conn.create_function("due_apply", 3, D.apply, deterministic=True)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA cache_size = -16384")
    else:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA cache_size = -8192")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"database schema {version} is newer than this gateway ({SCHEMA_VERSION})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
        if cols and "due" not in cols:        # version 1: before the due column
            conn.execute("ALTER TABLE messages ADD COLUMN due TEXT")
        for stmt in DDL.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
