"""Who may write the file: modes the cache creates, files it refuses, read-only access.

Root ignores permission bits, and CI runs as root. The tests that need a process that
cannot write a file run it in a subprocess that permission bits bind: as root, one
whose capability bounding set lacks ``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH`` and
``CAP_FOWNER`` (so root is held to the owner's bits, like any user; switching to
``nobody`` is not enough here, since the interpreter lives under ``/root``, mode 0700);
otherwise, as this user. The files get modes that bind either. Files owned by another
user are made with ``chown`` when root; otherwise with bits that let others write them.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gencache.errors import BackendUnavailableError
from gencache.sqlite import SQLiteCache
from tests.helpers import FakeClock
from tests.sqlite._worker import LLM, value
from tests.sqlite.test_processes import ROOT

OTHER = 65534  # nobody
ROOT_USER = os.geteuid() == 0
KEYS = 300  # more than the 256 pending LRU hits that make a hit write them
PR_CAPBSET_DROP = 24  # from <linux/prctl.h>


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary directory, removed (its modes restored first) whoever runs the test."""
    top = Path(tempfile.mkdtemp(prefix="gencache-perm-"))
    yield top
    for where, dirs, _ in os.walk(top):
        for d in dirs:
            (Path(where) / d).chmod(0o700)  # so that rmtree may enter and empty it
    shutil.rmtree(top)


def populate(path: Path, n: int = KEYS) -> None:
    with SQLiteCache(path, strict=True) as cache:
        for i in range(n):
            cache.update(f"key {i}", LLM, value(f"key {i}"))


