"""SQLite storage of the sandbox gateway: merchants, payments, refunds, events and
idempotency records.

One connection guarded by a lock, every change in an ``IMMEDIATE`` transaction: the
sandbox is small, and exactly-once answers under parallel requests (idempotency keys,
double clicks on Pay) matter more here than throughput."""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS merchants (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,          -- sha256 of the API key; the key itself is not stored
    webhook_secret TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    reference TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    notify_url TEXT NOT NULL,
    return_url TEXT NOT NULL DEFAULT '',
    pay_url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    amount_refunded INTEGER NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    created INTEGER NOT NULL,
    succeeded_at INTEGER,
    failed_at INTEGER
);
CREATE INDEX IF NOT EXISTS payments_by_merchant_success ON payments(merchant_id, succeeded_at);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments(id),
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_by_merchant_created ON refunds(merchant_id, created);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    type TEXT NOT NULL,
    body TEXT NOT NULL,                     -- the exact JSON sent, so replays are byte-identical
    notify_url TEXT NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at INTEGER,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS idempotency (
    merchant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
"""


#: how many merchants' rows a store keeps in memory, by API key
MERCHANTS_REMEMBERED = 1024


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class Store:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.RLock()
        self._merchants: dict[str, sqlite3.Row] = {}
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE) in transaction()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        # WAL + NORMAL: no fsync per payment (a sandbox keeps no real money; still crash-safe)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def now(self) -> int:
        return int(self.clock())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def read_one(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        rows = self.read(sql, params)
        return rows[0] if rows else None

    # --- merchants ------------------------------------------------------------------
    def merchant_by_key(self, api_key: str) -> sqlite3.Row | None:
        # merchants are never changed or removed: one found is remembered (a bounded number)
        merchant = self._merchants.get(api_key)
        if merchant is None:
            merchant = self.read_one("SELECT * FROM merchants WHERE key_hash = ?", (key_hash(api_key),))
            if merchant is not None and len(self._merchants) < MERCHANTS_REMEMBERED:
                self._merchants[api_key] = merchant
        return merchant

    def merchant_create(self, api_key: str, webhook_secret: str) -> sqlite3.Row:
        with self.transaction() as db:
            # INSERT OR IGNORE: two first requests with a new key race to register it
            db.execute("INSERT OR IGNORE INTO merchants (id, key_hash, webhook_secret, created) VALUES (?, ?, ?, ?)",
                       (new_id("acct"), key_hash(api_key), webhook_secret, self.now()))
        return self.merchant_by_key(api_key)

    def merchant(self, merchant_id: str) -> sqlite3.Row | None:
        return self.read_one("SELECT * FROM merchants WHERE id = ?", (merchant_id,))

    # --- idempotency (call inside transaction()) --------------------------------------
    @staticmethod
    def idempotent_answer(db, merchant_id: str, key: str) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM idempotency WHERE merchant_id = ? AND key = ?",
                          (merchant_id, key)).fetchone()

    def idempotent_remember(self, db, merchant_id: str, key: str, fingerprint: str, status: int, body: str) -> None:
        db.execute("INSERT INTO idempotency (merchant_id, key, fingerprint, status, body, created) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (merchant_id, key, fingerprint, status, body, self.now()))

    # --- payments, refunds, events ------------------------------------------------------
    def payment(self, payment_id: str, merchant_id: str | None = None) -> sqlite3.Row | None:
        if merchant_id is None:
            return self.read_one("SELECT * FROM payments WHERE id = ?", (payment_id,))
        return self.read_one("SELECT * FROM payments WHERE id = ? AND merchant_id = ?", (payment_id, merchant_id))

    def event(self, event_id: str) -> sqlite3.Row | None:
        return self.read_one("SELECT * FROM events WHERE id = ?", (event_id,))

    def event_add(self, db, *, event_id: str, merchant_id: str, type: str, body: str, notify_url: str) -> None:
        db.execute("INSERT INTO events (id, merchant_id, type, body, notify_url, created) VALUES (?, ?, ?, ?, ?, ?)",
                   (event_id, merchant_id, type, body, notify_url, self.now()))

    def event_attempted(self, event_id: str, *, delivered: bool, error: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE events SET attempts = attempts + 1, last_error = ?, "
                       "delivered_at = CASE WHEN ? THEN COALESCE(delivered_at, ?) ELSE delivered_at END "
                       "WHERE id = ?", (error[:500], delivered, self.now(), event_id))

    def settlement(self, merchant_id: str, start: int, end: int) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        payments = self.read("SELECT * FROM payments WHERE merchant_id = ? AND succeeded_at >= ? AND succeeded_at < ? "
                             "ORDER BY succeeded_at, id", (merchant_id, start, end))
        refunds = self.read("SELECT refunds.*, payments.reference AS reference FROM refunds "
                            "JOIN payments ON payments.id = refunds.payment_id "
                            "WHERE refunds.merchant_id = ? AND refunds.status = 'succeeded' "
                            "AND refunds.created >= ? AND refunds.created < ? ORDER BY refunds.created, refunds.id",
                            (merchant_id, start, end))
        return payments, refunds


def row_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
