"""Bad data and failing databases: the error policy, and async calls that never block."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gencache._keys import digest
from gencache.errors import BackendError
from gencache.sqlite import SQLiteCache
from tests.helpers import gens

P, L = "What is the capital of France?", "llm"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@pytest.fixture
def other(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the same file, as another process would have."""
    SQLiteCache(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    yield db
    db.close()


def test_an_undecodable_payload_is_a_miss_is_deleted_and_logged_once(
    path: Path, other: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SQLiteCache(path, strict=True)
    other.execute(
        "INSERT INTO gencache_entries (key, created_at, prompt, llm_string, payload)"
        " VALUES (?, 0, ?, ?, ?)",
        (digest(P, L), P.encode(), L.encode(), b"\x80 not json"),
    )
    assert len(cache) == 1
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert cache.lookup(P, L) is None
        assert cache.lookup(P, L) is None
    assert len(cache) == 0
    records = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(records) == 1
    assert digest(P, L)[:16] in records[0].getMessage()
    assert (cache.stats().misses, cache.stats().hits) == (2, 0)
    cache.update(P, L, gens("fine"))
    assert cache.lookup(P, L) == gens("fine")


def test_another_writer_holding_the_lock(
    path: Path, other: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    lenient = SQLiteCache(path, busy_timeout=0.02)
    strict = SQLiteCache(path, busy_timeout=0.02, strict=True)
    lenient.update(P, L, gens("before"))
    other.execute("BEGIN EXCLUSIVE")
    try:
        # WAL: readers still read while another connection writes.
        assert lenient.lookup(P, L) == gens("before")
        assert strict.lookup(P, L) == gens("before")
        with caplog.at_level(logging.WARNING, logger="gencache"):
            lenient.update(P, L, gens("skipped"))  # skipped, not raised
        assert "update failed" in caplog.text
        assert str(path) in caplog.text
        with pytest.raises(BackendError, match=r"locked \(for 0.02 s and 3 more attempts\)"):
            strict.update(P, L, gens("raises"))
    finally:
        other.execute("ROLLBACK")
    assert lenient.lookup(P, L) == gens("before")
    assert lenient.stats().updates == 1  # skipped writes are not counted
    strict.update(P, L, gens("after"))
    assert lenient.lookup(P, L) == gens("after")


def test_a_database_that_became_unusable(
    path: Path, other: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    lenient = SQLiteCache(path, maxsize=10)
    strict = SQLiteCache(path, strict=True)
    lenient.update(P, L, gens("x"))
    other.execute("DROP TABLE gencache_entries")
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert lenient.lookup(P, L) is None
        lenient.update(P, L, gens("x"))
        lenient.clear()
        assert len(lenient) == 0
        assert lenient.stats().misses == 1
    assert "no such table" in caplog.text
    for call in (
        lambda: strict.lookup(P, L),
        lambda: strict.update(P, L, gens("x")),
        strict.clear,
        lambda: len(strict),
        strict.stats,
        lambda: list(strict.entries()),
    ):
        with pytest.raises(BackendError, match=str(path)):
            call()


async def test_async_calls_never_block_the_event_loop(
    path: Path, other: sqlite3.Connection
) -> None:
    cache = SQLiteCache(path, busy_timeout=5)
    for i in range(50):
        await cache.aupdate(f"p{i}", L, gens(str(i)))
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    other.execute("BEGIN IMMEDIATE")  # writers now wait for up to busy_timeout
    writes = [asyncio.create_task(cache.aupdate(f"new{i}", L, gens("n"))) for i in range(4)]
    hits = await asyncio.gather(*(cache.alookup(f"p{i % 50}", L) for i in range(200)))
    assert hits == [gens(str(i % 50)) for i in range(200)]
    before = len(gaps)
    await asyncio.sleep(0.5)
    assert not any(w.done() for w in writes)  # still waiting, in worker threads
    ticked = len(gaps) - before
    other.execute("COMMIT")
    await asyncio.gather(*writes)
    done.set()
    await beat
    # The loop ran on while four writers waited for the lock. A writer that waited on
    # the loop itself would have stopped it for busy_timeout (5 s): bounds far from both,
    # so that a slow machine cannot fail them.
    assert ticked >= 3, ticked
    assert max(gaps) < 2.5, max(gaps)
    assert all([await cache.alookup(f"new{i}", L) == gens("n") for i in range(4)])