def _obey_permission_bits() -> None:
    """In the child, before exec: drop the capabilities that let root ignore modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_bound_process(path: Path, options: dict[str, Any], n: int = KEYS) -> dict[str, Any]:
    """Run the ``inspect`` worker on ``path`` in a process that permission bits bind."""
    command = ["-m", "tests.sqlite._worker", "inspect", str(path), str(n), json.dumps(options)]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=_obey_permission_bits if ROOT_USER else None,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def give_to_other_user(*paths: Path) -> None:
    if ROOT_USER:
        for p in paths:
            os.chown(p, OTHER, OTHER)


# -- what the cache creates ---------------------------------------------------------------


@pytest.mark.parametrize("existing", ["d", ""])
def test_every_new_directory_is_0700_and_every_file_0600_under_umask_000(
    tmp_path: Path, umask_000: None, existing: str
) -> None:
    if existing:
        (tmp_path / existing).mkdir(mode=0o755)
    path = tmp_path / "d" / "a" / "b" / "c.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("p", LLM, value("p"))
        created = ["d/a", "d/a/b"] if existing else ["d", "d/a", "d/a/b"]
        assert {d: mode(tmp_path / d) for d in created} == dict.fromkeys(created, 0o700)
        files = ["c.sqlite3", "c.sqlite3-wal", "c.sqlite3-shm"]
        assert {f: mode(path.parent / f) for f in files} == dict.fromkeys(files, 0o600)
    if existing:
        assert mode(tmp_path / existing) == 0o755  # not ours: left as it was


# -- what the cache refuses ---------------------------------------------------------------


def shared_file(path: Path) -> None:
    path.chmod(0o666)


def shared_dir(path: Path) -> None:
    path.parent.chmod(0o777)


def sticky_dir(path: Path) -> None:
    path.parent.chmod(0o1777)  # /tmp: anyone may plant the -wal or -journal file


def group_dir(path: Path) -> None:
    path.parent.chmod(0o770)


def others_file(path: Path) -> None:
    path.chmod(0o644)
    give_to_other_user(path)
    if not ROOT_USER:  # no chown without root: a file others can write is the same risk
        path.chmod(0o646)


def others_dir(path: Path) -> None:
    path.parent.chmod(0o755)
    give_to_other_user(path.parent)
    if not ROOT_USER:
        path.parent.chmod(0o757)


SHARING = {
    f.__name__: f for f in (shared_file, shared_dir, sticky_dir, group_dir, others_file, others_dir)
}


@pytest.mark.parametrize("readonly", [False, True], ids=["read-write", "readonly"])
@pytest.mark.parametrize("sharing", SHARING)
def test_a_file_or_directory_another_user_can_write_is_refused_unless_allowed(
    tmp_path: Path, sharing: str, readonly: bool
) -> None:
    path = tmp_path / "cache" / "c.sqlite3"
    populate(path, 3)
    SHARING[sharing](path)
    expected = "its directory" if sharing.endswith("dir") else "the file can be written"
    with pytest.raises(BackendUnavailableError, match=r"can be written by another user") as info:
        SQLiteCache(path, readonly=readonly)
    message = str(info.value)
    assert str(path) in message
    assert "allow_shared=True" in message
    assert expected in message
    with SQLiteCache(path, readonly=readonly, allow_shared=True, strict=True) as cache:
        assert cache.lookup("key 1", LLM) == value("key 1")


def test_a_file_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BackendUnavailableError, match="not a regular file"):
        SQLiteCache(fifo)  # opening a FIFO would block for ever
    with pytest.raises(BackendUnavailableError, match="not a regular file"):
        SQLiteCache("/dev/null", allow_shared=True)


# -- read-only access ---------------------------------------------------------------------


@pytest.fixture
def read_only_cache(workdir: Path) -> Path:
    """A cache of KEYS entries that may be read, but neither it nor its directory written."""
    path = workdir / "cache" / "c.sqlite3"
    populate(path)
    path.chmod(0o444)
    path.parent.chmod(0o555)
    return path


@pytest.mark.parametrize("writer", [False, True], ids=["closed", "while-another-writes"])
@pytest.mark.parametrize("strict", [False, True])
def test_readonly_inspection_needs_no_write_access(
    read_only_cache: Path, strict: bool, writer: bool
) -> None:
    """Alone, it reads the file; beside a writer, also what is still in the writer's WAL."""
    n = KEYS
    if writer:  # this process (root) may write; the inspecting one may not
        writing = SQLiteCache(read_only_cache)
        for i in range(KEYS, KEYS + 20):
            writing.update(f"key {i}", LLM, value(f"key {i}"))
        n += 20
    report = as_bound_process(read_only_cache, {"readonly": True, "strict": strict}, n)
    assert (report["hits"], report["misses"]) == (2 * n, 0)
    assert report["len"] == report["entries"] == n
    assert report["new"] is False
    if strict:
        assert "readonly database" in report["update"]
    else:
        assert report["update"] is None
        assert any("update failed" in w for w in report["warnings"])
    if writer:
        writing.close()
    assert sorted(p.name for p in read_only_cache.parent.iterdir()) == ["c.sqlite3"]


def test_a_read_write_open_without_write_access_says_to_use_readonly(
    read_only_cache: Path,
) -> None:
    report = as_bound_process(read_only_cache, {})
    assert report["error"].startswith("BackendUnavailableError")
    assert "cannot write its directory" in report["error"]
    assert "readonly=True" in report["error"]


@pytest.mark.parametrize("readonly", [False, True], ids=["read-write", "readonly"])
def test_an_unreadable_file_says_it_is_a_permission_problem(
    read_only_cache: Path, readonly: bool
) -> None:
    read_only_cache.chmod(0o000)
    report = as_bound_process(read_only_cache, {"readonly": readonly})
    assert "permission denied" in report["error"]
    assert "cannot read the file" in report["error"]


