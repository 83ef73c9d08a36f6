"""A worker process for the SQLite tests: ``python -m tests.sqlite._worker MODE PATH ...``.

Modes:
    write PATH N: write ``N`` entries ``key i`` -> ``value(key i)`` and exit.
    read PATH N: print how many of ``key 0 .. key N-1`` hit with the expected value.
    stress PATH WORKER THREADS OPS [OPTIONS_JSON]: mixed lookups and updates on shared
        keys from several threads, then write this worker's own final keys; print a JSON
        report. Starts once ``PATH.go`` exists. Every hit must equal the value written
        for its key.
"""

from __future__ import annotations

import json
import random
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
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
