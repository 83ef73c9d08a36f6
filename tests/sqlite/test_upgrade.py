"""A file written by gencache 0.1: opened, migrated, and its rows are misses, not errors.

The file is built with plain ``sqlite3`` exactly as 0.1 wrote it: schema version 1 (no
``scope`` column), rows keyed by a key-version-1 digest of the prompt as LangChain passed
it, payloads in codec format 1. docs/keys.md and docs/backends.md promise that such rows
are misses (the first call after upgrading goes to the model) and stay until cleared.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
import warnings
from pathlib import Path

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage

from gencache import control
from gencache.sqlite import SQLiteCache
from tests.helpers import gens

P, L = "What is the capital of France?", "model='m' temperature=0"
CHAT = dumps([HumanMessage("Hello"), AIMessage("Hi.", id="resp-1"), HumanMessage("Capital?")])

# gencache 0.1's tables (schema version 1), as its sqlite.py created them.
SCHEMA_0_1 = """
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


def digest_0_1(prompt: str, llm_string: str) -> str:
    """gencache 0.1's key (key version 1): no scope, the prompt as LangChain passed it."""
    p, s = prompt.encode("utf-8", "surrogatepass"), llm_string.encode("utf-8", "surrogatepass")
    h = hashlib.sha256(b"gencache-key-v1\x00")
    for part in (p, s):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


PAYLOADS_0_1 = {
    P: b'{"g":[{"t":"gen","text":"paris"}],"v":1}',
    CHAT: b'{"g":[{"message":{"content":"Paris.","t":"ai"},"t":"chat_gen"}],"v":1}',
}


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """A cache file as gencache 0.1 left it: two entries, one plain and one chat prompt."""
    path = tmp_path / "cache.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA_0_1)
    now = time.time()
    for prompt, payload in PAYLOADS_0_1.items():
        db.execute(
            "INSERT INTO gencache_entries (key, expires_at, created_at, prompt, llm_string,"
            " payload) VALUES (?, NULL, ?, ?, ?, ?)",
            (digest_0_1(prompt, L), now, prompt.encode(), L.encode(), payload),
        )
    db.close()
    return path


def _rows(path: Path) -> list[tuple[str, bytes]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT key, payload FROM gencache_entries ORDER BY seq").fetchall()
    finally:
        db.close()


def _schema_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        (version,) = db.execute(
            "SELECT value FROM gencache_meta WHERE name = 'schema_version'"
        ).fetchone()
        return int(version)
    finally:
        db.close()


def test_rows_of_0_1_are_misses_without_errors_or_warnings(
    old_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = _rows(old_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with caplog.at_level(logging.DEBUG, logger="gencache"):
            cache = SQLiteCache(old_file, strict=True)  # strict: an error would raise
            try:
                for _ in range(50):  # many lookups: still no log line, no warning
                    assert cache.lookup(P, L) is None
                    assert cache.lookup(CHAT, L) is None
                with control(scope="tenant-a"):
                    assert cache.lookup(P, L) is None
                assert len(cache) == 2  # the old rows stay until cleared or evicted
                assert _rows(old_file) == before  # untouched: no row deleted as damaged
                stats = cache.stats()
                assert (stats.hits, stats.misses) == (0, 101)
                cache.update(P, L, gens("paris, again"))  # the first call after upgrading
                assert cache.lookup(P, L) == gens("paris, again")
                assert len(cache) == 3
            finally:
                cache.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert _schema_version(old_file) == 2  # migrated in place on the read-write open


def test_clear_removes_the_rows_of_0_1(old_file: Path) -> None:
    with SQLiteCache(old_file) as cache:
        cache.update(P, L, gens("new"))
        assert len(cache) == 3
        cache.clear()
        assert len(cache) == 0
    assert _rows(old_file) == []


async def test_async_lookups_of_0_1_rows_are_misses(old_file: Path) -> None:
    with SQLiteCache(old_file, strict=True) as cache:
        assert await cache.alookup(P, L) is None
        assert await cache.alookup(CHAT, L) is None
        await cache.aupdate(CHAT, L, gens("Paris."))
        assert await cache.alookup(CHAT, L) == gens("Paris.")
    assert len(_rows(old_file)) == 3
