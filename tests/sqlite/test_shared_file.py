"""Caches with different settings on one file agree on what is there."""

from __future__ import annotations

from pathlib import Path

from gencache.sqlite import SQLiteCache
from tests.helpers import FakeClock, gens

L = "llm"


def test_a_smaller_maxsize_is_enforced_by_the_next_new_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with SQLiteCache(path) as unbounded:
        for i in range(10):
            unbounded.update(f"p{i}", L, gens(str(i)))
    with SQLiteCache(path, maxsize=3) as bounded:
        bounded.update("p9", L, gens("again"))  # a re-update never evicts
        assert len(bounded) == 10
        bounded.update("new", L, gens("new"))
        assert len(bounded) == 3
        assert bounded.stats().evictions == 8
        assert [bounded.lookup(k, L) is not None for k in ("p8", "p9", "new")] == [True] * 3


def test_expiry_is_the_rows_whatever_the_reader_ttl(tmp_path: Path) -> None:
    path, clock = tmp_path / "c.sqlite3", FakeClock()
    writer = SQLiteCache(path, ttl=10, timer=clock)
    reader = SQLiteCache(path, timer=clock)  # no ttl of its own
    writer.update("p", L, gens("x"))
    clock.advance(9)
    assert reader.lookup("p", L) == gens("x")
    clock.advance(1)
    assert reader.lookup("p", L) is None
    assert reader.stats().expirations == 1  # this cache removed it
    assert writer.stats().expirations == 0
    assert len(writer) == 0


def test_two_caches_in_one_process_share_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first, second = SQLiteCache(path, maxsize=4), SQLiteCache(path, maxsize=4)
    for i in range(6):
        (first if i % 2 else second).update(f"p{i}", L, gens(str(i)))
    assert len(first) == len(second) == 4
    assert first.stats().evictions + second.stats().evictions == 2
    assert {e.prompt for e in first.entries()} == {"p2", "p3", "p4", "p5"}
