"""The SQLite backend under test: every cache on a fresh file in its own temp directory."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from gencache import GenCache
from gencache.sqlite import SQLiteCache
from tests.backends import Backend

_ROOT = Path(tempfile.mkdtemp(prefix="gencache-sqlite-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def _make(**options: Any) -> GenCache:
    return SQLiteCache(Path(tempfile.mkdtemp(dir=_ROOT)) / "cache.sqlite3", **options)


def _reopen(cache: GenCache) -> GenCache:
    assert isinstance(cache, SQLiteCache)
    return SQLiteCache(cache.path)


def _damage(cache: GenCache, prompt: str, llm_string: str) -> None:
    assert isinstance(cache, SQLiteCache)
    (key,) = [e.key for e in cache.entries() if (e.prompt, e.llm_string) == (prompt, llm_string)]
    with closing(sqlite3.connect(cache.path, isolation_level=None)) as db:
        db.execute("UPDATE gencache_entries SET payload = ? WHERE key = ?", (b"\x80 not json", key))


BACKEND = Backend(
    "sqlite",
    _make,
    frozenset({"maxsize", "policy", "ttl", "timer", "shared", "damage", "expired_rows"}),
    _reopen,
    _damage,
)
