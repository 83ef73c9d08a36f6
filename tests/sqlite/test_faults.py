"""SQLiteCache when the file or its disk misbehaves: what the application sees, and after.

Each test arranges one fault for real (another process, a read-only or full file system,
a damaged file, a killed writer) and checks the documented policy: with ``strict=False``
the application never sees an exception (a miss, or a skipped write, and a warning);
with ``strict=True`` it gets :class:`~gencache.errors.BackendError`; where the file cannot
be used at all, construction raises :class:`~gencache.errors.BackendUnavailableError`
whatever ``strict`` is. LangChain calls go through a real ``FakeListChatModel``.

Complements tests/sqlite/test_failures.py (a lock held by another connection of this
process, a dropped table, undecodable payloads) and tests/sqlite/test_files.py (a
directory, a foreign or non-SQLite file, a path under a file, new directories).

File-system faults use tmpfs mounts (``mount -t tmpfs``, root only) and the immutable
attribute (``chattr +i``): the tests run as root, which permission bits do not stop.
Without root these tests fail; they never skip.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel

from gencache import codec
from gencache.errors import BackendError, BackendUnavailableError
from gencache.sqlite import SQLiteCache
from tests.helpers import FakeClock
from tests.support.sqlite_worker import LLM, WRITER_KEYS, key_for, value, version_of

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
KEYS = 300  # about 1 KB each: 100 pages of 4 KiB


def start_worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.sqlite_worker", *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*command: str) -> None:
    """Run a system command; fail the test, with its message, if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr.strip()}"


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``where`` for the block (needs root).

    Unmounting fails if a file there is still open: a leaked descriptor fails the test.
    """
    where.mkdir()
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    try:
        yield where
    finally:
        done = subprocess.run(["umount", str(where)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)  # detach it anyway
            raise AssertionError(f"umount {where}: {done.stderr.strip()} (a file left open?)")


def populate(path: Path, n: int = KEYS) -> None:
    """Write ``key 0`` .. ``key n-1``; closing checkpoints them into the main file."""
    with SQLiteCache(path, strict=True) as cache:
        for i in range(n):
            cache.update(f"key {i}", LLM, value(f"key {i}"))


def check_file(path: Path) -> int:
    """Integrity ok and the trigger-kept count equal to the rows; return the rows."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT count(*) FROM gencache_entries").fetchone()[0]
        count = db.execute("SELECT value FROM gencache_meta WHERE name = 'count'").fetchone()[0]
    finally:
        db.close()
    assert count == rows
    return int(rows)


class Chat:
    """A LangChain chat model using ``cache``: its n-th real call answers ``answer n``.

    All have the same configuration (the llm_string), so they share cached answers.
    """

    def __init__(self, cache: SQLiteCache) -> None:
        responses = [f"answer {n}" for n in range(1, 100)]
        self._model = FakeListChatModel(responses=responses, cache=cache)

    def __call__(self, question: str) -> str:
        content = self._model.invoke(question).content
        assert isinstance(content, str)
        return content


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


# -- another process holds the write lock -------------------------------------------------


