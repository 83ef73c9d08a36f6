"""``SQLiteCache``: a persistent cache in one SQLite file, shared by threads and processes."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gencache._base import Entry, StoreCache
from gencache._policies import Policy, check_maxsize
from gencache._ttl import Timer, check_seconds, check_timer, check_ttl
from gencache.errors import BackendError, BackendUnavailableError

__all__ = ["SCHEMA_VERSION", "SQLiteCache", "default_path"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION: int = 1
"""Version of the tables, kept in ``gencache_meta``; a file with another one is refused."""

_PURGE_PER_WRITE = 16  # expired rows removed per write: no single call pays for a mass expiry
_RETRIES = 3  # attempts after SQLITE_BUSY has lasted busy_timeout
_PAGE = 256  # rows per query in entries()
_MAX_TOUCHED, _TOUCH_DELAY = 256, 1.0  # pending LRU hits are written at this many, or age
# No memory-mapped I/O. With a mapping, a file truncated by another program, or a disk
# read error, raises SIGBUS and kills the whole process (sqlite.org/mmap.html); read()
# turns both into an SQLite error, i.e. a miss. Measured cost: about 2 µs on a 22 µs hit.
# 0 is explicit because a distribution's SQLite may be built with another default.
_MMAP_SIZE = 0
_UNAVAILABLE = {3, 8, 14, 26}  # SQLITE_PERM, _READONLY, _CANTOPEN, _NOTADB
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED

# ``seq`` is both the rowid and the policy order (write order under FIFO, use order under
# LRU): the victim is the first row, new rows append at the right edge of the table, and
# no order index has to be written. Triggers keep the row count, so bounds cost O(1).
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS gencache_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO gencache_meta VALUES ('schema_version', 1), ('count', 0);
CREATE TABLE IF NOT EXISTS gencache_entries (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, expires_at REAL,
    created_at REAL NOT NULL, prompt BLOB NOT NULL, llm_string BLOB NOT NULL,
    payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS gencache_entries_expires ON gencache_entries (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS gencache_count_insert AFTER INSERT ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value + 1 WHERE name = 'count'; END;
CREATE TRIGGER IF NOT EXISTS gencache_count_delete AFTER DELETE ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value - 1 WHERE name = 'count'; END;
COMMIT;
"""
_GET = "SELECT payload, expires_at FROM gencache_entries WHERE key = ?"
_TOUCH = (
    "UPDATE gencache_entries SET seq = (SELECT max(seq) FROM gencache_entries) + 1"
    " WHERE key = ? AND seq < (SELECT max(seq) FROM gencache_entries)"
)
_UPSERT = (
    "INSERT INTO gencache_entries (key, expires_at, created_at, prompt, llm_string, payload)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET expires_at ="
    " excluded.expires_at, created_at = excluded.created_at, payload = excluded.payload"
)
_UPSERT_LRU = (  # the same, and the entry becomes the most recently used
    "INSERT INTO gencache_entries (key, expires_at, created_at, prompt, llm_string, payload)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET expires_at ="
    " excluded.expires_at, created_at = excluded.created_at, payload = excluded.payload,"
    " seq = (SELECT max(seq) FROM gencache_entries) + 1"
)
_EXPIRY = "SELECT expires_at FROM gencache_entries WHERE key = ?"
_COUNT = "SELECT value FROM gencache_meta WHERE name = 'count'"
_DELETE = "DELETE FROM gencache_entries WHERE key = ? AND payload = ?"
_DELETE_EXPIRED = "DELETE FROM gencache_entries WHERE key = ? AND expires_at <= ?"
_DELETE_DAMAGED = "DELETE FROM gencache_entries WHERE key = ? AND expires_at IS ?"
_COUNT_ROWS = "SELECT count(*) FROM gencache_entries"
_COUNT_EXPIRED = "SELECT count(*) FROM gencache_entries WHERE expires_at <= ?"
_ANY_EXPIRED = "SELECT 1 FROM gencache_entries WHERE expires_at <= ? LIMIT 1"
_PURGE_ALL = "DELETE FROM gencache_entries WHERE expires_at <= ?"
_PURGE = (
    "DELETE FROM gencache_entries WHERE seq IN (SELECT seq FROM gencache_entries"
    " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)
_EVICT = (
    "DELETE FROM gencache_entries"
    " WHERE seq IN (SELECT seq FROM gencache_entries ORDER BY seq LIMIT ?)"
)
_ENTRIES = (
    "SELECT key, prompt, llm_string, payload, created_at, expires_at FROM gencache_entries"
    " WHERE key > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"
)

# One in-process write lock per database file: this process's threads queue on it (and
# are woken at once) instead of polling SQLite. Replaced in a forked child, where a lock
# held by one of the parent's threads would stay held for ever.
_write_locks: weakref.WeakValueDictionary[tuple[int, int], Any] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()
_pid = os.getpid()
_inherited: list[sqlite3.Connection] = []  # a parent's connections: never closed in a child


def _after_fork_in_child() -> None:
    global _write_locks, _registry_lock, _pid  # noqa: PLW0603
    _write_locks, _registry_lock = weakref.WeakValueDictionary(), threading.Lock()
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_path() -> Path:
    """Return the default file, ``$XDG_CACHE_HOME/gencache/llm_cache.sqlite3``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``; the environment is read on every call.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gencache" / "llm_cache.sqlite3"


class _Connection:
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


class SQLiteCache(StoreCache):
    """A drop-in for LangChain's ``SQLiteCache``: one file, many threads and processes.

    Entries live in a SQLite database in WAL mode (readers never wait for writers),
    encoded with :mod:`gencache.codec` (JSON, never pickle), and survive restarts. Size
    bound, policy and TTL behave as in :class:`~gencache.InMemoryCache`: the bound holds
    after every write, a re-update evicts nothing, an expired entry is a miss and is
    removed, hits never extend the TTL. Expiry follows each row's deadline, so every
    process sharing the file agrees; ``timer`` should therefore be wall-clock time.
    Under LRU a hit is noted in memory and written, in order, with this object's next
    write (before it evicts anything), at :meth:`close`, or by a hit once 256 are pending
    or the oldest is a second old: other processes see recency with that delay.

    Thread- and process-safe: each thread (and each forked child) has its own
    connection; writes are ``BEGIN IMMEDIATE`` transactions, serialised in-process by a
    lock per file and across processes by SQLite; a busy database is retried for
    ``busy_timeout`` seconds, then 3 more times. Failures follow the ``strict`` policy of
    :class:`~gencache._base.StoreCache`. Async calls run in worker threads.

    Costs: ``lookup`` is one indexed read (removing an expired entry, one small write,
    left to a later call if another connection is writing: reads never wait).
    ``update`` is one upsert; bounded or with a TTL, it is one transaction that also
    checks the key, culls in rowid order and purges up to 16 expired rows through a
    partial index. ``len()`` and :meth:`stats` purge every expired row (or, while another
    connection is writing, count them through the index), then read a count kept by
    triggers. ``clear`` and :meth:`entries` are O(n). The first call in a new
    thread opens its connection (about 0.3 ms). Statistics count this process's calls and
    removals; the size is the file's.

    Args:
        path: The database file, created if missing (a new directory gets mode ``0o700``,
            the files ``0o600``). Default: :func:`default_path`, which is usually
            ``~/.cache/gencache/llm_cache.sqlite3``.
        maxsize: The maximum number of entries, or ``None`` for no bound.
        ttl: Seconds an entry stays fresh after it is written, or ``None``.
        policy: ``"fifo"`` (default, as LangChain) or ``"lru"``.
        strict: Raise :class:`~gencache.errors.BackendError` rather than logging it and
            carrying on without the cache.
        timer: The clock for TTL and ``created_at``, in seconds (``time.time``).
        busy_timeout: Seconds a call waits for another connection's write lock.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: As for :class:`~gencache.InMemoryCache`; also for a negative
            ``busy_timeout`` or an in-memory ``path``.
        BackendUnavailableError: Whatever ``strict`` is, if ``path`` is a directory,
            cannot be created or opened, is not a SQLite database, or is one that gencache
            did not create (or that a newer gencache wrote).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        maxsize: int | None = None,
        ttl: float | None = None,
        policy: str | Policy = "fifo",
        strict: bool = False,
        timer: Timer = time.time,
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(strict=strict)
        self._maxsize_ = check_maxsize(maxsize)
        self._ttl = check_ttl(ttl)
        self._policy = Policy.parse(policy)
        self._timer = check_timer(timer)
        self._busy_timeout = check_seconds("busy_timeout", busy_timeout, allow_zero=True)
        self._path = _check_path(path)
        self._lru = self._policy.refresh_on_use
        self._upsert = _UPSERT_LRU if self._lru else _UPSERT
        self._evicted = self._expired = 0  # changed only under the file's write lock
        self._touched: dict[str, None] = {}  # LRU hits not yet written, oldest first
        self._touch_due = 0.0
        self._touch_lock = threading.Lock()
        self._local = threading.local()
        self._epoch = 0  # bumped by close(): connections of an older epoch are stale
        self._holders: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._holders_lock = threading.Lock()
        self._file_id = _create(self._path)
        db = self._connect()
        try:
            _init_schema(db, self._path, self._busy_timeout)
        except BaseException:
            db.close()
            raise
        self._adopt(db)  # kept while the cache lives, and with it the WAL file

    @property
    def path(self) -> Path:
        """The database file (absolute)."""
        return self._path

    @property
    def maxsize(self) -> int | None:
        """The maximum number of entries, or ``None``."""
        return self._maxsize_

    @property
    def ttl(self) -> float | None:
        """Seconds an entry stays fresh, or ``None``."""
        return self._ttl

    @property
    def policy(self) -> Policy:
        """The replacement policy."""
        return self._policy

    def close(self) -> None:
        """Write pending LRU hits and close every thread's connection.

        The cache stays usable (it reopens). Call it when no other thread is inside a call
        on this cache: such a call would fail (a miss unless strict).
        """
        if self._touched:
            with contextlib.suppress(BackendError):
                self._run(self._flush_touches, write=True)
        self._epoch += 1
        with self._holders_lock:
            holders = list(self._holders)
            self._holders.clear()
        for holder in holders:
            holder.close()

    def __enter__(self) -> SQLiteCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self._path)!r}, maxsize={self._maxsize_!r}, "
            f"ttl={self._ttl!r}, policy={self._policy.value!r})"
        )

    # -- raw I/O --------------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        rows = self._run(_query, _GET, (key,))
        if not rows:
            return None
        row = rows[0]
        expires = row[1]
        if expires is not None:
            # The answer is a miss whatever the removals below do: they are housekeeping
            # (a later write or len() repeats them), so they never wait for another
            # writer ("readers never wait") and never turn this miss into an error.
            if not isinstance(expires, (int, float)):  # a damaged row: text or a blob
                self._log.warning(
                    "decode",
                    "gencache: dropping damaged entry %s: expires_at is %s",
                    key[:16],
                    type(expires).__name__,
                )
                with contextlib.suppress(BackendError):
                    self._run(_query, _DELETE_DAMAGED, (key, expires), write=True, wait=False)
                return None
            if (now := self._timer()) >= expires:
                with contextlib.suppress(BackendError):
                    self._run(
                        self._remove_expired, _DELETE_EXPIRED, (key, now), write=True, wait=False
                    )
                return None
        if self._lru:  # a write transaction per hit would cost more than the hit
            now = time.monotonic()
            with self._touch_lock:
                if not self._touched:
                    self._touch_due = now + _TOUCH_DELAY
                self._touched.pop(key, None)
                self._touched[key] = None
                due = len(self._touched) >= _MAX_TOUCHED or now >= self._touch_due
            if due:
                try:
                    self._run(self._flush_touches, write=True, wait=False)
                except _BusyError:
                    pass  # still pending: written by a later write or hit; a hit never waits
                except BackendError as exc:
                    self._failed(exc, "lookup")
        payload: bytes = row[0]
        return payload

    def _flush_touches(self, db: sqlite3.Connection) -> None:
        with _immediate(db):
            self._write_touches(db)

    def _write_touches(self, db: sqlite3.Connection) -> None:
        """Move the entries hit since the last write to the back, in hit order."""
        if self._touched:
            with self._touch_lock:
                keys = [(key,) for key in self._touched]
                self._touched.clear()
            db.executemany(_TOUCH, keys)  # lost if the transaction fails: recency only

    def _remove_expired(self, db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
        self._expired += db.execute(sql, params).rowcount

    def _set(self, key: str, prompt: str, llm_string: str, payload: bytes) -> None:
        now = self._timer()
        expires = None if self._ttl is None else now + self._ttl
        row = (key, expires, now, _utf8(prompt), _utf8(llm_string), payload)
        if self._ttl is None and self._maxsize_ is None and not self._touched:
            self._run(_query, self._upsert, row, write=True)  # one atomic statement
        else:
            self._run(self._set_in_transaction, row, now, write=True)

    def _set_in_transaction(self, db: sqlite3.Connection, row: tuple[Any, ...], now: float) -> None:
        key, maxsize = row[0], self._maxsize_
        expired = evicted = 0
        with _immediate(db):
            self._write_touches(db)
            if self._ttl is not None:
                expired += db.execute(_PURGE, (now, _PURGE_PER_WRITE)).rowcount
            found = db.execute(_EXPIRY, (key,)).fetchone()
            # A damaged (non-numeric) expires_at is not compared: the upsert rewrites it.
            if found is not None and isinstance(found[0], (int, float)) and now >= found[0]:
                expired += db.execute(_DELETE_EXPIRED, (key, now)).rowcount  # not "replaced"
                found = None
            if found is None and maxsize is not None:
                excess = _count(db, repair=True) - maxsize + 1
                if excess > 0:  # drop expired rows before evicting live ones
                    expired += (dropped := db.execute(_PURGE, (now, excess)).rowcount)
                    if excess > dropped:
                        evicted += db.execute(_EVICT, (excess - dropped,)).rowcount
            db.execute(self._upsert, row)
        self._expired += expired  # only once committed
        self._evicted += evicted

    def _delete(self, key: str, payload: bytes) -> None:
        self._run(_query, _DELETE, (key, payload), write=True)

    def _clear(self) -> None:
        with self._touch_lock:
            self._touched.clear()
        self._run(_query, "DELETE FROM gencache_entries", (), write=True)

    def _size(self) -> int:
        now = self._timer()
        expired = 0
        if self._run(_query, _ANY_EXPIRED, (now,)):  # a single read when there is none
            try:
                self._run(self._remove_expired, _PURGE_ALL, (now,), write=True, wait=False)
            except _BusyError:  # another writer holds the file: count, without waiting for it
                expired = self._run(_query, _COUNT_EXPIRED, (now,))[0][0]
        return self._run(_count) - int(expired)

    def entries(self) -> Iterator[Entry]:
        """Yield every live entry in key order, one query per 256 rows.

        No transaction stays open between pages: entries written or removed meanwhile
        may or may not appear, but none appears twice. Hits and LRU order are unchanged.

        Raises:
            BackendError: If the database fails.
        """
        last = ""
        while True:
            rows = self._run(_query, _ENTRIES, (last, self._timer(), _PAGE))
            for key, prompt, llm_string, payload, created_at, expires_at in rows:
                yield Entry(
                    key, _text(prompt), _text(llm_string), bytes(payload), created_at, expires_at
                )
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def _evictions(self) -> int:
        return self._evicted

    def _expirations(self) -> int:
        return self._expired  # stats() counts (and so purges) the size first

    def _maxsize(self) -> int | None:
        return self._maxsize_

    # -- connections, retries and errors --------------------------------------------------

    def _run(self, op: Callable[..., _T], *args: Any, write: bool = False, wait: bool = True) -> _T:
        """Return ``op(db, *args)`` on this thread's connection, retrying while busy.

        SQLite's busy handler sleeps 1 ms and more per wait, which halves the throughput of
        processes sharing a file, so connections never wait in SQLite: a busy call is
        retried here every 50 µs to 5 ms for ``busy_timeout``, then ``_RETRIES`` times more.
        With ``wait=False`` a busy database raises :class:`_BusyError` at once, for housekeeping
        that a read does on the side and that must not make it wait.
        """
        deadline, delay, late = 0.0, 5e-5, 0
        while True:
            holder = getattr(self._local, "conn", None)
            if holder is None or holder.epoch != self._epoch or holder.pid != _pid:
                holder = self._adopt(self._connect())
            try:
                if not write:
                    return op(holder.db, *args)
                if not holder.lock.acquire(timeout=self._busy_timeout + 1):
                    msg = f"SQLite cache {self._path}: timed out waiting for the write lock"
                    raise BackendError(msg)
                try:
                    return op(holder.db, *args)
                finally:
                    holder.lock.release()
            except sqlite3.Error as exc:
                if _code(exc) not in _BUSY:
                    raise _wrap(exc, self._path) from exc
                if not wait:
                    raise _BusyError(str(_wrap(exc, self._path))) from exc
                now = time.monotonic()
                deadline = deadline or now + self._busy_timeout
                if now >= deadline:
                    late += 1
                    if late > _RETRIES:
                        note = f" (for {self._busy_timeout:g} s and {_RETRIES} more attempts)"
                        raise _wrap(exc, self._path, note) from exc
                time.sleep(delay)
                delay = min(2 * delay, 0.005)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self._path,
                timeout=0,  # _run() waits, in finer steps than SQLite's busy handler
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # so that close() can close other threads' ones
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, self._path, unavailable=True) from exc
        try:
            db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at each checkpoint
            db.execute(f"PRAGMA mmap_size = {_MMAP_SIZE}")
        except sqlite3.Error as exc:
            # Close now: the traceback keeps ``db`` alive, and with it an open file
            # descriptor (which keeps, e.g., its file system busy) until a GC pass.
            db.close()
            raise _wrap(exc, self._path, unavailable=True) from exc
        return db

    def _adopt(self, db: sqlite3.Connection) -> _Connection:
        with _registry_lock:
            lock = _write_locks.get(self._file_id)
            if lock is None:
                _write_locks[self._file_id] = lock = threading.Lock()
        holder = _Connection(db, self._epoch, lock)
        with self._holders_lock:
            self._holders.add(holder)
        self._local.conn = holder  # drops, and so closes, a stale one
        return holder


