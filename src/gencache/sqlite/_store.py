"""``SQLiteStore``: the SQLite cache's raw I/O, the :class:`~gencache._protocol.Store` of
:class:`gencache.SQLiteCache`.

A read is one indexed ``SELECT`` on this thread's connection. Whatever a read writes on
the side (removing an expired or damaged row, LRU recency; the template's deletion of a
row it refused goes through :meth:`SQLiteStore.delete`) is tried once without waiting
for another connection's write lock, and otherwise left to a later call. Rows whose
columns have unusual types (damaged, or written by hand) are handed to the template so
that the codec refuses them; they never raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from gencache._log import RateLimitedLog
from gencache._protocol import Entry, Key, Record
from gencache._ttl import Timer
from gencache.errors import BackendError
from gencache.sqlite import _schema as sql
from gencache.sqlite._conn import BusyError, Connections, immediate, query, row_count
from gencache.sqlite._lease import SQLiteLeases

__all__ = ["SQLiteStore"]

_log = logging.getLogger(__name__)

_PURGE_PER_WRITE = 16  # expired rows removed per write: no single call pays for a mass expiry
_PAGE = 256  # rows per query in entries()
_MAX_TOUCHED, _TOUCH_DELAY = 256, 1.0  # pending LRU hits are written at this many, or age


class SQLiteStore:
    """Rows of one SQLite file: reads never wait for writers, writes are transactions.

    Thread- and process-safe (see :class:`~gencache.sqlite._conn.Connections`). Under a
    policy whose hits move rows (LRU) a hit is noted in memory and written, in order, with
    the next write, at :meth:`flush`, or by a hit once 256 are pending or the oldest is a
    second old. A failed recency write never changes a hit's answer.
    """

    self_describing = False  # prompt, llm_string and times live in columns

    def __init__(
        self,
        conns: Connections,
        *,
        order: sql.OrderSQL,
        maxsize: int | None,
        timer: Timer,
        bounded_ttl: bool,
        leases: SQLiteLeases | None = None,
    ) -> None:
        self._conns = conns
        self._leases = leases  # a lease this process holds is dropped by the entry's write
        self._order = order
        # Whether a hit moves its row (LRU) and may be written: one test on the hit path.
        self._touches = order.touch is not None and not conns.readonly
        self._maxsize = maxsize
        self._timer = timer
        # Whether a write may have to purge expired rows (a cache ttl, or per-call ttls).
        self._ttl_rows = bounded_ttl
        self.evicted = self.expired = 0  # changed only under the file's write lock
        self._touched: dict[str, None] = {}  # LRU hits not yet written, oldest first
        self._touch_due = 0.0
        self._touch_lock = threading.Lock()
        self._log = RateLimitedLog(_log)

    # -- reads ------------------------------------------------------------------------------

    def read(self, key: Key) -> Record | None:
        """The live row under ``key``: one indexed read.

        An expired row is a miss and stays until a write's purge, ``len()`` or ``gencache
        prune`` removes it (so that ``explain()`` can name it). Removing a damaged row is
        housekeeping: it never waits for another writer and never turns the miss into an
        error.
        """
        digest = key.digest
        rows = self._conns.fetch(sql.GET, (digest,))
        if not rows:
            return None
        payload, expires, created = rows[0]
        if expires is not None:
            if not isinstance(expires, (int, float)):  # a damaged row: text or a blob
                self._log.warning(
                    "damaged",
                    "gencache: dropping damaged entry %s: expires_at is %s",
                    digest[:16],
                    type(expires).__name__,
                )
                self._housekeep(_delete_exact, digest, expires)
                return None
            if self._timer() >= expires:
                # Left for a write's purge (which counts it): until then explain(), from any
                # process, can say when it expired.
                return None
        if type(payload) is not bytes or type(created) is not float:  # REAL: always float
            return self._odd(digest, payload, expires, created)
        if self._touches:
            self._note_hit(digest)
        return Record(payload, created, expires, version=payload)

    def _odd(self, digest: str, payload: object, expires: Any, created: object) -> Record:
        """A row whose columns have unusual types (written by hand, or damaged)."""
        if isinstance(payload, bytes) and isinstance(created, (int, float)):
            if self._touches:
                self._note_hit(digest)
            return Record(payload, float(created), expires, version=payload)
        # The codec refuses a payload that is not a document naming this key; a damaged
        # created_at alone keeps the row's expiry, and fails any max_age.
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else b""
        if isinstance(payload, bytes):
            data = payload
        return Record(data, 0.0, expires, version=payload)

    def peek(self, key: Key) -> Record | None:
        """The row under ``key``, expired or not: one read, no housekeeping, no recency."""
        rows = self._conns.fetch(sql.GET, (key.digest,))
        if not rows:
            return None
        payload, expires, created = rows[0]
        if not isinstance(payload, bytes) or not isinstance(created, (int, float)):
            return Record(b"", 0.0, None)
        return Record(
            payload, float(created), expires if isinstance(expires, (int, float)) else None
        )

    def _housekeep(self, op: Any, *args: Any) -> None:
        with contextlib.suppress(BackendError):
            self._conns.run(op, *args, write=True, wait=False)

    def _note_hit(self, digest: str) -> None:
        now = time.monotonic()
        with self._touch_lock:
            if not self._touched:
                self._touch_due = now + _TOUCH_DELAY
            self._touched.pop(digest, None)
            self._touched[digest] = None
            due = len(self._touched) >= _MAX_TOUCHED or now >= self._touch_due
        if due:
            try:
                self._conns.run(self._flush_touches, write=True, wait=False)
            except BackendError as exc:  # still pending, or lost: recency only, never the hit
                if not isinstance(exc, BusyError):
                    self._log.warning("touch", "gencache: could not record LRU hits: %s", exc)

    def _flush_touches(self, db: sqlite3.Connection) -> None:
        with immediate(db):
            self._write_touches(db)

    def _write_touches(self, db: sqlite3.Connection) -> None:
        """Move the entries hit since the last write to the back, in hit order."""
        if self._touched and self._order.touch is not None:
            with self._touch_lock:
                keys = [(key,) for key in self._touched]
                self._touched.clear()
            db.executemany(self._order.touch, keys)  # lost if the transaction fails

    def flush(self) -> None:
        """Write pending LRU hits now (a failure is logged, never raised)."""
        if self._touched:
            try:
                self._conns.run(self._flush_touches, write=True)
            except BackendError as exc:
                self._log.warning("touch", "gencache: could not record LRU hits: %s", exc)

    def _remove_expired(
        self, db: sqlite3.Connection, statement: str, params: tuple[Any, ...]
    ) -> None:
        self.expired += db.execute(statement, params).rowcount

    # -- writes -----------------------------------------------------------------------------

    def write(self, key: Key, payload: bytes, created_at: float, expires_at: float | None) -> None:
        """Upsert one row; bounded or with expiring rows, in one transaction that also
        purges up to 16 expired rows and culls in policy order."""
        row = (
            key.digest,
            expires_at,
            created_at,
            _utf8(key.prompt),
            _utf8(key.llm_string),
            payload,
            key.scope,
        )
        leases = self._leases
        token = None if leases is None else leases.held.take(key.digest)
        try:
            if (
                token is None
                and expires_at is None
                and not self._ttl_rows
                and self._maxsize is None
                and not self._touched
            ):
                self._conns.run(query, self._order.upsert, row, write=True)  # one statement
            else:
                if expires_at is not None:
                    self._ttl_rows = True  # from now on, writes purge expired rows
                release = None if token is None else (key, token)
                self._conns.run(self._write_in_transaction, row, self._timer(), release, write=True)
        except BaseException:
            if token is not None and leases is not None:
                leases.held.give_back(key.digest, token)
            raise

    def _write_in_transaction(
        self,
        db: sqlite3.Connection,
        row: tuple[Any, ...],
        now: float,
        release: tuple[Key, str] | None = None,
    ) -> None:
        """The write's transaction; it also drops this process's lease of the key, if any."""
        key, maxsize = row[0], self._maxsize
        expired = evicted = 0
        with immediate(db):
            if release is not None and self._leases is not None:
                self._leases.drop(db, *release)
            self._write_touches(db)
            if self._ttl_rows:
                expired += db.execute(sql.PURGE, (now, _PURGE_PER_WRITE)).rowcount
            found = db.execute(sql.EXPIRY, (key,)).fetchone()
            # A damaged (non-numeric) expires_at is not compared: the upsert rewrites it.
            if found is not None and isinstance(found[0], (int, float)) and now >= found[0]:
                expired += db.execute(sql.DELETE_EXPIRED, (key, now)).rowcount  # not "replaced"
                found = None
            if found is None and maxsize is not None:
                excess = row_count(db, repair=True) - maxsize + 1
                if excess > 0:  # drop expired rows before evicting live ones
                    expired += (dropped := db.execute(sql.PURGE, (now, excess)).rowcount)
                    if excess > dropped:
                        evicted += db.execute(self._order.evict, (excess - dropped,)).rowcount
            db.execute(self._order.upsert, row)
        self.expired += expired  # only once committed
        self.evicted += evicted

    def delete(self, key: Key, record: Record) -> None:
        """Delete the row if it still holds ``record``; never waits for another writer."""
        self._conns.run(_delete_exact, key.digest, record.version, write=True, wait=False)

    def clear(self, scope: str | None) -> None:
        """Delete every row, or one scope's rows."""
        with self._touch_lock:
            self._touched.clear()
        if scope is None:
            self._conns.run(query, sql.DELETE_ALL, (), write=True)
        else:
            self._conns.run(query, sql.DELETE_SCOPE, (scope,), write=True)

    # -- inspection -------------------------------------------------------------------------

    def size(self) -> int:
        """Purge every expired row (or count them: while another connection writes, or if
        the file cannot be written), then read the count kept by triggers."""
        now = self._timer()
        if self._conns.run(query, sql.ANY_EXPIRED, (now,)):  # a single read when there is none
            purged = False
            if not self._conns.readonly:
                # Another writer holds the file, or it cannot be written: count instead.
                with contextlib.suppress(BackendError):
                    self._conns.run(
                        self._remove_expired, sql.PURGE_ALL, (now,), write=True, wait=False
                    )
                    purged = True
            if not purged:
                return self._conns.run(_live_rows, now)
        return self._conns.run(row_count)

    def entries(self, *, expired: bool = False) -> Iterator[Entry]:
        """Yield every live row (and expired ones not yet removed, if asked) in key order,
        one query per 256 rows.

        No transaction stays open between pages: entries written or removed meanwhile may
        or may not appear, but none appears twice. Hits and LRU order are unchanged.
        """
        last = ""
        while True:
            now = -math.inf if expired else self._timer()
            rows = self._conns.run(query, sql.ENTRIES, (last, now, _PAGE))
            for key, prompt, llm_string, payload, created_at, expires_at, scope in rows:
                yield Entry(
                    key,
                    _text(prompt),
                    _text(llm_string),
                    bytes(payload) if isinstance(payload, bytes) else _utf8(str(payload)),
                    float(created_at) if isinstance(created_at, (int, float)) else 0.0,
                    float(expires_at) if isinstance(expires_at, (int, float)) else None,
                    scope if isinstance(scope, str) else None,
                )
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    # -- async: SQLite has no async API; its calls are short, run in a worker thread ------

    async def aread(self, key: Key) -> Record | None:
        return await asyncio.to_thread(self.read, key)

    async def awrite(
        self, key: Key, payload: bytes, created_at: float, expires_at: float | None
    ) -> None:
        await asyncio.to_thread(self.write, key, payload, created_at, expires_at)

    async def adelete(self, key: Key, record: Record) -> None:
        await asyncio.to_thread(self.delete, key, record)

    async def aclear(self, scope: str | None) -> None:
        await asyncio.to_thread(self.clear, scope)


def _delete_exact(db: sqlite3.Connection, key: str, value: object) -> None:
    """Delete ``key``'s row if its payload (or damaged expiry) is still ``value``."""
    if isinstance(value, bytes):
        db.execute(sql.DELETE, (key, value))
    else:
        db.execute(
            "DELETE FROM gencache_entries WHERE key = ? AND (payload IS ? OR expires_at IS ?)",
            (key, value, value),
        )


def _utf8(text: str) -> bytes:
    # Prompts may hold lone surrogates, which sqlite3 cannot bind as TEXT.
    return text.encode("utf-8", "surrogatepass")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # a damaged row: show what can be shown
            return value.decode("utf-8", "replace")
    return str(value)


def _live_rows(db: sqlite3.Connection, now: float) -> int:
    """Rows not expired at ``now``: both counts in one read transaction (one snapshot; a
    purge by another connection between two reads would make the difference negative)."""
    db.execute("BEGIN")
    try:
        total = row_count(db)
        expired: int = db.execute(sql.COUNT_EXPIRED, (now,)).fetchone()[0]
    finally:
        if db.in_transaction:
            db.execute("COMMIT")
    return max(0, total - expired)