def test_another_process_holding_the_write_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads never wait; writes wait busy_timeout, then are skipped (or raise if strict).

    Each read must cost less than ten times a read of the unlocked file measured here,
    plus 3 s; the readers' busy_timeout is three times that bound (at least 30 s), so a
    read that waited for the lock would exceed it on any machine. The writers' is short
    (0.5 s): a skipped write costs at least that, and at most that plus the same margin.
    """
    path, clock, busy = tmp_path / "cache.sqlite3", FakeClock(time.time()), 0.5
    lenient = SQLiteCache(path, busy_timeout=busy, ttl=60, timer=clock)
    strict = SQLiteCache(path, busy_timeout=busy, ttl=60, timer=clock, strict=True)
    chat = Chat(lenient)
    lenient.update("stale", LLM, value("stale"))
    clock.advance(30)
    answer, write_time = timed(chat, "cached question")  # a miss and a write, unlocked
    assert answer == "answer 1"
    answer, read_time = timed(Chat(lenient), "cached question")  # a hit, unlocked
    assert answer == "answer 1"
    read_bound = 10 * read_time + 3
    readers_busy = max(30.0, 3 * read_bound)  # a read that waited would exceed the bound
    readers = [
        SQLiteCache(path, busy_timeout=readers_busy, ttl=60, timer=clock, strict=mode)
        for mode in (False, True)
    ]
    clock.advance(31)  # "stale" has expired, the cached answer has not
    holder = start_worker("hold", path)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n", holder.stderr
        with caplog.at_level(logging.WARNING, logger="gencache"):
            # Reads: a hit, a miss on an expired row (whose removal would have to wait),
            # and len(), which must count live rows though it cannot purge the others.
            answer, hit_time = timed(Chat(readers[0]), "cached question")
            assert answer == "answer 1"  # from the cache
            stale_times = []
            for cache in readers:
                stale, stale_time = timed(cache.lookup, "stale", LLM)
                assert stale is None
                stale_times.append(stale_time)
                assert len(cache) == 1
            assert caplog.text == ""
            # A write waits busy_timeout, then is skipped: the model is asked again.
            answer, skip_time = timed(chat, "new question")
            assert answer == "answer 2"
            assert "update failed" in caplog.text
            assert "database is locked" in caplog.text
            assert chat("new question") == "answer 3"  # not cached: asked again
        with pytest.raises(BackendError, match="database is locked") as info:
            strict.update("new question", LLM, value("x"))
        assert not isinstance(info.value, sqlite3.Error)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.communicate("\n", timeout=30)  # let go of the lock, and wait for the exit
    print(
        f"figures: lock held: hit {hit_time * 1e3:.1f} ms, expired-row miss "
        f"{max(stale_times) * 1e3:.1f} ms (unlocked: hit {read_time * 1e3:.1f} ms); skipped "
        f"write {skip_time:.3f} s (busy_timeout {busy} s; unlocked write {write_time:.3f} s)"
    )
    assert holder.returncode == 0
    assert hit_time < read_bound
    assert max(stale_times) < read_bound
    assert busy <= skip_time < busy + 10 * write_time + 3
    assert lenient.stats().updates == 2  # the skipped writes are not counted
    # The lock is gone: the same objects work again.
    assert chat("new question") == "answer 4"
    assert chat("new question") == "answer 4"  # cached this time
    strict.update("strict after", LLM, value("strict after"))
    assert lenient.lookup("strict after", LLM) == value("strict after")
    assert len(strict) == 3  # "stale" was purged by len()
    for cache in (lenient, strict, *readers):
        cache.close()
    assert check_file(path) == 3


# -- read-only and missing places ---------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_a_read_only_file_system_is_refused_at_construction(tmp_path: Path, strict: bool) -> None:
    with tmpfs(tmp_path / "ro", "4m") as mnt:
        populate(mnt / "cache.sqlite3", 10)
        run("mount", "-o", "remount,ro", str(mnt))
        with pytest.raises(BackendUnavailableError, match=r"cannot create.*Read-only file system"):
            SQLiteCache(mnt / "new.sqlite3", strict=strict)
        with pytest.raises(BackendUnavailableError, match=r"cannot create.*Read-only file system"):
            SQLiteCache(mnt / "missing" / "cache.sqlite3", strict=strict)
        # An existing cache cannot be read either: WAL mode needs a -shm file beside it.
        with pytest.raises(BackendUnavailableError, match="unable to open database file"):
            SQLiteCache(mnt / "cache.sqlite3", strict=strict)
        assert sorted(p.name for p in mnt.iterdir()) == ["cache.sqlite3"]
    # Leaving the block unmounted the file system: no failed construction left a file open.


def test_an_immutable_file_serves_lookups_and_skips_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file nobody may write (``chattr +i``; binds root too): a read-only cache."""
    path = tmp_path / "cache.sqlite3"
    populate(path, 10)
    run("chattr", "+i", str(path))
    try:
        lenient, strict = SQLiteCache(path), SQLiteCache(path, strict=True)
        assert lenient.lookup("key 3", LLM) == value("key 3")
        assert len(lenient) == len(strict) == 10
        with caplog.at_level(logging.WARNING, logger="gencache"):
            lenient.update("new", LLM, value("new"))
            assert Chat(lenient)("question") == "answer 1"
            assert Chat(lenient)("question") == "answer 1"  # not cached: asked again
        assert "attempt to write a readonly database" in caplog.text
        assert lenient.lookup("new", LLM) is None
        assert strict.lookup("key 3", LLM) == value("key 3")
        with pytest.raises(BackendUnavailableError, match="readonly database"):
            strict.update("new", LLM, value("new"))
    finally:
        run("chattr", "-i", str(path))
    # A connection opened read-only stays so: writes still fail until close() reopens.
    with pytest.raises(BackendUnavailableError, match="readonly database"):
        strict.update("new", LLM, value("new"))
    lenient.close()
    lenient.update("new", LLM, value("new"))
    assert strict.lookup("new", LLM) == value("new")
    lenient.close()
    strict.close()
    assert check_file(path) == 11


