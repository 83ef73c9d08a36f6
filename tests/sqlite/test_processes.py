"""Several processes on one file: persistence across restarts, stress, fork."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gencache.sqlite import SQLiteCache
from tests.sqlite._worker import FINAL_KEYS, LLM, SHARED_KEYS, value

ROOT = Path(__file__).resolve().parents[2]
OPS = 1_500  # per thread; 4 processes x 2 threads


def worker(*args: object) -> subprocess.Popen[str]:
    """Start ``python -m tests.sqlite._worker ARGS`` in a new interpreter."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite._worker", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_entries_written_by_another_process_are_read_here(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    finish(worker("write", path, 20))
    with SQLiteCache(path, strict=True) as cache:
        assert all(cache.lookup(f"key {i}", LLM) == value(f"key {i}") for i in range(20))
        assert cache.lookup("key 20", LLM) is None
        assert len(cache) == 20


def test_entries_written_here_are_read_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with SQLiteCache(path, strict=True) as cache:
        for i in range(15):
            cache.update(f"key {i}", LLM, value(f"key {i}"))
    assert finish(worker("read", path, 20)).strip() == "15"


@pytest.mark.parametrize(
    "options",
    [{}, {"maxsize": 40, "policy": "lru", "ttl": 0.05}],
    ids=["unbounded", "bounded-lru-ttl"],
)
def test_processes_and_threads_share_one_file(tmp_path: Path, options: dict[str, Any]) -> None:
    path = tmp_path / "cache.sqlite3"
    SQLiteCache(path).close()  # create it once, so that the workers race only on data
    procs = [worker("stress", path, w, 2, OPS, json.dumps(options)) for w in range(4)]
    time.sleep(0.3)  # let the interpreters start, then release them together
    Path(f"{path}.go").touch()
    reports = [json.loads(finish(p)) for p in procs]
    for report in reports:
        assert report["errors"] == []
        assert report["wrong"] == []  # no torn or mixed-up entry was ever returned
        assert report["hits"] + report["misses"] + report["updates"] == 2 * OPS
    assert sum(r["hits"] for r in reports) > 0
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    with SQLiteCache(path, strict=True, **options) as cache:
        maxsize = options.get("maxsize")
        if maxsize is None:  # every key's last write is still there
            for w in range(4):
                for i in range(FINAL_KEYS):
                    key = f"final {w} {i}"
                    assert cache.lookup(key, LLM) == value(key)
            assert len(cache) == 4 * FINAL_KEYS + SHARED_KEYS
        else:
            assert len(cache) <= maxsize
            assert all(e.payload for e in cache.entries())


def _use_in_child(cache: SQLiteCache, queue: multiprocessing.Queue[object]) -> None:
    cache.update("from child", LLM, value("from child"))
    queue.put(cache.lookup("from parent", LLM) == value("from parent"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "cache.sqlite3", strict=True)
    cache.update("from parent", LLM, value("from parent"))
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(cache, queue))
    child.start()
    assert queue.get(timeout=30) is True
    child.join(30)
    assert child.exitcode == 0
    # The parent's connection still works after the child used and dropped its copy.
    assert cache.lookup("from child", LLM) == value("from child")
    cache.update("after fork", LLM, value("after fork"))
    assert len(cache) == 3
    cache.close()
