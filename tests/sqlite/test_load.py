"""SQLiteCache under load: 4 processes x 2 threads on one file, mixed reads and writes.

Builds on tests/sqlite/test_processes.py (which runs this shape unbounded and with
LRU + maxsize + TTL, one value per key). Here each shared key is written with one of four
versions, so a torn or mixed-up value cannot pass for a good one; each process's counters
must equal what its threads saw; a monitor reads the row count from the file while the
workers run; afterwards every row must decode to a value written for its key, the
trigger-kept count must equal the rows, and ``PRAGMA integrity_check`` must say ``ok``.
Workers run with ``strict=True``: any backend failure would reach them as an exception.
Each run prints its figures (``pytest -s``). The long variant runs with ``-m slow``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gencache import codec, control
from gencache.sqlite import SQLiteCache
from tests.support.sqlite_worker import FINAL_KEYS, LLM, SHARED_KEYS, value, version_of

pytestmark = pytest.mark.load

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, THREADS = 4, 2
OPTIONS: dict[str, dict[str, Any]] = {
    "unbounded": {},
    "fifo-maxsize": {"maxsize": 40},
    "lru-maxsize": {"maxsize": 40, "policy": "lru"},
    "ttl": {"ttl": 0.01},  # shorter than the time between rewrites of most keys
}


def start_worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.sqlite_worker", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_file(path: Path) -> int:
    """Integrity ok, count == rows, every row a value written for its key; return rows."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT prompt, payload FROM gencache_entries").fetchall()
        count = db.execute("SELECT value FROM gencache_meta WHERE name = 'count'").fetchone()
    finally:
        db.close()
    assert count == (len(rows),)
    for prompt, payload in rows:
        key = prompt.decode()
        assert version_of(key, codec.decode(payload)) is not None, key
    return len(rows)


def run_load(path: Path, name: str, ops: int) -> None:
    options = {**OPTIONS[name], "strict": True}
    maxsize = options.get("maxsize")
    SQLiteCache(path).close()  # create it once, so that the workers race only on data
    procs = [
        start_worker("stress", path, w, THREADS, ops, json.dumps(options)) for w in range(PROCESSES)
    ]
    counts: list[int] = []
    done = threading.Event()

    def monitor() -> None:  # the row count as any reader of the file sees it
        db = sqlite3.connect(path)
        try:
            while not done.is_set():
                counts.append(db.execute("SELECT count(*) FROM gencache_entries").fetchone()[0])
                time.sleep(0.002)
        finally:
            db.close()

    watcher = threading.Thread(target=monitor)
    watcher.start()
    try:
        deadline = time.monotonic() + 60  # let the interpreters start, then release them
        while not all(Path(f"{path}.ready.{w}").exists() for w in range(PROCESSES)):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(p.poll() is None for p in procs), "a worker exited early"
            time.sleep(0.01)
        start = time.perf_counter()
        Path(f"{path}.go").touch()
        outputs = [p.communicate(timeout=240) for p in procs]
        wall = time.perf_counter() - start
    finally:
        done.set()
        watcher.join()
        for p in procs:
            p.kill()
    reports = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    for r in reports:
        assert r["errors"] == []  # strict: no backend failure at all reached a caller
        assert r["warnings"] == []
        assert r["wrong"] == []  # no torn or mixed-up value was ever returned
        assert r["lookups"] + r["updates"] == THREADS * ops + FINAL_KEYS
        assert r["stats"] == {
            "hits": r["hits"],
            "misses": r["lookups"] - r["hits"],
            "updates": r["updates"],
        }
    if "ttl" not in options:  # with 10 ms, a hit needs a lookup that soon after a write,
        assert sum(r["hits"] for r in reports) > 0  # which a loaded machine may never make
    removed = {k: sum(r["removed"][k] for r in reports) for k in ("evictions", "expirations")}
    assert (removed["evictions"] > 0) == (maxsize is not None)
    assert (removed["expirations"] > 0) == ("ttl" in options)
    assert counts
    if maxsize is not None:
        assert max(counts) <= maxsize
    rows = check_file(path)
    with SQLiteCache(path, strict=True, **OPTIONS[name]) as cache:
        if name == "unbounded":  # every key's last write is still there
            assert rows == SHARED_KEYS + PROCESSES * FINAL_KEYS
            for w in range(PROCESSES):
                for i in range(FINAL_KEYS):
                    key = f"final {w} {i}"
                    assert cache.lookup(key, LLM) == value(key)
        elif maxsize is not None:
            assert rows == len(cache) == maxsize
        else:  # ttl: everything expires, and is purged by len()
            time.sleep(OPTIONS[name]["ttl"])
            assert len(cache) == 0
            assert cache.lookup(f"final 0 {FINAL_KEYS - 1}", LLM) is None
        # The file works on: an entry that cannot expire before it is read, however slow
        # the machine (the cache's own ttl may be 10 ms).
        with control(ttl=3_600):
            cache.update("after the load", LLM, value("after the load"))
        assert cache.lookup("after the load", LLM) == value("after the load")
    check_file(path)
    total = PROCESSES * THREADS * ops
    busiest = max(r["elapsed"] for r in reports)
    hits = sum(r["hits"] for r in reports)
    lookups = sum(r["lookups"] for r in reports)
    print(
        f"figures: sqlite {name} {PROCESSES}x{THREADS}x{ops}: {busiest:.2f} s "
        f"(wall {wall:.2f} s incl. final writes), {total / busiest:,.0f} ops/s, "
        f"hits {hits}/{lookups}, max rows seen {max(counts)} in {len(counts)} polls, "
        f"{rows} rows at the end, {removed['evictions']} evictions, "
        f"{removed['expirations']} expirations"
    )


@pytest.mark.parametrize("name", list(OPTIONS))
def test_processes_and_threads_on_one_file(tmp_path: Path, name: str) -> None:
    run_load(tmp_path / "cache.sqlite3", name, 2_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIONS))
def test_processes_and_threads_on_one_file_long(tmp_path: Path, name: str) -> None:
    run_load(tmp_path / "cache.sqlite3", name, 25_000)
