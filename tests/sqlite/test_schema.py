"""The statements (SQL as data, ``gencache.sqlite._schema``) use the indexes they were
written for: no statement run per call or per scope scans the table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gencache import control
from gencache.sqlite import SQLiteCache
from gencache.sqlite import _schema as sql
from tests.helpers import gens

L = "llm"

INDEXED = {
    "GET": (sql.GET, ("k",), "sqlite_autoindex_gencache_entries_1"),
    "EXPIRY": (sql.EXPIRY, ("k",), "sqlite_autoindex_gencache_entries_1"),
    "DELETE": (sql.DELETE, ("k", b"v"), "sqlite_autoindex_gencache_entries_1"),
    "DELETE_EXPIRED": (sql.DELETE_EXPIRED, ("k", 1.0), "sqlite_autoindex_gencache_entries_1"),
    "DELETE_SCOPE": (sql.DELETE_SCOPE, ("tenant",), "gencache_entries_scope"),
    "ANY_EXPIRED": (sql.ANY_EXPIRED, (1.0,), "gencache_entries_expires"),
    "COUNT_EXPIRED": (sql.COUNT_EXPIRED, (1.0,), "gencache_entries_expires"),
    "PURGE_ALL": (sql.PURGE_ALL, (1.0,), "gencache_entries_expires"),
    "PURGE": (sql.PURGE, (1.0, 16), "gencache_entries_expires"),
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = tmp_path / "c.sqlite3"
    with SQLiteCache(path, ttl=60) as cache:  # a real file, with rows in every index
        for i in range(200):
            with control(scope=f"tenant {i % 3}" if i % 2 else None):
                cache.update(f"p{i}", L, gens(str(i)))
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    yield conn
    conn.close()


@pytest.mark.parametrize("name", INDEXED)
def test_each_statement_searches_its_index(db: sqlite3.Connection, name: str) -> None:
    statement, params, index = INDEXED[name]
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
    assert any(index in step for step in plan), plan
    assert not any(step.startswith("SCAN gencache_entries") for step in plan), plan


def test_clear_of_a_scope_deletes_exactly_its_rows(tmp_path: Path) -> None:
    with SQLiteCache(tmp_path / "c.sqlite3", strict=True) as cache:
        for i in range(30):
            with control(scope=f"tenant {i % 3}" if i % 2 else None):
                cache.update(f"p{i}", L, gens(str(i)))
        before = {(e.scope, e.prompt) for e in cache.entries()}
        cache.clear(scope="tenant 1")
        after = {(e.scope, e.prompt) for e in cache.entries()}
        assert after == {(s, p) for s, p in before if s != "tenant 1"}
        assert len(before) - len(after) == 5
        cache.clear()
        assert list(cache.entries()) == []
