"""The ``gencache`` inspection commands on real SQLite files, run in subprocesses."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache.sqlite import SQLiteCache
from tests.helpers import run_gencache

LLM = '{"kwargs": {"model_name": "gpt-4o-mini", "temperature": 0}}---[("stop", None)]'


gencache = run_gencache


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cache.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("What is 2+2?", LLM, [Generation(text="4")])
        message = AIMessage(
            content="Paris",
            tool_calls=[
                {"name": "atlas", "args": {"q": "France"}, "id": "c1", "type": "tool_call"}
            ],
        )
        cache.update("Capital of France?", LLM, [ChatGeneration(message=message)])
        cache.update("Capital of Spain?", "other-model", [Generation(text="Madrid")])
    return path


def test_demo_second_process_is_answered_from_the_first_ones_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = gencache("demo", "--backend", "sqlite", "--latency", "0.01", env=env)
    assert first.returncode == 0, first.stderr
    assert "earlier runs: 0" in first.stdout
    assert "cold run" in first.stdout
    assert "0/5 answered from cache" in first.stdout
    second = gencache("demo", "--backend", "sqlite", "--latency", "0.01", env=env)
    assert second.returncode == 0, second.stderr
    assert "earlier runs: 10" in second.stdout  # 5 prompts and 5 conversation turns
    assert "0/5 answered from cache" not in second.stdout  # even the cold run hits
    assert second.stdout.count("5/5 answered from cache") == 2
    demo_file = tmp_path / "gencache" / "demo.sqlite3"
    assert stat.S_IMODE(demo_file.stat().st_mode) == 0o600


def test_stats_ls_and_show(db: Path) -> None:
    stats = gencache("stats", str(db))
    assert stats.returncode == 0, stats.stderr
    assert "entries:   3" in stats.stdout
    assert "gpt-4o-mini" in stats.stdout

    ls = gencache("ls", str(db))
    assert ls.returncode == 0, ls.stderr
    lines = ls.stdout.splitlines()
    assert lines[0].split()[:3] == ["KEY", "AGE", "SIZE"]
    assert len(lines) == 4
    assert any("Capital of France?" in line for line in lines)
    only = gencache("ls", str(db), "--model", "other-model")
    assert len(only.stdout.splitlines()) == 2

    key = next(line.split()[0] for line in lines if "France" in line)
    show = gencache("show", str(db), key[:8])
    assert show.returncode == 0, show.stderr
    assert "prompt:\nCapital of France?" in show.stdout
    assert "Paris" in show.stdout
    assert '"name": "atlas"' in show.stdout


def test_export_then_import_round_trips(db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    result = gencache("export", str(db), "-o", str(dump), "--progress")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert {r["prompt"] for r in records} == {
        "What is 2+2?",
        "Capital of France?",
        "Capital of Spain?",
    }
    target = tmp_path / "copy.sqlite3"
    result = gencache("import", str(target), str(dump))
    assert result.returncode == 0, result.stderr
    assert "imported 3 entries" in result.stdout
    with SQLiteCache(db) as original, SQLiteCache(target) as copy:
        for prompt, llm in [
            ("What is 2+2?", LLM),
            ("Capital of France?", LLM),
            ("Capital of Spain?", "other-model"),
        ]:
            assert copy.lookup(prompt, llm) == original.lookup(prompt, llm)


def test_import_reports_the_bad_line(tmp_path: Path) -> None:
    dump = tmp_path / "bad.jsonl"
    good = {
        "prompt": "p",
        "llm_string": "l",
        "generations": {"v": 1, "g": [{"t": "gen", "text": "x"}]},
    }
    dump.write_text(json.dumps(good) + "\n{not json\n")
    result = gencache("import", str(tmp_path / "t.sqlite3"), str(dump))
    assert result.returncode == 1
    assert "line 2: not JSON" in result.stderr
    evil = {"prompt": "p", "llm_string": "l", "generations": {"lc": 1, "type": "constructor"}}
    dump.write_text(json.dumps(evil) + "\n")
    result = gencache("import", str(tmp_path / "t.sqlite3"), str(dump))
    assert result.returncode == 1
    assert "line 1: bad generations" in result.stderr


def test_prune_removes_expired_entries(tmp_path: Path) -> None:
    path = tmp_path / "ttl.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("new", LLM, [Generation(text="y")])
    long_ago = time.time() - 3_600
    with SQLiteCache(path, ttl=60, timer=lambda: long_ago) as cache:
        cache.update("old", LLM, [Generation(text="x")])  # expired 59 minutes ago
    result = gencache("prune", str(path))
    assert result.returncode == 0, result.stderr
    assert "removed 1 expired entries; 1 remain" in result.stdout


def test_clear_needs_yes_without_a_terminal(db: Path) -> None:
    refused = gencache("clear", str(db))
    assert refused.returncode == 1
    assert "without --yes" in refused.stderr
    assert "entries:   3" in gencache("stats", str(db)).stdout
    done = gencache("clear", str(db), "--yes")
    assert done.returncode == 0, done.stderr
    assert "deleted 3 entries" in done.stdout
    assert "entries:   0" in gencache("stats", str(db)).stdout


def test_clear_errors(tmp_path: Path) -> None:
    missing = gencache("stats", str(tmp_path / "missing.sqlite3"))
    assert missing.returncode == 1
    assert "no such cache file" in missing.stderr
    assert not (tmp_path / "missing.sqlite3").exists()  # inspecting never creates a file

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    result = gencache("ls", str(garbage))
    assert result.returncode == 1
    assert "not a database" in result.stderr
    assert "Traceback" not in result.stderr

    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    result = gencache("stats", str(foreign))
    assert result.returncode == 1
    assert "gencache" in result.stderr
    assert "Traceback" not in result.stderr

    directory = gencache("stats", str(tmp_path))
    assert directory.returncode == 1
    assert "is a directory" in directory.stderr


def test_help_has_examples() -> None:
    for command in ("stats", "ls", "show", "export", "import", "prune", "clear", "demo"):
        result = gencache(command, "--help")
        assert result.returncode == 0
        assert "example" in result.stdout