class _BusyError(BackendError):
    """Another connection holds the write lock (raised only by ``_run(wait=False)``)."""


def _query(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return db.execute(sql, params).fetchall()


def _count(db: sqlite3.Connection, *, repair: bool = False) -> int:
    """Return the row count kept by the triggers.

    A damaged or missing count (not an integer) is recounted, and rewritten when
    ``repair`` is true (the caller holds a write transaction): a bad counter costs one
    O(n) recount, instead of a ``TypeError`` from every bounded write and ``len()``.
    """
    row = db.execute(_COUNT).fetchone()
    if row is not None and type(row[0]) is int:
        return row[0]
    count: int = db.execute(_COUNT_ROWS).fetchone()[0]
    if repair:
        db.execute("INSERT OR REPLACE INTO gencache_meta VALUES ('count', ?)", (count,))
    return count


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
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


def _utf8(text: str) -> bytes:
    # Prompts may hold lone surrogates, which sqlite3 cannot bind as TEXT.
    return text.encode("utf-8", "surrogatepass")


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "surrogatepass")


def _code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF
    text = str(exc)  # Python 3.10 has no error codes on exceptions
    return 5 if "locked" in text or "busy" in text else 0


def _wrap(
    exc: sqlite3.Error, path: Path, note: str = "", *, unavailable: bool = False
) -> Exception:
    kind = BackendUnavailableError if unavailable or _code(exc) in _UNAVAILABLE else BackendError
    return kind(f"SQLite cache {path}: {type(exc).__name__}: {exc}{note}")


