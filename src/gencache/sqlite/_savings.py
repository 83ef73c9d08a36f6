"""Savings kept in the SQLite file: per-model totals and per-entry hit counts.

Two small tables, created on first use (files without them read as "nothing saved yet"):
``gencache_savings`` (one row per model) and ``gencache_hits`` (one row per entry that was
hit; rows of entries that are gone are pruned every 64th batch).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping

from gencache.sqlite._conn import BusyError, Connections, immediate
from gencache.stats import Savings

__all__ = ["SQLiteSavings"]

_PRUNE_EVERY = 64

_CREATE = (
    "CREATE TABLE IF NOT EXISTS gencache_savings (model TEXT PRIMARY KEY,"
    " calls INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"
    " seconds REAL NOT NULL, money REAL)",
    "CREATE TABLE IF NOT EXISTS gencache_hits (key TEXT PRIMARY KEY, hits INTEGER NOT NULL)",
)
_ADD = (
    "INSERT INTO gencache_savings VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model) DO UPDATE SET"
    " calls = calls + excluded.calls, tokens_in = tokens_in + excluded.tokens_in,"
    " tokens_out = tokens_out + excluded.tokens_out, seconds = seconds + excluded.seconds,"
    " money = CASE WHEN excluded.money IS NULL THEN money"
    " ELSE coalesce(money, 0) + excluded.money END"
)
_HIT = (
    "INSERT INTO gencache_hits VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET hits = hits + excluded.hits"
)
_PRUNE = "DELETE FROM gencache_hits WHERE key NOT IN (SELECT key FROM gencache_entries)"
_READ = "SELECT model, calls, tokens_in, tokens_out, seconds, money FROM gencache_savings"
_HITS = "SELECT hits FROM gencache_hits WHERE key = ?"


class SQLiteSavings:
    """The :class:`~gencache._savings.SavingsStore` of one file. Thread- and process-safe."""

    def __init__(self, conns: Connections) -> None:
        self._conns = conns
        self._batches = 0
        # Batches that found the file busy, written with the next one (see add_savings).
        self._held: tuple[dict[str, Savings], dict[str, int]] = ({}, {})
        self._held_lock = threading.Lock()

    def add_savings(self, by_model: Mapping[str, Savings], hits: Mapping[str, int]) -> None:
        """Add one batch, and any held one, in one transaction that never waits.

        A batch is flushed from inside a lookup hit, and a hit never waits for another
        connection's write lock: if the file is busy, the batch is held in memory and
        written with the next one (lost only if the process ends first). A read-only
        cache records nothing.
        """
        if self._conns.readonly:
            return
        with self._held_lock:
            models, counts = self._held
            self._held = ({}, {})
        _merge(models, counts, by_model, hits)
        self._batches += 1
        prune = self._batches % _PRUNE_EVERY == 0
        try:
            self._conns.run(self._add, models, counts, prune, write=True, wait=False)
        except BusyError:
            with self._held_lock:
                _merge(*self._held, models, counts)

    def _add(
        self,
        db: sqlite3.Connection,
        by_model: Mapping[str, Savings],
        hits: Mapping[str, int],
        prune: bool,
    ) -> None:
        with immediate(db):
            for statement in _CREATE:
                db.execute(statement)
            db.executemany(
                _ADD,
                [
                    (m, s.calls, s.input_tokens, s.output_tokens, s.seconds, s.money)
                    for m, s in by_model.items()
                ],
            )
            db.executemany(_HIT, list(hits.items()))
            if prune:
                db.execute(_PRUNE)

    def savings(self) -> dict[str, Savings]:
        """Totals per model ({} before the first batch)."""
        try:
            rows = self._conns.run(lambda db: db.execute(_READ).fetchall())
        except Exception:  # no table yet (or a read-only snapshot without it)
            return {}
        found = {}
        for model, calls, tin, tout, seconds, money in rows:
            found[str(model)] = Savings(
                int(calls),
                int(tin),
                int(tout),
                float(seconds),
                None if money is None else float(money),
            )
        return found

    def hits(self, digest: str) -> int:
        """How often the entry was hit, by every process (batched: may lag a second)."""
        try:
            row = self._conns.run(lambda db: db.execute(_HITS, (digest,)).fetchone())
        except Exception:
            return 0
        return int(row[0]) if row else 0


def _merge(
    models: dict[str, Savings],
    counts: dict[str, int],
    by_model: Mapping[str, Savings],
    hits: Mapping[str, int],
) -> None:
    """Add ``by_model`` and ``hits`` into ``models`` and ``counts``."""
    for model, saved in by_model.items():
        models[model] = models.get(model, Savings()) + saved
    for key, n in hits.items():
        counts[key] = counts.get(key, 0) + n