def test_the_directory_removed_while_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Connections already open keep the deleted file; new ones miss, with a warning."""
    path = tmp_path / "gone" / "cache.sqlite3"
    cache = SQLiteCache(path)
    cache.update("p", LLM, value("p"))
    shutil.rmtree(path.parent)
    assert cache.lookup("p", LLM) == value("p")  # this thread's connection: the old inode
    seen: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="gencache"):
        other = threading.Thread(
            target=lambda: seen.extend([cache.lookup("p", LLM), Chat(cache)("q"), len(cache)])
        )
        other.start()
        other.join()
    assert seen == [None, "answer 1", 0]
    assert "unable to open database file" in caplog.text
    cache.close()
    again = SQLiteCache(path)  # a new object makes the directory and an empty file again
    assert again.lookup("p", LLM) is None
    again.update("p", LLM, value("p"))
    assert again.lookup("p", LLM) == value("p")
    again.close()


# -- a damaged file -----------------------------------------------------------------------


def _refused_at_construction(path: Path, message: str) -> None:
    """Opening ``path`` raises ``message``, whatever strict is, and leaves it as it was."""
    content = path.read_bytes()
    for mode in (False, True):
        with pytest.raises(BackendUnavailableError, match=message):
            SQLiteCache(path, strict=mode)
    assert path.read_bytes() == content  # left alone for the user to inspect


@pytest.mark.parametrize("how", ["truncate", "garbage", "page"])
def test_a_file_damaged_while_open_then_reopened(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    worker = start_worker("open-and-corrupt", path, how, KEYS)
    out, err = worker.communicate(timeout=60)
    # -7 is SIGBUS: a memory-mapped read of pages cut off the file kills the process.
    assert worker.returncode == 0, f"the process died ({worker.returncode}): {err}"
    while_open = json.loads(out)
    assert while_open["hits_before"] == KEYS
    assert while_open["wrong"] == 0  # misses (and warnings) maybe, never a wrong value
    assert while_open["answer"] == "from the model"
    summary = f"figures: {how}: while open {while_open['hits_after']}/{KEYS} hits"
    if how == "garbage":
        # The process that had the file open still held its pages in memory, page 1 (the
        # header and the schema) among them; its hits record savings in the file, and
        # when it closed, SQLite wrote those pages back over the garbage. The header is
        # valid then, the tables under it are not: refused, whatever strict is.
        header = path.read_bytes()[:16] == b"SQLite format 3\x00"
        _refused_at_construction(
            path, "database disk image is malformed" if header else "file is not a database"
        )
        # With no SQLite header at all: refused too.
        path.write_bytes(b"\x00garbage" + path.read_bytes()[9:])
        _refused_at_construction(path, "file is not a database")
        print(f"{summary}; header written back on close: {header}")
        return
    lenient, strict = SQLiteCache(path), SQLiteCache(path, strict=True)
    with caplog.at_level(logging.WARNING, logger="gencache"):
        found = [lenient.lookup(f"key {i}", LLM) for i in range(KEYS)]
    good = [i for i, hit in enumerate(found) if hit is not None]
    assert all(found[i] == value(f"key {i}") for i in good)  # survivors are intact
    lost = sorted(set(range(KEYS)) - set(good))
    assert 0 < len(lost) < KEYS
    for i in lost[:20]:  # strict: the driver's error, wrapped, never sqlite3's own
        with pytest.raises(BackendError, match="database disk image is malformed"):
            strict.lookup(f"key {i}", LLM)
    assert "database disk image is malformed" in caplog.text
    # Writes: one whose pages (its key's index leaf, the table's last leaf) survived is
    # stored and read back exactly; one that reaches a damaged page is skipped (raises if
    # strict). Which is which depends on where each digest falls in the index.
    stored, skipped = _write_new_entries(lenient, strict, caplog)
    if how == "page":  # one leaf page holds about 3 rows: the rest of the file works
        assert len(lost) <= 5
        assert not skipped
    else:  # half the pages are gone: some writes land, others are skipped
        assert stored
        assert skipped
    chat = Chat(lenient)
    before = lenient.stats().updates
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert chat("a new question") == "answer 1"  # never an error, whatever the file
        cached = lenient.stats().updates > before
        assert chat("a new question") == ("answer 1" if cached else "answer 2")
    lenient.close()
    strict.close()
    print(
        f"{summary}; reopened {len(good)}/{KEYS} hits, {len(lost)} lost; new entries: "
        f"{len(stored)} stored, {len(skipped)} skipped"
    )


def _write_new_entries(
    lenient: SQLiteCache, strict: SQLiteCache, caplog: pytest.LogCaptureFixture
) -> tuple[list[str], list[str]]:
    """Write 60 new entries to a damaged file; return the prompts stored and skipped."""
    stored: list[str] = []
    skipped: list[str] = []
    for i in range(60):
        prompt = f"new {i}"
        before = lenient.stats().updates
        with caplog.at_level(logging.WARNING, logger="gencache"):
            lenient.update(prompt, LLM, value(prompt))
        if lenient.stats().updates > before:
            stored.append(prompt)
            assert lenient.lookup(prompt, LLM) == value(prompt)
            strict.update(prompt, LLM, value(prompt + " again"))  # the same pages: works
            assert strict.lookup(prompt, LLM) == value(prompt + " again")
        else:
            skipped.append(prompt)
            assert lenient.lookup(prompt, LLM) is None
            with pytest.raises(BackendError, match="database disk image is malformed"):
                strict.update(prompt, LLM, value(prompt))
    return stored, skipped


@pytest.mark.parametrize("strict", [False, True])
def test_a_damaged_row_is_a_miss_and_is_replaced(
    tmp_path: Path, strict: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Columns of the wrong type (as a flipped serial-type byte gives): misses, never errors.

    SQLite does not check a value's type against its column, so a damaged record can hand
    back text where a number was written.
    """
    path = tmp_path / "cache.sqlite3"
    cache = SQLiteCache(path, maxsize=10, ttl=3600, strict=strict)
    for key in ("a", "b", "c"):
        cache.update(key, LLM, value(key))
    chat = Chat(cache)
    assert chat("question") == "answer 1"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("UPDATE gencache_entries SET expires_at = 'garbage' WHERE prompt = x'61'")
        db.execute("UPDATE gencache_entries SET payload = 12345 WHERE prompt = x'62'")
        db.execute(  # the chat model's entry
            "UPDATE gencache_entries SET expires_at = x'00ff'"
            " WHERE prompt NOT IN (x'61', x'62', x'63')"
        )
        with caplog.at_level(logging.WARNING, logger="gencache"):
            assert cache.lookup("a", LLM) is None
            assert cache.lookup("b", LLM) is None
            assert cache.lookup("c", LLM) == value("c")
            assert chat("question") == "answer 2"  # a miss: the model is asked
            cache.update("a", LLM, value("a again"))
        assert "dropping damaged entry" in caplog.text
        assert cache.lookup("a", LLM) == value("a again")
        assert chat("question") == "answer 2"
        # The row count kept for maxsize, damaged: recounted (and rewritten by a write).
        db.execute("UPDATE gencache_meta SET value = 'garbage' WHERE name = 'count'")
        assert len(cache) == 3  # a, c, question; b was dropped
        db.execute("DELETE FROM gencache_meta WHERE name = 'count'")
        cache.update("d", LLM, value("d"))
        assert len(cache) == 4
    finally:
        db.close()
    cache.close()
    assert check_file(path) == 4


