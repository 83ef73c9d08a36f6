"""A worker process for the SQLite tests: ``python -m tests.sqlite._worker MODE PATH ...``.

Modes:
    write PATH N: write ``N`` entries ``key i`` -> ``value(key i)`` and exit.
    read PATH N: print how many of ``key 0 .. key N-1`` hit with the expected value.
    stress PATH WORKER THREADS OPS [OPTIONS_JSON]: mixed lookups and updates on shared
        keys from several threads, then write this worker's own final keys; print a JSON
        report. Starts once ``PATH.go`` exists. Every hit must equal the value written
        for its key.
    open BASE WORKER ROUNDS [OPTIONS_JSON]: in each round R, create ``BASE.R.ready.WORKER``,
        wait behind the test's lock on ``BASE.R.gate`` (released once every worker is
        ready), then open the brand-new file ``BASE.R.sqlite3`` (strict), write and read
        one entry and close. Print a JSON report: the exceptions from opening, and
        those from using the file.
    hold PATH SECONDS: open PATH with plain ``sqlite3``, take the write lock (``BEGIN
        IMMEDIATE``), print ``held``, keep it until a line arrives on stdin (or SECONDS
        pass), then commit and print ``released``.
    inspect PATH N OPTIONS_JSON: open ``SQLiteCache(PATH, **OPTIONS)``, look up ``key 0``
        .. ``key N-1`` twice, count them, list them, try one update and close; print a
        JSON report (hits, len, entries, the update's exception, warnings logged, or the
        constructor's exception). Run as an unprivileged user by the permission tests.
"""

from __future__ import annotations

import fcntl
import json
import logging
import random
import select
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
FINAL_KEYS = 50


def value(key: str) -> list[Generation]:
    """The only value ever written for ``key``: a chat generation of about 1 KB."""
    text = f"answer for {key}: " + "x" * 1000
    return [ChatGeneration(message=AIMessage(content=text, response_metadata={"k": key}))]


def _stress(path: str, worker: int, threads: int, ops: int, options: dict[str, Any]) -> None:
    cache = SQLiteCache(path, strict=True, **options)
    counts = {"hits": 0, "misses": 0, "updates": 0}
    wrong: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        rng = random.Random(seed)
        mine = dict.fromkeys(counts, 0)
        try:
            for _ in range(ops):
                key = f"shared {rng.randrange(SHARED_KEYS)}"
                if rng.random() < 0.6:
                    got = cache.lookup(key, LLM)
                    if got is not None and got != value(key):
                        with lock:
                            wrong.append(key)
                    mine["misses" if got is None else "hits"] += 1
                else:
                    cache.update(key, LLM, value(key))
                    mine["updates"] += 1
        except Exception as exc:  # any exception reaching the caller fails the test
            with lock:
                errors.append(repr(exc))
        with lock:
            for name, n in mine.items():
                counts[name] += n

    pool = [threading.Thread(target=run, args=(worker * 100 + t,)) for t in range(threads)]
    go = Path(f"{path}.go")  # start together: the test creates it once every worker runs
    while not go.exists():
        time.sleep(0.005)
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for i in range(FINAL_KEYS):
        key = f"final {worker} {i}"
        cache.update(key, LLM, value(key))
    cache.close()
    print(json.dumps({**counts, "wrong": wrong, "errors": errors}))


def _open_rounds(base: str, worker: int, rounds: int, options: dict[str, Any]) -> None:
    failed: dict[str, list[str]] = {"open": [], "use": []}
    for r in range(rounds):
        Path(f"{base}.{r}.ready.{worker}").touch()
        with open(f"{base}.{r}.gate", "rb") as gate:
            fcntl.flock(gate, fcntl.LOCK_SH)  # every worker wakes when the test unlocks
        try:
            cache = SQLiteCache(f"{base}.{r}.sqlite3", strict=True, **options)
        except Exception as exc:  # any failure to open the new file counts
            failed["open"].append(f"round {r}: {exc!r}")
            continue
        try:
            with cache:
                cache.update(f"w{worker}", LLM, value(f"w{worker}"))
                if cache.lookup(f"w{worker}", LLM) != value(f"w{worker}"):
                    failed["use"].append(f"round {r}: wrong or missing hit")
        except Exception as exc:
            failed["use"].append(f"round {r}: {exc!r}")
    print(json.dumps(failed))


def _hold(path: str, seconds: float) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    select.select([sys.stdin], [], [], seconds)  # a line from the test, or the deadline
    db.execute("COMMIT")
    db.close()
    print("released", flush=True)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _inspect(path: str, n: int, options: dict[str, Any]) -> None:
    warnings = _Warnings()
    logging.getLogger("gencache").addHandler(warnings)
    report: dict[str, Any] = {}
    try:
        cache = SQLiteCache(path, **options)
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    else:
        with cache:
            keys = [f"key {i}" for i in range(n)]
            found = [cache.lookup(k, LLM) == value(k) for k in keys + keys]
            report["hits"], report["misses"] = sum(found), found.count(False)
            report["len"] = len(cache)
            report["entries"] = sum(1 for _ in cache.entries())
            try:
                cache.update("new", LLM, value("new"))
                report["update"] = None
            except Exception as exc:
                report["update"] = f"{type(exc).__name__}: {exc}"
            report["new"] = cache.lookup("new", LLM) is not None
    report["warnings"] = warnings.messages
    print(json.dumps(report))


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    if mode == "write":
        with SQLiteCache(path, strict=True) as cache:
            for i in range(int(argv[2])):
                cache.update(f"key {i}", LLM, value(f"key {i}"))
    elif mode == "read":
        with SQLiteCache(path, strict=True) as cache:
            found = [
                cache.lookup(f"key {i}", LLM) == value(f"key {i}") for i in range(int(argv[2]))
            ]
        print(sum(found))
    elif mode == "stress":
        options = json.loads(argv[5]) if len(argv) > 5 else {}
        _stress(path, int(argv[2]), int(argv[3]), int(argv[4]), options)
    elif mode == "open":
        options = json.loads(argv[4]) if len(argv) > 4 else {}
        _open_rounds(path, int(argv[2]), int(argv[3]), options)
    elif mode == "hold":
        _hold(path, float(argv[2]))
    elif mode == "inspect":
        _inspect(path, int(argv[2]), json.loads(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
