"""Single-flight leases in the SQLite file: one row per key being computed.

A lease is a row ``(key, token, deadline, failed)`` in ``gencache_leases`` (created on
first use; files without it are still read by every gencache 0.2): the process that
holds it is calling the provider, others poll for the entry. ``deadline`` is wall-clock
time, so every process sharing the file agrees on when a crashed owner's lease lapses.
A failed owner leaves ``failed = 1`` for a few seconds: its waiters then pay themselves,
together, instead of queueing for a new lease one after another.
"""

from __future__ import annotations

import sqlite3
import time

from gencache._flight import HeldLeases
from gencache._protocol import Key
from gencache.sqlite._conn import Connections, immediate

__all__ = ["SQLiteLeases"]

_FAILED_FOR = 5.0  # seconds a failure mark stays: longer than any waiter's poll interval

_CREATE = (
    "CREATE TABLE IF NOT EXISTS gencache_leases (key TEXT PRIMARY KEY, token TEXT NOT NULL,"
    " deadline REAL NOT NULL, failed INTEGER NOT NULL DEFAULT 0)"
)
_EXPIRE = "DELETE FROM gencache_leases WHERE key = ? AND deadline <= ?"
_TAKE = "INSERT OR IGNORE INTO gencache_leases (key, token, deadline) VALUES (?, ?, ?)"
_READ = "SELECT token, failed, deadline FROM gencache_leases WHERE key = ?"
_DROP = "DELETE FROM gencache_leases WHERE key = ? AND token = ?"
_FAIL = "UPDATE gencache_leases SET failed = 1, deadline = ? WHERE key = ? AND token = ?"


class SQLiteLeases:
    """The :class:`~gencache._flight.Leases` of one SQLite file. Thread- and process-safe.

    Each call is one short transaction (``lease``/``release``) or one read; ``release``
    is none when the entry's write dropped the lease in its own transaction (:meth:`drop`).
    """

    def __init__(self, conns: Connections) -> None:
        self._conns = conns
        self._ready = False
        self.held = HeldLeases()  # the owner's write drops its lease (drop)

    def drop(self, db: sqlite3.Connection, key: Key, token: str) -> None:
        """Delete our lease of ``key`` inside the caller's transaction."""
        db.execute(_DROP, (key.digest, token))

    def _table(self, db: sqlite3.Connection) -> None:
        if not self._ready:
            db.execute(_CREATE)
            self._ready = True

    def lease(self, key: Key, token: str, seconds: float) -> str | None:
        """Take the lease of ``key``; ``None`` if taken, else ``"busy"`` or ``"failed"``."""
        return self._conns.run(self._take, key.digest, token, seconds, write=True)

    def _take(self, db: sqlite3.Connection, digest: str, token: str, seconds: float) -> str | None:
        now = time.time()
        with immediate(db):
            self._table(db)
            db.execute(_EXPIRE, (digest, now))
            db.execute(_TAKE, (digest, token, now + seconds))
            row = db.execute(_READ, (digest,)).fetchone()
        if row is None or row[0] == token:
            self.held.hold(digest, token)
            return None
        return "failed" if row[1] else "busy"

    def release(self, key: Key, token: str, *, failed: bool) -> None:
        """End our lease; a failure leaves a short mark that releases the waiters.

        No query when the entry's write dropped it already.
        """
        if self.held.released(key.digest, token, failed=failed):
            return
        self._conns.run(self._release, key.digest, token, failed, write=True)

    def _release(self, db: sqlite3.Connection, digest: str, token: str, failed: bool) -> None:
        self._table(db)
        if failed:
            db.execute(_FAIL, (time.time() + _FAILED_FOR, digest, token))
        else:
            db.execute(_DROP, (digest, token))

    def lease_state(self, key: Key) -> str | None:
        """``"busy"``, ``"failed"`` or ``None`` (no live lease)."""
        try:
            row = self._conns.run(lambda db: db.execute(_READ, (key.digest,)).fetchone())
        except Exception:  # no table yet: no lease
            return None
        if row is None or row[2] <= time.time():
            return None
        return "failed" if row[1] else "busy"
