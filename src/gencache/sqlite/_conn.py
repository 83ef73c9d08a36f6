"""The SQLite cache's connections, write lock, busy retries, errors and schema check.

One connection per thread (and per forked child), a write lock per database file shared
by every cache of this process on that file, and retries in Python instead of SQLite's
busy handler (which sleeps 1 ms and more per wait and halves the throughput of processes
sharing a file). :func:`prepare` checks, creates or migrates the tables when a cache
opens the file, under the same retries. Every ``sqlite3`` exception leaves this module
as a :class:`~gencache.errors.BackendError`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gencache.errors import BackendError, BackendUnavailableError
from gencache.sqlite import _schema as sql

__all__ = [
    "BusyError",
    "Connections",
    "immediate",
    "prepare",
    "query",
    "row_count",
]

_T = TypeVar("_T")

_RETRIES = 3  # attempts after SQLITE_BUSY has lasted busy_timeout
# No memory-mapped I/O. With a mapping, a file truncated by another program, or a disk
# read error, raises SIGBUS and kills the whole process (sqlite.org/mmap.html); read()
# turns both into an SQLite error, i.e. a miss. Measured cost: about 2 µs on a 22 µs hit.
# 0 is explicit because a distribution's SQLite may be built with another default.
_MMAP_SIZE = 0
_UNAVAILABLE = {3, 8, 14, 26}  # SQLITE_PERM, _READONLY, _CANTOPEN, _NOTADB
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED

# One in-process write lock per database file: this process's threads queue on it (and
# are woken at once) instead of polling SQLite. Replaced in a forked child, where a lock
# held by one of the parent's threads would stay held for ever.
_write_locks: weakref.WeakValueDictionary[tuple[int, int], Any] = weakref.WeakValueDictionary()
# Reentrant: a garbage-collection finalizer (a collected cache writing its last batch of
# statistics) may open a connection on a thread that is inside ``adopt`` already; a plain
# lock would deadlock that thread.
_registry_lock = threading.RLock()
_pid = os.getpid()
_inherited: list[sqlite3.Connection] = []  # a parent's connections: never closed in a child


def _after_fork_in_child() -> None:
    global _write_locks, _registry_lock, _pid  # noqa: PLW0603
    _write_locks, _registry_lock = weakref.WeakValueDictionary(), threading.RLock()
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class BusyError(BackendError):
    """Another connection holds the write lock (raised only by ``run(wait=False)``)."""


class _Holder:
    """One thread's connection; closed when its thread ends or its cache goes away."""

    __slots__ = ("__weakref__", "db", "epoch", "lock", "pid")

    def __init__(self, db: sqlite3.Connection, epoch: int, lock: Any) -> None:
        self.db, self.epoch, self.lock, self.pid = db, epoch, lock, _pid

    def close(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):
                self.db.close()
        else:  # closing a parent's connection in a forked child can break its locks
            _inherited.append(self.db)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class Connections:
    """Per-thread connections to one file, with the file's write lock and busy retries.

    Thread-safe. :meth:`run` costs one thread-local read on top of the statement; the
    first call in a thread opens its connection (about 0.3 ms).
    """

    def __init__(
        self, path: Path, file_id: tuple[int, int], busy_timeout: float, *, readonly: bool = False
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._immutable = False  # set when a read-only open must skip WAL's -shm file
        self._file_id = file_id
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._epoch = 0  # bumped by close(): connections of an older epoch are stale
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._holders_lock = threading.Lock()

    def run(
        self,
        op: Callable[..., _T],
        *args: Any,
        write: bool = False,
        wait: bool = True,
        timeout: float | None = None,
    ) -> _T:
        """Return ``op(db, *args)`` on this thread's connection, retrying while busy.

        A busy call is retried every 50 µs to 5 ms for ``timeout`` seconds (default:
        ``busy_timeout``), then 3 times more. With ``wait=False`` a busy database raises
        :class:`BusyError` at once, for housekeeping that a read does on the side and
        that must not make it wait. Opening the connection is retried the same way:
        another process creating or converting the file is never an error.
        """
        budget = self._busy_timeout if timeout is None else timeout
        deadline, delay, late = 0.0, 5e-5, 0
        while True:
            try:
                holder = getattr(self._local, "conn", None)
                if holder is None or holder.epoch != self._epoch or holder.pid != _pid:
                    holder = self.adopt(self.connect())
                if not write:
                    return op(holder.db, *args)
                if not holder.lock.acquire(timeout=budget + 1 if wait else 0):
                    if not wait:  # another thread of this process is writing
                        msg = f"SQLite cache {self.path}: another thread is writing"
                        raise BusyError(msg)
                    msg = f"SQLite cache {self.path}: timed out waiting for the write lock"
                    raise BackendError(msg)
                try:
                    return op(holder.db, *args)
                finally:
                    holder.lock.release()
            except sqlite3.Error as exc:
                if code(exc) not in _BUSY:
                    raise wrap(exc, self.path) from exc
                if not wait:
                    raise BusyError(str(wrap(exc, self.path))) from exc
                now = time.monotonic()
                deadline = deadline or now + budget
                if now >= deadline:
                    late += 1
                    if late > _RETRIES:
                        note = f" (for {budget:g} s and {_RETRIES} more attempts)"
                        raise wrap(exc, self.path, note) from exc
                time.sleep(delay)
                delay = min(2 * delay, 0.005)

    def fetch(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        """Return the rows of one read statement: :meth:`run` without its layers.

        The hit path: on this thread's live connection a read is one ``execute`` (about
        1 µs less than through ``run``). Anything else (no connection yet, a stale one,
        an error) goes through :meth:`run`, which retries and wraps; a read may then run
        twice, which is harmless.
        """
        holder = getattr(self._local, "conn", None)
        if holder is not None and holder.epoch == self._epoch and holder.pid == _pid:
            try:
                rows: list[Any] = holder.db.execute(statement, params).fetchall()
            except sqlite3.Error:
                return self.run(query, statement, params)
            return rows
        return self.run(query, statement, params)

    def connect(self) -> sqlite3.Connection:
        """Open a new connection; ``sqlite3.Error`` escapes only for a busy file."""
        target: str | Path = self.path
        if self.readonly:
            # mode=ro needs no write access to the file; immutable=1 (after a first open
            # failed) none to its directory either, for WAL's -shm file: a snapshot.
            target = self.path.as_uri() + ("?immutable=1" if self._immutable else "?mode=ro")
        try:
            db = sqlite3.connect(
                target,
                timeout=0,  # run() waits, in finer steps than SQLite's busy handler
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # so that close() can close other threads' ones
                uri=self.readonly,
            )
        except sqlite3.Error as exc:
            raise wrap(exc, self.path, unavailable=True) from exc
        try:
            if not self.readonly:
                db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at each checkpoint
            db.execute(f"PRAGMA mmap_size = {_MMAP_SIZE}")
            if self.readonly:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            # Close now: the traceback keeps ``db`` alive, and with it an open file
            # descriptor (which keeps, e.g., its file system busy) until a GC pass.
            db.close()
            if self.readonly and not self._immutable and code(exc) in {8, 14}:
                self._immutable = True  # no write access for the -shm file: a snapshot
                return self.connect()
            if code(exc) in _BUSY:
                raise  # run() retries
            raise wrap(exc, self.path, unavailable=True) from exc
        return db

    def adopt(self, db: sqlite3.Connection) -> _Holder:
        """Make ``db`` this thread's connection."""
        with _registry_lock:
            lock = _write_locks.get(self._file_id)
            if lock is None:
                _write_locks[self._file_id] = lock = threading.Lock()
        holder = _Holder(db, self._epoch, lock)
        with self._holders_lock:
            self._holders.add(holder)
        self._local.conn = holder  # drops, and so closes, a stale one
        return holder

    def close(self) -> None:
        """Close every thread's connection; the next call reopens."""
        self._epoch += 1
        with self._holders_lock:
            holders = list(self._holders)
            self._holders.clear()
        for holder in holders:
            holder.close()


def query(db: sqlite3.Connection, statement: str, params: tuple[Any, ...]) -> list[Any]:
    """Run one statement and fetch every row."""
    return db.execute(statement, params).fetchall()


def row_count(db: sqlite3.Connection, *, repair: bool = False) -> int:
    """Return the row count kept by the triggers.

    A damaged or missing count (not an integer) is recounted, and rewritten when
    ``repair`` is true (the caller holds a write transaction): a bad counter costs one
    O(n) recount, instead of a ``TypeError`` from every bounded write and ``len()``.
    """
    row = db.execute(sql.COUNT).fetchone()
    if row is not None and type(row[0]) is int:
        return row[0]
    count: int = db.execute(sql.COUNT_ROWS).fetchone()[0]
    if repair:
        db.execute(sql.REPAIR_COUNT, (count,))
    return count


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: committed if the block succeeds, rolled back otherwise."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc``."""
    found = getattr(exc, "sqlite_errorcode", None)
    if found is not None:
        return int(found) & 0xFF
    text = str(exc)  # Python 3.10 has no error codes on exceptions
    return 5 if "locked" in text or "busy" in text else 0


def wrap(exc: sqlite3.Error, path: Path, note: str = "", *, unavailable: bool = False) -> Exception:
    """``exc`` as a :class:`BackendError` (``BackendUnavailableError`` for a bad file)."""
    kind = BackendUnavailableError if unavailable or code(exc) in _UNAVAILABLE else BackendError
    return kind(f"SQLite cache {path}: {type(exc).__name__}: {exc}{note}")


def prepare(db: sqlite3.Connection, path: Path, readonly: bool) -> None:
    """Check that the file is empty or gencache's; create or migrate the tables.

    Read-only, check only: a file of an older version must be opened once read-write.
    Meant to run through :meth:`Connections.run`: a busy file (another process creating,
    converting or writing it) raises the raw ``sqlite3`` error, which ``run`` retries.

    Raises:
        BackendUnavailableError: For a foreign database or a newer schema.
    """
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = None
        if "gencache_meta" in tables:
            row = db.execute("SELECT value FROM gencache_meta WHERE name = 'schema_version'")
            version = (row.fetchone() or (None,))[0]
        if readonly:
            _check_version(path, version)
            return
        if "gencache_meta" in tables:
            if version != sql.SCHEMA_VERSION:
                _migrate(db, path, version)
        elif tables:
            msg = (
                f"SQLite cache {path}: a SQLite database that gencache did not create "
                f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
            raise BackendUnavailableError(msg)
        if "gencache_entries" not in tables:
            db.execute("PRAGMA journal_mode = WAL")  # persistent: set once, by the creator
            db.executescript(sql.CREATE)
    except sqlite3.Error as exc:
        _rollback(db)
        if code(exc) in _BUSY:
            raise  # run() retries
        raise wrap(exc, path, unavailable=True) from exc


def _check_version(path: Path, version: object) -> None:
    if version == sql.SCHEMA_VERSION:
        return
    if version is None:
        what = "not a gencache cache"
    elif isinstance(version, int) and version in sql.MIGRATIONS:
        what = f"schema version {version} (open it once with write access to upgrade it)"
    else:
        what = f"schema version {version!r} (written by a newer gencache?)"
    msg = f"SQLite cache {path}: {what}; this gencache reads version {sql.SCHEMA_VERSION}"
    raise BackendUnavailableError(msg)


def _migrate(db: sqlite3.Connection, path: Path, version: object) -> None:
    if not isinstance(version, int) or version not in sql.MIGRATIONS:
        msg = (
            f"SQLite cache {path}: schema version {version!r}, but this gencache "
            f"reads version {sql.SCHEMA_VERSION}; use another file or upgrade gencache"
        )
        raise BackendUnavailableError(msg)
    with immediate(db):
        row = db.execute("SELECT value FROM gencache_meta WHERE name = 'schema_version'")
        current = (row.fetchone() or (None,))[0]
        while isinstance(current, int) and current in sql.MIGRATIONS:  # another process won
            for statement in sql.MIGRATIONS[current]:
                db.execute(statement)
            current += 1
