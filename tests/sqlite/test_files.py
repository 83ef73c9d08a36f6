"""The database file: where it goes, its permissions, what is refused, how it closes."""

from __future__ import annotations

import gc
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gencache import codec
from gencache.errors import BackendUnavailableError
from gencache.sqlite import SQLiteCache, default_path
from tests.helpers import FakeClock, chat_gens, gens

L = "llm"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run with umask 022, so that owner-only permissions must be set on purpose."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_new_directory_and_files_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "new" / "cache.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("p", L, gens("x"))
        assert mode(path.parent) == 0o700
        for name in ("cache.sqlite3", "cache.sqlite3-wal", "cache.sqlite3-shm"):
            assert mode(path.parent / name) == 0o600, name


def test_default_path_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "gencache" / "llm_cache.sqlite3"
    with SQLiteCache() as cache:
        assert cache.path == default_path()
        cache.update("p", L, gens("x"))
    assert mode(default_path().parent) == 0o700
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".cache" / "gencache" / "llm_cache.sqlite3"


@pytest.mark.parametrize("strict", [False, True])
def test_a_directory_is_refused(tmp_path: Path, strict: bool) -> None:
    with pytest.raises(BackendUnavailableError, match=r"is a directory") as info:
        SQLiteCache(tmp_path, strict=strict)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("strict", [False, True])
def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path, strict: bool) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(BackendUnavailableError, match="not a database") as info:
        SQLiteCache(path, strict=strict)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("strict", [False, True])
def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path, strict: bool) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    content = path.read_bytes()
    with pytest.raises(BackendUnavailableError, match=r"gencache did not create.*users"):
        SQLiteCache(path, strict=strict)
    assert path.read_bytes() == content


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    SQLiteCache(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE gencache_meta SET value = 99 WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(BackendUnavailableError, match="schema version 99"):
        SQLiteCache(path)


def test_a_path_under_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackendUnavailableError, match="cannot create"):
        SQLiteCache(tmp_path / "file" / "cache.sqlite3")


def test_an_empty_sqlite_file_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteCache(path) as cache:
        cache.update("p", L, gens("x"))
        assert cache.lookup("p", L) == gens("x")


BAD: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "path-int": ({"path": 10}, TypeError),
    "path-bytes": ({"path": b"cache.db"}, TypeError),
    "path-memory": ({"path": ":memory:"}, ValueError),
    "path-empty": ({"path": ""}, ValueError),
    "busy-negative": ({"busy_timeout": -1}, ValueError),
    "busy-inf": ({"busy_timeout": float("inf")}, ValueError),
    "busy-str": ({"busy_timeout": "1"}, TypeError),
    # Accepted by 0.1, then every call raised OverflowError (even with strict=False).
    "busy-1e10": ({"busy_timeout": 1e10}, ValueError),
    "busy-over-a-day": ({"busy_timeout": 86_401}, ValueError),
    "strict-int": ({"strict": 1}, TypeError),
    "readonly-str": ({"readonly": "yes"}, TypeError),
    "allow_shared-int": ({"allow_shared": 1}, TypeError),
    # A clock whose times cannot be stored or compared would break every call.
    "timer-str": ({"timer": lambda: "now"}, TypeError),
    "timer-none": ({"timer": lambda: None}, TypeError),
    "timer-nan": ({"timer": lambda: float("nan")}, ValueError),
    "timer-inf": ({"timer": lambda: float("inf")}, ValueError),
    "timer-huge-int": ({"timer": lambda: 10**400}, ValueError),
    "timer-int64-overflow": ({"timer": lambda: 2**63}, ValueError),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments(tmp_path: Path, case: str) -> None:
    options, error = BAD[case]
    options = {"path": tmp_path / "cache.sqlite3", **options}
    with pytest.raises(error, match=r"busy_timeout|strict|readonly|allow_shared|timer|path"):
        SQLiteCache(**options)
    assert not (tmp_path / "cache.sqlite3").exists()  # refused before touching the disk


