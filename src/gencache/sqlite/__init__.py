"""``SQLiteCache``: a persistent cache in one SQLite file, shared by threads and processes.

The package: this module (the cache: configuration and lifecycle), ``_store`` (raw I/O,
the template's :class:`~gencache._protocol.Store`), ``_conn`` (connections, locks,
retries, errors, the schema check at open), ``_files`` (the path, directory and file
modes, who may write them) and ``_schema`` (tables, migrations and the policies'
statements, as data).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gencache._cache import CacheOptions, check_bool
from gencache._policies import Policy, check_maxsize
from gencache._store import StoreCache
from gencache._ttl import Timer, check_seconds, check_timer, check_ttl
from gencache.errors import BackendUnavailableError
from gencache.sqlite._conn import Connections, prepare
from gencache.sqlite._files import check_path, create_private, open_existing, write_hint
from gencache.sqlite._lease import SQLiteLeases
from gencache.sqlite._savings import SQLiteSavings
from gencache.sqlite._schema import ORDERS, SCHEMA_VERSION
from gencache.sqlite._store import SQLiteStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SCHEMA_VERSION", "SQLiteCache", "default_path"]

_MAX_BUSY_TIMEOUT = 86_400.0  # a day; more is a mistake (and overflows lock timeouts)
_OPEN_TIMEOUT = 30.0  # the least an open waits for other processes creating the file


def default_path() -> Path:
    """Return the default file, ``$XDG_CACHE_HOME/gencache/llm_cache.sqlite3``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``; the environment is read on every call.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gencache" / "llm_cache.sqlite3"


