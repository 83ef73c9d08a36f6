"""Rows that must not be served: damaged, empty, or copied under another key.

Each row is changed with plain ``sqlite3``, as another program (or a person with the
file) would; the cache must answer a miss, delete the row (never a newer one), and never
make a lookup wait for another process's write lock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gencache.sqlite import SQLiteCache
from tests.helpers import gens
from tests.sqlite.test_processes import ROOT

P, Q, L = "What is the capital of France?", "And of Italy?", "llm"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@pytest.fixture
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file, as another program would have."""
    SQLiteCache(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    yield db
    db.close()


def key_of(cache: SQLiteCache, prompt: str) -> str:
    (key,) = [e.key for e in cache.entries() if e.prompt == prompt]
    return key


def rows(db: sqlite3.Connection) -> list[bytes]:
    return [r[0] for r in db.execute("SELECT prompt FROM gencache_entries ORDER BY seq")]


def empty_envelope(db: sqlite3.Connection, key: str) -> None:
    db.execute("UPDATE gencache_entries SET payload = ? WHERE key = ?", (b'{"g":[],"v":1}', key))


def empty_document(db: sqlite3.Connection, key: str) -> None:
    """No generations, in a document that names its key: only the codec refuses it."""
    doc = json.dumps({"g": [], "meta": {"key": key}, "v": 2}, separators=(",", ":"))
    db.execute("UPDATE gencache_entries SET payload = ? WHERE key = ?", (doc.encode(), key))


def undecodable(db: sqlite3.Connection, key: str) -> None:
    db.execute("UPDATE gencache_entries SET payload = ? WHERE key = ?", (b"\x80 not json", key))


DAMAGE: dict[str, Callable[[sqlite3.Connection, str], None]] = {
    "empty-envelope": empty_envelope,
    "empty-document": empty_document,
    "undecodable": undecodable,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_an_unusable_row_is_a_miss_and_is_deleted(
    path: Path, raw: sqlite3.Connection, damage: str
) -> None:
    """A hit of ``[]`` would make every LangChain call for the prompt raise IndexError."""
    cache = SQLiteCache(path, strict=True)
    cache.update(P, L, gens("paris"))
    cache.update(Q, L, gens("rome"))
    DAMAGE[damage](raw, key_of(cache, P))
    assert cache.lookup(P, L) is None
    assert rows(raw) == [Q.encode()]
    assert cache.lookup(Q, L) == gens("rome")
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    cache.update(P, L, gens("paris again"))
    assert cache.lookup(P, L) == gens("paris again")


def test_a_row_moved_under_another_key_is_a_miss_and_is_deleted(
    path: Path, raw: sqlite3.Connection
) -> None:
    """``UPDATE key = ...``: Q's lookup must not answer with P's response."""
    cache = SQLiteCache(path, strict=True)
    cache.update(Q, L, gens("rome"))
    key_q = key_of(cache, Q)
    raw.execute("DELETE FROM gencache_entries")
    cache.update(P, L, gens("paris"))
    raw.execute("UPDATE gencache_entries SET key = ? WHERE key = ?", (key_q, key_of(cache, P)))
    assert cache.lookup(Q, L) is None
    assert rows(raw) == []
    assert cache.lookup(P, L) is None  # it was moved away, not copied
    assert len(cache) == 0


def test_a_row_copied_under_another_key_is_a_miss_and_only_the_copy_is_deleted(
    path: Path, raw: sqlite3.Connection
) -> None:
    cache = SQLiteCache(path, strict=True)
    cache.update(Q, L, gens("rome"))
    key_q = key_of(cache, Q)
    raw.execute("DELETE FROM gencache_entries")
    cache.update(P, L, gens("paris"))
    raw.execute(
        "INSERT INTO gencache_entries (key, expires_at, created_at, prompt, llm_string, payload)"
        " SELECT ?, expires_at, created_at, ?, llm_string, payload FROM gencache_entries",
        (key_q, Q.encode()),  # the copy even claims to be Q's in its columns
    )
    assert len(cache) == 2
    assert cache.lookup(Q, L) is None
    assert rows(raw) == [P.encode()]
    assert cache.lookup(P, L) == gens("paris")


HOLD = 60  # seconds the other process keeps the lock at most; the caches wait up to 600


def hold(path: Path) -> subprocess.Popen[str]:
    """Start a process that holds the file's write lock until told (or HOLD s pass)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite._worker", "hold", str(path), str(HOLD)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def locked(path: Path) -> bool:
    """Whether another process holds the write lock now (asked without waiting)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        message = str(exc)
    else:
        message = ""
    finally:
        db.close()
    return message == "database is locked"


@pytest.mark.parametrize("damage", [*DAMAGE, "another-key"])
def test_a_lookup_never_waits_for_another_process_to_delete_a_bad_row(
    path: Path, raw: sqlite3.Connection, damage: str
) -> None:
    """The lookup is a miss at once; the row goes later, once the lock is free.

    The cache's busy_timeout is 600 s and the other process holds the lock until told:
    a lookup that waited for the lock would return only after the lock was released.
    """
    cache = SQLiteCache(path, strict=True, busy_timeout=600)
    cache.update(P, L, gens("paris"))
    if damage == "another-key":
        cache.update(Q, L, gens("rome"))
        key_q = key_of(cache, Q)
        raw.execute("DELETE FROM gencache_entries WHERE key = ?", (key_q,))
        raw.execute("UPDATE gencache_entries SET key = ? WHERE key = ?", (key_q, key_of(cache, P)))
        asked = Q
    else:
        DAMAGE[damage](raw, key_of(cache, P))
        asked = P
    proc = hold(path)
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline() == "held\n"
        assert cache.lookup(asked, L) is None
        assert locked(path)  # the lookup returned while the other process still held it
        assert len(rows(raw)) == 1  # not deleted: that would have meant waiting
        proc.stdin.write("release\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "released\n"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert cache.lookup(asked, L) is None  # now it is deleted
    assert rows(raw) == []
    assert cache.stats().misses == 2


@pytest.mark.parametrize("policy", ["fifo", "lru"])
def test_hits_never_wait_for_another_process_holding_the_write_lock(
    path: Path, raw: sqlite3.Connection, policy: str
) -> None:
    """Whatever a hit writes on the side (LRU recency, statistics) waits for a free lock.

    300 distinct hits, twice: more than the batches a hit would write at once.
    """
    cache = SQLiteCache(path, strict=True, busy_timeout=600, policy=policy)
    prompts = [f"prompt {i}" for i in range(300)]
    for p in prompts:
        cache.update(p, L, gens(p))
    proc = hold(path)
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline() == "held\n"
        assert [cache.lookup(p, L) for p in prompts * 2] == [gens(p) for p in prompts * 2]
        assert locked(path)  # every hit returned while the other process held the lock
        proc.stdin.write("release\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "released\n"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert cache.stats().hits == 600
    cache.close()


def test_an_expired_row_is_a_miss_left_for_the_next_write(
    path: Path, raw: sqlite3.Connection
) -> None:
    """The lookup does not delete it (so explain() in any process can name it); the next
    write's purge does, and counts it as expired."""
    clock = [1_000.0]
    cache = SQLiteCache(path, ttl=10, timer=lambda: clock[0])
    cache.update(P, L, gens("paris"))
    clock[0] += 30
    assert cache.lookup(P, L) is None
    assert rows(raw) == [P.encode()]
    assert cache.explain(P, L).differences == ("expired 20 s ago",)
    cache.update(Q, L, gens("rome"))
    assert rows(raw) == [Q.encode()]
    assert cache.stats().expirations == 1
    assert cache.explain(P, L).differences == ("expired 20 s ago",)  # remembered
