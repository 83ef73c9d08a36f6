"""A worker process for tests/sqlite/test_load.py and tests/sqlite/test_faults.py.

Run as ``python -m tests.support.sqlite_worker MODE PATH ...``.

Modes (the first argument):
    stress PATH WORKER THREADS OPS OPTIONS_JSON: mixed lookups and updates of shared keys,
        each written with one of several versions, from THREADS threads; creates
        ``PATH.ready.WORKER`` once started and begins once ``PATH.go`` exists; then
        writes this worker's own final keys. Prints a JSON report: what the threads
        saw, the cache's own stats, every wrong hit, every exception.
    writer PATH THREADS START OPTIONS_JSON: updates in a loop until killed (``strict``),
        or until its stdin reaches end of file.
        Prints ``ready``, then one line ``THREAD N`` after each update of
        ``key_for(THREAD, N)`` with version ``N`` (from START + 1 up) has returned.
    hold PATH: takes SQLite's write lock (``BEGIN EXCLUSIVE``), prints ``locked``, and
        keeps it until a line arrives on stdin.
    open-and-corrupt PATH HOW KEYS: writes ``key 0`` .. ``key KEYS-1`` through a cache,
        checkpoints them into the file, reads them, damages the file under the open cache
        (HOW: ``truncate``, ``garbage`` or ``page``), then uses the cache and a chat
        model on it. Prints a JSON report. Run in its own process so that a crash
        (SIGBUS, from a memory-mapped read of a truncated file) is a failed test, not the
        end of the test run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache.sqlite import SQLiteCache

LLM = "llm-config"
SHARED_KEYS = 64
VERSIONS = 4
FINAL_KEYS = 50
WRITER_KEYS = 40  # keys per writer thread: each is rewritten with ever higher versions


def value(key: str, version: int = 0) -> list[Generation]:
    """The value written for ``key`` at ``version``: a chat generation of about 1 KB."""
    text = f"{key} v{version}: " + "x" * 1000
    meta = {"key": key, "version": version}
    return [ChatGeneration(message=AIMessage(content=text, response_metadata=meta))]


def version_of(key: str, generations: list[Generation]) -> int | None:
    """The version of ``key`` that ``generations`` is exactly, or ``None`` (a wrong value)."""
    try:
        version = generations[0].message.response_metadata["version"]  # type: ignore[attr-defined]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) and generations == value(key, version) else None


def key_for(thread: int, n: int) -> str:
    return f"writer {thread} {n % WRITER_KEYS}"


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _watch_warnings() -> _Warnings:
    handler = _Warnings()
    logging.getLogger("gencache").addHandler(handler)
    return handler


def _stress(path: str, worker: int, threads: int, ops: int, options: dict[str, Any]) -> None:
    cache = SQLiteCache(path, **options)
    warnings = _watch_warnings()
    seen = {"lookups": 0, "hits": 0, "updates": 0}
    wrong: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    values = {(k, v): value(f"shared {k}", v) for k in range(SHARED_KEYS) for v in range(VERSIONS)}

    def run(seed: int) -> None:
        rng = random.Random(seed)
        mine = dict.fromkeys(seen, 0)
        try:
            for _ in range(ops):
                k = rng.randrange(SHARED_KEYS)
                key = f"shared {k}"
                if rng.random() < 0.6:
                    got = cache.lookup(key, LLM)
                    mine["lookups"] += 1
                    if got is not None:
                        mine["hits"] += 1
                        if not any(got == values[k, v] for v in range(VERSIONS)):
                            with lock:
                                wrong.append(key)
                else:
                    cache.update(key, LLM, values[k, rng.randrange(VERSIONS)])
                    mine["updates"] += 1
        except Exception as exc:  # any exception reaching the caller fails the test
            with lock:
                errors.append(repr(exc))
        with lock:
            for name, n in mine.items():
                seen[name] += n

    pool = [threading.Thread(target=run, args=(worker * 100 + t,)) for t in range(threads)]
    Path(f"{path}.ready.{worker}").touch()
    go = Path(f"{path}.go")  # start together: the test creates it once every worker runs
    deadline = time.monotonic() + 120  # never outlive a test process that died
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    for i in range(FINAL_KEYS):
        key = f"final {worker} {i}"
        cache.update(key, LLM, value(key))
        seen["updates"] += 1
    stats = cache.stats()
    cache.close()
    report = {
        **seen,
        "elapsed": elapsed,
        "stats": {"hits": stats.hits, "misses": stats.misses, "updates": stats.updates},
        "removed": {"evictions": stats.evictions, "expirations": stats.expirations},
        "wrong": wrong,
        "errors": errors,
        "warnings": warnings.messages,
    }
    print(json.dumps(report))


def _writer(path: str, threads: int, start: int, options: dict[str, Any]) -> None:
    cache = SQLiteCache(path, strict=True, **options)

    def run(thread: int) -> None:
        n = start
        while True:
            n += 1
            cache.update(key_for(thread, n), LLM, value(key_for(thread, n), n))
            os.write(1, f"{thread} {n}\n".encode())  # one write(2): lines never interleave

    os.write(1, b"ready\n")  # before any "THREAD N" line
    for t in range(threads):
        threading.Thread(target=run, args=(t,), daemon=True).start()
    sys.stdin.read()  # until killed; or until the test process is gone (end of file)


def _hold(path: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    db.execute("ROLLBACK")
    db.close()


def damage(path: Path, how: str) -> None:
    """Damage the database file in place: cut it in half, overwrite it, or one page.

    ``page`` overwrites one leaf page of the entries table (found with SQLite's ``dbstat``
    table, the middle one) with seeded random bytes.
    """
    size = path.stat().st_size
    if how == "truncate":
        os.truncate(path, size // 2)
    elif how == "garbage":
        path.write_bytes(random.Random(1).randbytes(size))
    elif how == "page":
        db = sqlite3.connect(path)
        try:
            pages = [
                row[0]
                for row in db.execute(
                    "SELECT pageno FROM dbstat WHERE name = 'gencache_entries'"
                    " AND pagetype = 'leaf' ORDER BY pageno"
                )
            ]
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            db.close()
        page = pages[len(pages) // 2]
        with path.open("r+b") as f:
            f.seek((page - 1) * page_size)
            f.write(random.Random(page).randbytes(page_size))
    else:
        raise ValueError(how)


def _open_and_corrupt(path: str, how: str, keys: int) -> None:
    from langchain_core.language_models import FakeListChatModel  # 0.5 s: only here

    cache = SQLiteCache(path)
    warnings = _watch_warnings()
    for i in range(keys):
        cache.update(f"key {i}", LLM, value(f"key {i}"))
    db = sqlite3.connect(path)  # copy the WAL into the file: the damage hits live pages
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = sum(cache.lookup(f"key {i}", LLM) is not None for i in range(keys))
    damage(Path(path), how)
    after: list[bool] = []
    wrong = 0
    for i in range(keys):
        got = cache.lookup(f"key {i}", LLM)
        after.append(got is not None)
        wrong += got is not None and got != value(f"key {i}")
    cache.update("written after the damage", LLM, value("written after the damage"))
    model = FakeListChatModel(responses=["from the model"], cache=cache)
    answer = model.invoke("a prompt never cached").content
    report = {
        "hits_before": before,
        "hits_after": sum(after),
        "wrong": wrong,
        "answer": answer,
        "warnings": warnings.messages,
    }
    print(json.dumps(report))


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    if mode == "stress":
        _stress(path, int(argv[2]), int(argv[3]), int(argv[4]), json.loads(argv[5]))
    elif mode == "writer":
        _writer(path, int(argv[2]), int(argv[3]), json.loads(argv[4]))
    elif mode == "hold":
        _hold(path)
    elif mode == "open-and-corrupt":
        _open_and_corrupt(path, argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
