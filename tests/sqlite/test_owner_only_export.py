"""A CLI export over an existing, readable file leaves it owner-only.

(A new export: tests/cli/test_sqlite_commands.py; the database, WAL and SHM files:
tests/sqlite/test_files.py; a Redis export: tests/redis/test_secrets.py.)
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gencache.sqlite import SQLiteCache
from tests.cli.test_sqlite_commands import gencache
from tests.helpers import gens

pytestmark = pytest.mark.fault

L = "model='m' temperature=0"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_export_over_an_existing_readable_file_makes_it_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    with SQLiteCache(db) as cache:
        cache.update("a private prompt", L, gens("a private answer"))
    dump = tmp_path / "dump.jsonl"
    dump.write_text("")
    dump.chmod(0o644)
    result = gencache("export", str(db), "-o", str(dump))
    assert result.returncode == 0, result.stderr
    assert "a private answer" in dump.read_text()
    assert _mode(dump) == 0o600