def _check_clock(timer: Timer) -> Timer:
    """Call ``timer`` once: a clock that cannot give a row's times would fail every call."""
    now = timer()
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        msg = f"timer must return a number of seconds, not {type(now).__name__} ({now!r})"
        raise TypeError(msg)
    # A SQLite INTEGER is 64 bits; a REAL must be finite to compare with deadlines.
    if not (math.isfinite(now) if isinstance(now, float) else -(2**63) <= now < 2**63):
        msg = f"timer must return a finite number of seconds, not {now!r}"
        raise ValueError(msg)
    return timer


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
    ``busy_timeout`` seconds, then 3 more times. A lookup never waits for that lock:
    what it writes on the side (deleting an expired, damaged or foreign row, LRU
    recency) is tried once, else left for later. Opening never fails because other
    processes are creating or migrating the file at the same moment (it waits for them,
    at least 30 s). Failures follow the ``strict`` policy of
    :class:`~gencache._store.StoreCache`. Async calls run in worker threads.

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
        path: The database file, created if missing (each new directory gets mode
            ``0o700``, the files ``0o600``, whatever the umask). Default:
            :func:`default_path`, usually ``~/.cache/gencache/llm_cache.sqlite3``.
        maxsize: The maximum number of entries, or ``None`` for no bound.
        ttl: Seconds an entry stays fresh after it is written, or ``None``.
        policy: ``"fifo"`` (default, as LangChain) or ``"lru"``.
        strict: Raise :class:`~gencache.errors.BackendError` rather than logging it and
            carrying on without the cache.
        timer: The clock for TTL and ``created_at``, in seconds (``time.time``).
        busy_timeout: Seconds a call waits for another connection's write lock (at most
            a day).
        allow_shared: Accept a file, or the directory holding it, that another user
            can write (owned by another user than this one or root, group- or
            world-writable, or a sticky directory such as ``/tmp``, where anyone may
            plant the ``-wal`` file). Off by default: such a user could plant answers or
            read the prompts.
        readonly: Open an existing file for reading only (inspection: no write access to
            the file or its directory is needed). Writes and ``clear`` then fail by the
            ``strict`` policy; hits move nothing (LRU) and ``len()`` counts expired rows
            instead of purging them. Reads also see what another process wrote but has
            not yet checkpointed into the file if the ``-shm`` file is readable; else
            the file as last checkpointed.

        **options: The options of every backend (:class:`~gencache._cache.CacheOptions`):
            ``canonical_keys``, ``admit``, ``single_flight``, ``flight_timeout``,
            ``prices``, ``zero_usage_on_hit``, ``mark_hits``.

    Raises:
        TypeError: If an argument has the wrong type, or ``timer()`` (called once
            here) returns something other than a number.
        ValueError: As for :class:`~gencache.InMemoryCache`; also for a negative or
            huge ``busy_timeout`` (over a day), a ``timer()`` that is not finite, or an
            in-memory ``path``.
        BackendUnavailableError: Whatever ``strict`` is, if ``path`` is a directory or
            not a regular file, cannot be created, read or opened (the message says if
            it is a permission problem), is not private (see ``allow_shared``), is not a
            SQLite database, or is one that gencache did not create (or that a newer
            gencache wrote). A 0.1 file (schema version 1) is upgraded in place by a
            read-write open; its rows stay, as misses.
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
        allow_shared: bool = False,
        readonly: bool = False,
        **options: Unpack[CacheOptions],
    ) -> None:
        # Every argument is checked before the file is touched.
        strict = check_bool("strict", strict)
        self._maxsize_ = check_maxsize(maxsize)
        ttl = check_ttl(ttl)
        self._policy = Policy.parse(policy)
        timer = _check_clock(check_timer(timer))
        busy_timeout = check_seconds("busy_timeout", busy_timeout, allow_zero=True)
        if busy_timeout > _MAX_BUSY_TIMEOUT:
            msg = (
                f"busy_timeout must be at most {_MAX_BUSY_TIMEOUT:g} seconds, not {busy_timeout!r}"
            )
            raise ValueError(msg)
        self._path = check_path(path, default_path)
        self._readonly = check_bool("readonly", readonly)
        shared = check_bool("allow_shared", allow_shared)
        if readonly:
            file_id = open_existing(self._path, allow_shared=shared)
        else:
            file_id = create_private(self._path, allow_shared=shared)
        self._conns = Connections(self._path, file_id, busy_timeout, readonly=readonly)
        leases = SQLiteLeases(self._conns)
        self._sqlite = SQLiteStore(
            self._conns,
            leases=leases,
            order=ORDERS[self._policy.value],
            maxsize=self._maxsize_,
            timer=timer,
            bounded_ttl=ttl is not None,
        )
        super().__init__(
            self._sqlite,
            strict=strict,
            ttl=ttl,
            timer=timer,
            **options,
            counts=lambda: (self._sqlite.evicted, self._sqlite.expired),
            maxsize=self._maxsize_,
            leases=leases,
            savings=SQLiteSavings(self._conns),
        )
        try:
            # With the busy retries of every call, and at least _OPEN_TIMEOUT: processes
            # creating or converting the file at the same moment wait for each other
            # (even with busy_timeout=0). The connection is kept while the cache lives,
            # and with it the WAL file.
            self._conns.run(
                prepare,
                self._path,
                readonly,
                write=not readonly,
                timeout=max(busy_timeout, _OPEN_TIMEOUT),
            )
        except BackendUnavailableError as exc:
            self._conns.close()
            hint = "" if readonly else write_hint(self._path)
            if not hint:
                raise
            raise BackendUnavailableError(f"{exc}{hint}") from exc
        except BaseException:
            self._conns.close()
            raise

    @property
    def path(self) -> Path:
        """The database file (absolute)."""
        return self._path

    @property
    def readonly(self) -> bool:
        """Whether the file was opened for reading only."""
        return self._readonly

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
        """Write pending LRU hits and savings, and close every thread's connection.

        The cache stays usable (it reopens). Call it when no other thread is inside a call
        on this cache: such a call would fail (a miss unless strict).
        """
        self.flush()
        self._sqlite.flush()
        self._conns.close()

    def __enter__(self) -> SQLiteCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self._path)!r}, maxsize={self._maxsize_!r}, "
            f"ttl={self._ttl!r}, policy={self._policy.value!r})"
        )
