"""Single-flight across processes: a lease in the shared store (SQLite row, Redis key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.backends.redis import shared_server

ROOT = Path(__file__).resolve().parents[2]


def _run_workers(
    target: str, tmp_path: Path, mode: str, processes: int, each: int, *, fail: bool = False
) -> tuple[list[str], list[str]]:
    """Run the workers; return the provider calls (one line each) and the answers."""
    calls, go = tmp_path / "calls", tmp_path / "go"
    fail_file = [str(tmp_path / "failed")] if fail else []
    namespace = f"flight-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.flight_worker",
                target,
                namespace,
                str(calls),
                str(go),
                mode,
                str(each),
                *fail_file,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < processes:  # every worker has its cache
        assert time.monotonic() < deadline, "workers did not start"
        assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
        time.sleep(0.01)
    go.touch()
    answers: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        answers.extend(json.loads(out))
    lines = calls.read_text().splitlines() if calls.exists() else []
    assert len(answers) == processes * each
    return lines, answers


def test_4_processes_x_8_threads_on_one_sqlite_file_pay_once(tmp_path: Path) -> None:
    calls, answers = _run_workers(str(tmp_path / "cache.sqlite3"), tmp_path, "threads", 4, 8)
    assert len(calls) == 1
    assert set(answers) == {"answer to the same question"}


def test_4_processes_x_8_tasks_on_one_redis_pay_once(tmp_path: Path) -> None:
    calls, answers = _run_workers(shared_server().url, tmp_path, "tasks", 4, 8)
    assert len(calls) == 1
    assert set(answers) == {"answer to the same question"}


def _check_released(calls: list[str], answers: list[str]) -> None:
    # The workers' flight timeout is 300 s and the test waits at most 120 s for them: they
    # finished because the failure released every waiter, in every process.
    assert answers.count("failed") == 1
    assert answers.count("answer to the same question") == len(answers) - 1
    assert 2 <= len(calls) <= len(answers)  # the failed call, then the released ones


def test_an_owner_process_failure_releases_threads_in_other_processes(tmp_path: Path) -> None:
    target = str(tmp_path / "cache.sqlite3")
    _check_released(*_run_workers(target, tmp_path, "threads", 3, 4, fail=True))


def test_an_owner_process_failure_releases_tasks_in_other_processes(tmp_path: Path) -> None:
    _check_released(*_run_workers(shared_server().url, tmp_path, "tasks", 3, 4, fail=True))