# -- a writer killed mid-write ------------------------------------------------------------


# Updates a writer must acknowledge before it is killed: every one of its keys rewritten.
ACKNOWLEDGED = 2 * 2 * WRITER_KEYS  # 2 threads


def _read_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines ``process`` prints; fails if it exits first."""
    assert process.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        line = process.stdout.readline()  # a stalled writer: pytest's timeout ends the test
        assert line, f"the process exited after {len(lines)} lines"
        lines.append(line)
    return lines


@pytest.mark.parametrize("options", [{}, {"maxsize": 30}], ids=["unbounded", "maxsize"])
def test_a_writer_killed_mid_write(tmp_path: Path, options: dict[str, Any]) -> None:
    """SIGKILL during a loop of updates, three times: nothing torn, nothing committed lost."""
    path, threads = tmp_path / "cache.sqlite3", 2
    SQLiteCache(path).close()
    acked: dict[str, int] = {}  # the highest version whose update() had returned
    top = 0  # the highest version any thread had reached
    for round_ in range(3):
        start = round_ * 10_000_000  # versions keep growing from round to round
        writer = start_worker("writer", path, threads, start, json.dumps(options))
        assert writer.stdout is not None
        ready = writer.stdout.readline()
        if ready != "ready\n":
            writer.kill()
            pytest.fail(f"the writer did not start: {ready!r} {writer.communicate()[1]}")
        # Kill it once it has acknowledged enough updates to rewrite every key at least
        # once, whatever the machine's speed (a fixed sleep may see none on a slow one).
        early = _read_lines(writer, ACKNOWLEDGED)
        writer.kill()
        writer.wait(30)
        assert writer.stderr is not None
        # read(), not communicate(): that reads the pipe itself, missing lines already
        # buffered by the readline() calls above.
        out, err = writer.stdout.read(), writer.stderr.read()
        writer.stdout.close()
        writer.stderr.close()
        assert writer.returncode == -9
        assert "Traceback" not in err, err
        lines = [line.split() for line in [*early, *out.splitlines()] if line]
        for thread, n in ((int(t), int(n)) for t, n in lines):
            key = key_for(thread, n)
            acked[key] = max(acked.get(key, 0), n)
            top = max(top, n)
        rows = check_file(path)
        with SQLiteCache(path, strict=True, **options) as cache:
            for entry in cache.entries():
                version = version_of(entry.prompt, codec.decode(entry.payload))
                assert version is not None, entry.prompt  # exactly a value written for it
                assert acked.get(entry.prompt, 0) <= version <= top + threads
            for key, version in acked.items():
                hit = cache.lookup(key, LLM)
                if hit is not None or "maxsize" not in options:
                    assert hit is not None, key  # committed, so still there
                    assert version_of(key, hit) >= version  # type: ignore[operator]
            # The writers' keys, and one "after the kill" entry per earlier round.
            assert len(cache) == rows <= options.get("maxsize", threads * WRITER_KEYS + round_)
            cache.update("after the kill", LLM, value("after the kill"))
            assert cache.lookup("after the kill", LLM) == value("after the kill")
        print(f"figures: killed writer {options}: {len(lines)} updates acknowledged")
    check_file(path)


# -- a full disk --------------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the file system is full; return it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):  # ENOSPC
        while True:
            f.write(b"\0" * 4096)
    with filler.open("ab", buffering=0) as f, contextlib.suppress(OSError):
        while True:  # the last bytes of a partly used page
            f.write(b"\0")
    return filler


def test_a_full_disk(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with tmpfs(tmp_path / "small", "1m") as mnt:
        path = mnt / "cache.sqlite3"
        lenient, strict = SQLiteCache(path), SQLiteCache(path, strict=True)
        for i in range(20):
            lenient.update(f"key {i}", LLM, value(f"key {i}"))
        filler = fill(mnt)
        stored: list[int] = []
        skipped: list[int] = []
        with caplog.at_level(logging.WARNING, logger="gencache"):
            for i in range(20, 60):
                before = lenient.stats().updates
                lenient.update(f"key {i}", LLM, value(f"key {i}"))
                (stored if lenient.stats().updates > before else skipped).append(i)
            assert Chat(lenient)("question") == "answer 1"
            assert Chat(lenient)("question") == "answer 1"  # not cached: asked again
        assert len(skipped) >= 30
        assert "database or disk is full" in caplog.text
        for i in [*range(20), *stored]:  # lookups keep working, for both objects
            assert lenient.lookup(f"key {i}", LLM) == value(f"key {i}")
            assert strict.lookup(f"key {i}", LLM) == value(f"key {i}")
        assert lenient.lookup(f"key {skipped[0]}", LLM) is None
        with pytest.raises(BackendError, match="database or disk is full"):
            strict.update("strict", LLM, value("strict"))
        filler_size = filler.stat().st_size
        filler.unlink()  # space again: the same objects write again
        lenient.update(f"key {skipped[0]}", LLM, value(f"key {skipped[0]}"))
        strict.update("strict", LLM, value("strict"))
        assert strict.lookup(f"key {skipped[0]}", LLM) == value(f"key {skipped[0]}")
        assert lenient.lookup("strict", LLM) == value("strict")
        lenient.close()
        strict.close()
        assert check_file(path) == 20 + len(stored) + 2
    print(
        f"figures: full disk: filler {filler_size} bytes, {len(stored)} of 40 writes stored, "
        f"{len(skipped)} skipped"
    )