def _check_path(path: object) -> Path:
    if path is None:
        return default_path()
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):
        msg = f"path must be a str or os.PathLike[str], not {type(path).__name__}"
        raise TypeError(msg)
    if text in {"", ":memory:"} or text.startswith("file:"):
        msg = f"path must name a database file, not {text!r} (use InMemoryCache for memory)"
        raise ValueError(msg)
    return Path(text).expanduser().absolute()


def _create(path: Path) -> tuple[int, int]:
    """Create the directory (``0o700``) and file (``0o600``) if missing; return the file id."""
    try:
        if path.is_dir():
            msg = f"SQLite cache {path}: is a directory; pass the path of a file inside it"
            raise BackendUnavailableError(msg)
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700, parents=True)
            path.parent.chmod(0o700)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            # SQLite gives the -wal and -shm files the database file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            path.chmod(0o600)
        info = path.stat()
    except OSError as exc:
        msg = f"SQLite cache {path}: cannot create the database file: {exc}"
        raise BackendUnavailableError(msg) from exc
    return info.st_dev, info.st_ino


def _init_schema(db: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Check that the file is empty or gencache's; create the tables when it is empty."""
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")  # rare: let SQLite wait
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "gencache_meta" in tables:
            row = db.execute("SELECT value FROM gencache_meta WHERE name = 'schema_version'")
            version = (row.fetchone() or (None,))[0]
            if version != SCHEMA_VERSION:
                msg = (
                    f"SQLite cache {path}: schema version {version!r}, but this gencache "
                    f"reads version {SCHEMA_VERSION}; use another file or upgrade gencache"
                )
                raise BackendUnavailableError(msg)
        elif tables:
            msg = (
                f"SQLite cache {path}: a SQLite database that gencache did not create "
                f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
            raise BackendUnavailableError(msg)
        if "gencache_entries" not in tables:
            db.execute("PRAGMA journal_mode = WAL")  # persistent: set once, by the creator
            db.executescript(_SCHEMA)
        db.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as exc:
        _rollback(db)
        raise _wrap(exc, path, unavailable=True) from exc
