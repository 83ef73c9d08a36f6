"""Single-flight leases in the SQLite file: the owner's write drops its lease in its transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gencache import SQLiteCache
from gencache.sqlite._lease import SQLiteLeases
from tests.helpers import gens

P, L = "What is the capital of France?", "model='m' temperature=0"


def _leases(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, failed FROM gencache_leases").fetchall()


@pytest.mark.parametrize("options", [{}, {"maxsize": 10, "ttl": 60}], ids=["plain", "bounded"])
def test_the_owner_s_write_drops_its_lease(
    tmp_path: Path, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = SQLiteCache(path, single_flight=True, strict=True, **options)
    try:
        assert cache.lookup(P, L) is None  # a miss: this process owns the flight and lease
        assert len(_leases(path)) == 1
        at_settle: list[list[tuple[Any, ...]]] = []
        release = SQLiteLeases.release

        def watched(self: SQLiteLeases, *args: Any, **kwargs: Any) -> None:
            at_settle.append(_leases(path))
            release(self, *args, **kwargs)

        monkeypatch.setattr(SQLiteLeases, "release", watched)
        cache.update(P, L, gens("Paris"))
        assert at_settle == [[]]  # the write's transaction had dropped it already
        assert cache.lookup(P, L) == gens("Paris")
    finally:
        cache.close()


def test_a_failed_write_leaves_the_release_to_the_settle(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = SQLiteCache(path, single_flight=True)  # default policy: a failed write is logged
    try:
        assert cache.lookup(P, L) is None
        assert len(_leases(path)) == 1
        with sqlite3.connect(path) as db:  # make every write of an entry fail
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON gencache_entries"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        cache.update(P, L, gens("Paris"))  # never raises into the model call
        assert _leases(path) == []  # released when the flight settled
        assert cache.lookup(P, L) is None  # nothing was stored: a later call pays again
    finally:
        cache.close()
