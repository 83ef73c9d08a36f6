"""Many processes opening one brand-new file at the same moment: opening never fails."""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sqlite.test_processes import finish, worker

PROCESSES, ROUNDS = 8, 6


@pytest.mark.parametrize(
    "options", [{}, {"busy_timeout": 0}, {"maxsize": 10, "ttl": 60, "policy": "lru"}]
)
def test_processes_opening_a_new_file_together_never_fail(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    """Each round, 8 processes wait behind one lock, then all create the same new file.

    The lock is released once all 8 are waiting on it, so they open within microseconds
    of each other: the creation, the conversion to WAL and the schema race every time.
    With ``busy_timeout=0`` too: a write may then find the file busy and fail, but
    another process *opening* it never makes opening fail.
    """
    base = tmp_path / "cache"
    with contextlib.ExitStack() as gates:
        held = []
        for r in range(ROUNDS):
            gate = gates.enter_context(open(f"{base}.{r}.gate", "wb"))
            fcntl.flock(gate, fcntl.LOCK_EX)
            held.append(gate)
        procs = [worker("open", base, w, ROUNDS, json.dumps(options)) for w in range(PROCESSES)]
        for r, gate in enumerate(held):
            ready = [Path(f"{base}.{r}.ready.{w}") for w in range(PROCESSES)]
            deadline = time.monotonic() + 120
            while not all(p.exists() for p in ready):
                assert time.monotonic() < deadline, "workers did not reach the gate"
                assert all(p.poll() is None for p in procs), "a worker died"
                time.sleep(0.002)
            time.sleep(0.02)  # the last one to say ready is now blocked on the lock
            fcntl.flock(gate, fcntl.LOCK_UN)
        reports = [json.loads(finish(p, timeout=300)) for p in procs]
    assert [r["open"] for r in reports] == [[]] * PROCESSES
    if options.get("busy_timeout") == 0:  # writes do not wait: some may fail, none hang
        return
    assert [r["use"] for r in reports] == [[]] * PROCESSES
    for r in range(ROUNDS):
        db = sqlite3.connect(f"{base}.{r}.sqlite3")
        try:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            rows = db.execute("SELECT count(*) FROM gencache_entries").fetchone()[0]
            assert rows == PROCESSES
        finally:
            db.close()