@pytest.mark.parametrize("readonly", [False, True], ids=["read-only-file", "readonly=True"])
def test_lru_hits_on_a_file_this_process_cannot_write_stay_hits(
    workdir: Path, readonly: bool
) -> None:
    """The recency write fails (or is never tried): never an error, never a miss."""
    path = workdir / "cache" / "c.sqlite3"
    populate(path)
    path.chmod(0o444)  # the file is read-only; its directory is writable (-shm)
    options: dict[str, Any] = {"policy": "lru", "strict": True}
    if readonly:
        options["readonly"] = True
    report = as_bound_process(path, options)
    assert (report["hits"], report["misses"]) == (2 * KEYS, 0)
    assert "readonly database" in report["update"]  # strict: a write does raise
    touches = [w for w in report["warnings"] if "could not record LRU hits" in w]
    if readonly:
        assert touches == []  # opened for reading: recency is not even tried
    else:
        assert touches
        assert all("readonly database" in w for w in touches)


# -- schema versions ----------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE gencache_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO gencache_meta VALUES ('schema_version', 1), ('count', 0);
CREATE TABLE gencache_entries (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, expires_at REAL,
    created_at REAL NOT NULL, prompt BLOB NOT NULL, llm_string BLOB NOT NULL,
    payload BLOB NOT NULL);
CREATE INDEX gencache_entries_expires ON gencache_entries (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TRIGGER gencache_count_insert AFTER INSERT ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value + 1 WHERE name = 'count'; END;
CREATE TRIGGER gencache_count_delete AFTER DELETE ON gencache_entries
    BEGIN UPDATE gencache_meta SET value = value - 1 WHERE name = 'count'; END;
INSERT INTO gencache_entries (key, expires_at, created_at, prompt, llm_string, payload)
VALUES ('b1cf7661f7bb2da08081ee72ee2927150e6f7bae00a332e5963e28f8795f5887', NULL,
    1700000000.0, CAST('p' AS BLOB), CAST('l' AS BLOB),
    CAST('{"g":[{"t":"gen","text":"x"}],"v":1}' AS BLOB));
"""
"""A file as gencache 0.1 wrote it: schema version 1, one entry for ("p", "l")."""


def v1_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V1_SCHEMA)
    db.close()
    path.chmod(0o600)


def test_a_0_1_file_is_migrated_on_a_read_write_open_and_its_rows_are_misses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    v1_file(path)
    with pytest.raises(BackendUnavailableError, match="open it once with write access"):
        SQLiteCache(path, readonly=True)
    with SQLiteCache(path, strict=True) as cache:
        assert cache.lookup("p", "l") is None  # keyed by 0.1's digest: never found
        assert [e.prompt for e in cache.entries()] == ["p"]  # kept, and exportable
        cache.update("p", "l", value("p"))
        assert cache.lookup("p", "l") == value("p")
        assert len(cache) == 2
    db = sqlite3.connect(path)
    try:
        version = "SELECT value FROM gencache_meta WHERE name = 'schema_version'"
        assert db.execute(version).fetchone() == (2,)
        columns = [r[1] for r in db.execute("PRAGMA table_info(gencache_entries)")]
        assert "scope" in columns
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    with SQLiteCache(path, readonly=True, strict=True) as reader:
        assert reader.lookup("p", "l") == value("p")


def test_a_readonly_cache_counts_expired_rows_instead_of_purging_them(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    clock = FakeClock()
    with SQLiteCache(path, ttl=10, timer=clock) as writer:
        for i in range(5):
            writer.update(f"p{i}", LLM, value(f"p{i}"))
            clock.advance(1)
    clock.advance(7)  # p0, p1 and p2 have expired
    for strict in (False, True):
        with SQLiteCache(path, readonly=True, strict=strict, timer=clock) as reader:
            assert len(reader) == reader.stats().size == 2
            assert sorted(e.prompt for e in reader.entries()) == ["p3", "p4"]
            assert reader.lookup("p0", LLM) is None
            assert reader.lookup("p4", LLM) == value("p4")
    with SQLiteCache(path, timer=clock) as again:
        assert len(list(again.entries(expired=True))) == 5  # all still there