EXTREME: dict[str, dict[str, Any]] = {
    "busy-a-day": {"busy_timeout": 86_400},
    "busy-0": {"busy_timeout": 0},
    "maxsize-2**80-ttl-1e300": {"maxsize": 2**80, "ttl": 1e300},
    "lru-maxsize-1-ttl-1e-300": {"maxsize": 1, "policy": "lru", "ttl": 1e-300},
    "timer-int": {"timer": lambda: 2**62},
    "timer-negative": {"timer": lambda: -1.5},
}


@pytest.mark.parametrize("case", EXTREME)
def test_extreme_arguments_that_are_accepted_work_on_every_call(tmp_path: Path, case: str) -> None:
    """What construction accepts, every call then handles (strict: nothing raises)."""
    options = EXTREME[case]
    with SQLiteCache(tmp_path / "cache.sqlite3", strict=True, **options) as cache:
        expiring = options.get("ttl") == 1e-300  # expired as soon as written
        for i in range(3):
            cache.update(f"p{i}", L, gens(str(i)))
        hit = cache.lookup("p2", L)
        assert hit == (None if expiring else gens("2"))
        size = 0 if expiring else min(3, options.get("maxsize", 3))
        assert len(cache) == cache.stats().size == size
        assert len(list(cache.entries())) == size
        cache.clear()
        assert len(cache) == 0


def test_close_closes_every_thread_connection_and_the_cache_reopens(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    wal = Path(f"{path}-wal")
    cache = SQLiteCache(path)
    cache.update("p", L, gens("x"))
    with ThreadPoolExecutor(4) as pool:
        barrier = threading.Barrier(4)

        def use(_: int) -> bool:
            barrier.wait()  # four distinct threads, four connections
            return cache.lookup("p", L) == gens("x")

        assert all(pool.map(use, range(4)))
    assert wal.exists()
    cache.close()
    assert not wal.exists()  # SQLite removes the WAL when the last connection closes
    assert cache.lookup("p", L) == gens("x")  # used again: reopens
    cache.close()


def in_threads(cache: SQLiteCache, n: int) -> list[bool]:
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda _: cache.lookup("p", L) == gens("x"), range(n)))


def test_threads_connections_close_when_the_cache_is_collected(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = SQLiteCache(path)
    cache.update("p", L, gens("x"))
    assert all(in_threads(cache, 30))
    del cache
    gc.collect()
    assert not Path(f"{path}-wal").exists()


def test_context_manager_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with SQLiteCache(path, maxsize=5, policy="lru") as cache:
        assert repr(cache) == f"SQLiteCache({str(path)!r}, maxsize=5, ttl=None, policy='lru')"
        cache.update("p", L, chat_gens("persisted"))
    with SQLiteCache(str(path)) as again:
        assert again.lookup("p", L) == chat_gens("persisted")


def test_entries_lists_live_entries_for_inspection(tmp_path: Path) -> None:
    clock = FakeClock()
    with SQLiteCache(tmp_path / "c.sqlite3", ttl=10, timer=clock) as cache:
        cache.update("old", L, gens("old"))
        clock.advance(5)
        prompts = [f"prompt {i}" for i in range(300)] + ["\ud800 lone surrogate", "nul \x00"]
        for p in prompts:
            cache.update(p, "llm \udfff", gens(p))
        clock.advance(5)  # "old" has expired
        entries = list(cache.entries())
        assert sorted(e.prompt for e in entries) == sorted(prompts)
        assert len({e.key for e in entries}) == len(prompts)
        for e in entries:
            assert e.llm_string == "llm \udfff"
            assert codec.decode(e.payload) == gens(e.prompt)
            assert (e.created_at, e.expires_at) == (1_005.0, 1_015.0)
        assert cache.stats().hits == 0


def test_lru_hits_reach_the_file_for_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first = SQLiteCache(path, maxsize=2, policy="lru")
    first.update("a", L, gens("a"))
    first.update("b", L, gens("b"))
    assert first.lookup("a", L) == gens("a")
    first.close()  # writes the pending hit on "a"
    with SQLiteCache(path, maxsize=2, policy="lru") as second:
        second.update("c", L, gens("c"))  # evicts "b", the least recently used
        assert [second.lookup(k, L) is not None for k in "abc"] == [True, False, True]
