"""The SQLite cache's tables and statements, as data.

``seq`` is both the rowid and the policy order (write order under FIFO, use order under
LRU): the victim is the first row, new rows append at the right edge of the table, and no
order index has to be written. Triggers keep the row count, so bounds cost O(1). A
replacement policy is a set of statements (:class:`OrderSQL`), diskcache's shape: the
store runs whichever its policy names and never branches on the policy itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANY_EXPIRED",
    "COUNT",
    "COUNT_EXPIRED",
    "COUNT_ROWS",
    "CREATE",
    "DELETE",
    "DELETE_ALL",
    "DELETE_EXPIRED",
    "DELETE_SCOPE",
    "ENTRIES",
    "EXPIRY",
    "GET",
    "MIGRATIONS",
    "ORDERS",
    "PURGE",
    "PURGE_ALL",
    "REPAIR_COUNT",
    "SCHEMA_VERSION",
    "OrderSQL",
]

SCHEMA_VERSION: int = 2
"""Version of the tables, kept in ``gencache_meta``; a file with a newer one is refused."""

CREATE = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS gencache_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO gencache_meta VALUES ('schema_version', 2), ('count', 0);
CREATE TABLE IF NOT EXISTS gencache_entries (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, expires_at REAL,
    created_at REAL NOT NULL, prompt BLOB NOT NULL, llm_string BLOB NOT NULL,
    payload BLOB NOT NULL, scope TEXT);
CREATE INDEX IF NOT EXISTS gencache_entries_expires ON gencache_entries (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS gencache_entries_scope ON gencache_entries (scope)
    WHERE scope IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS gencache_count_insert AFTER INSERT ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value + 1 WHERE name = 'count'; END;
CREATE TRIGGER IF NOT EXISTS gencache_count_delete AFTER DELETE ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value - 1 WHERE name = 'count'; END;
COMMIT;
"""

#: Statements that bring a file of version ``v`` to ``v + 1``, run in one transaction.
#: Rows written by 0.1 (version 1) stay, and are misses: their keys are of key version 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE gencache_entries ADD COLUMN scope TEXT",
        "CREATE INDEX IF NOT EXISTS gencache_entries_scope ON gencache_entries (scope)"
        " WHERE scope IS NOT NULL",
        "UPDATE gencache_meta SET value = 2 WHERE name = 'schema_version'",
    ),
}

GET = "SELECT payload, expires_at, created_at FROM gencache_entries WHERE key = ?"
EXPIRY = "SELECT expires_at FROM gencache_entries WHERE key = ?"
COUNT = "SELECT value FROM gencache_meta WHERE name = 'count'"
COUNT_ROWS = "SELECT count(*) FROM gencache_entries"
REPAIR_COUNT = "INSERT OR REPLACE INTO gencache_meta VALUES ('count', ?)"
DELETE = "DELETE FROM gencache_entries WHERE key = ? AND payload = ?"
DELETE_EXPIRED = "DELETE FROM gencache_entries WHERE key = ? AND expires_at <= ?"
DELETE_ALL = "DELETE FROM gencache_entries"
DELETE_SCOPE = "DELETE FROM gencache_entries WHERE scope = ?"
COUNT_EXPIRED = "SELECT count(*) FROM gencache_entries WHERE expires_at <= ?"
ANY_EXPIRED = "SELECT 1 FROM gencache_entries WHERE expires_at <= ? LIMIT 1"
PURGE_ALL = "DELETE FROM gencache_entries WHERE expires_at <= ?"
PURGE = (
    "DELETE FROM gencache_entries WHERE seq IN (SELECT seq FROM gencache_entries"
    " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)
ENTRIES = (
    "SELECT key, prompt, llm_string, payload, created_at, expires_at, scope"
    " FROM gencache_entries"
    " WHERE key > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"
)

_INSERT = (
    "INSERT INTO gencache_entries"
    " (key, expires_at, created_at, prompt, llm_string, payload, scope)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET expires_at ="
    " excluded.expires_at, created_at = excluded.created_at, payload = excluded.payload"
)
_TO_BACK = "seq = (SELECT max(seq) FROM gencache_entries) + 1"


@dataclass(frozen=True, slots=True)
class OrderSQL:
    """A replacement policy as statements.

    Attributes:
        upsert: Insert a row or replace its value (parameters: key, expires_at,
            created_at, prompt, llm_string, payload, scope).
        touch: Move a hit row to the back of the line (parameter: key), or ``None`` when
            hits do not change the order.
        evict: Delete the first N rows in policy order (parameter: N).
    """

    upsert: str
    touch: str | None
    evict: str


ORDERS: dict[str, OrderSQL] = {
    # FIFO: a re-update keeps its place, as in LangChain's InMemoryCache.
    "fifo": OrderSQL(
        upsert=_INSERT,
        touch=None,
        evict="DELETE FROM gencache_entries"
        " WHERE seq IN (SELECT seq FROM gencache_entries ORDER BY seq LIMIT ?)",
    ),
    # LRU: a hit or a re-update makes the row the most recent.
    "lru": OrderSQL(
        upsert=f"{_INSERT}, {_TO_BACK}",
        touch="UPDATE gencache_entries SET seq = (SELECT max(seq) FROM gencache_entries) + 1"
        " WHERE key = ? AND seq < (SELECT max(seq) FROM gencache_entries)",
        evict="DELETE FROM gencache_entries"
        " WHERE seq IN (SELECT seq FROM gencache_entries ORDER BY seq LIMIT ?)",
    ),
}
