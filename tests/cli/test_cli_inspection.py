"""The ``gencache`` command on what real caches hold: times, odd strings, damaged rows,
files it may not write, and targets that are not what they seem. Real processes."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache import control
from gencache.redis import RedisCache
from gencache.sqlite import SQLiteCache
from tests.backends.redis import shared_server
from tests.chat_models import CountingChatModel
from tests.helpers import run_gencache as gencache

LLM = '{"kwargs": {"model_name": "gpt-4o-mini", "temperature": 0}}---[("stop", None)]'


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users may enter (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="gencache-cli-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``gencache`` as user ``nobody`` (CI runs as root, which ignores file modes)."""
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*drop, sys.executable, "-m", "gencache", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
        env={**os.environ, "HOME": "/nonexistent"},
        stdin=subprocess.DEVNULL,
    )


# -- export and import keep times ----------------------------------------------------------


def _export_import(source: str, target: str, tmp_path: Path, *ns: str) -> list[dict[str, object]]:
    dump = tmp_path / f"dump-{uuid.uuid4().hex}.jsonl"
    exported = gencache("export", source, *ns, "-o", str(dump))
    assert exported.returncode == 0, exported.stderr
    imported = gencache("import", target, *ns, str(dump))
    assert imported.returncode == 0, imported.stderr
    return [json.loads(line) for line in dump.read_text().splitlines()]


def test_sqlite_export_import_keeps_created_and_expires(tmp_path: Path) -> None:
    source, target = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    now = time.time()
    with SQLiteCache(source, ttl=3_000) as cache:  # due in 50 minutes
        cache.update("soon", LLM, [Generation(text="x")])
    with SQLiteCache(source) as cache:
        cache.update("forever", LLM, [Generation(text="y")])
    records = _export_import(str(source), str(target), tmp_path)
    assert {r["prompt"] for r in records} == {"soon", "forever"}
    with SQLiteCache(target) as copy:
        entries = {e.prompt: e for e in copy.entries()}
    assert entries["soon"].expires_at == pytest.approx(now + 3_000, abs=60)
    assert entries["forever"].expires_at is None
    assert entries["soon"].created_at == pytest.approx(now, abs=60)


def test_an_already_expired_entry_is_not_imported(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    line = {
        "prompt": "p",
        "llm_string": LLM,
        "created_at": time.time() - 100,
        "expires_at": time.time() - 10,
        "generations": {"v": 2, "g": [{"t": "gen", "text": "old"}]},
    }
    dump.write_text(json.dumps(line) + "\n")
    result = gencache("import", str(tmp_path / "t.sqlite3"), str(dump))
    assert result.returncode == 0, result.stderr
    assert "imported 0 entries" in result.stdout
    assert "1 already expired" in result.stdout


def test_redis_export_import_keeps_expiry(tmp_path: Path) -> None:
    url = shared_server().url
    source, target = f"cli-a-{uuid.uuid4().hex[:8]}", f"cli-b-{uuid.uuid4().hex[:8]}"
    RedisCache(url, namespace=source, ttl=3_000).update("soon", LLM, [Generation(text="x")])
    dump = tmp_path / "dump.jsonl"
    assert gencache("export", url, "--namespace", source, "-o", str(dump)).returncode == 0
    result = gencache("import", url, "--namespace", target, str(dump))
    assert result.returncode == 0, result.stderr
    copy = RedisCache(url, namespace=target)
    with shared_server().client() as raw:
        ttl_ms = raw.pttl(copy.redis_key("soon", LLM))
    assert 2_900_000 < ttl_ms <= 3_000_000
    copy.clear()
    RedisCache(url, namespace=source).clear()


# -- strings the library accepts are shown and backed up ------------------------------------


def test_lone_surrogates_and_nul_bytes_are_listed_shown_and_exported(tmp_path: Path) -> None:
    path = tmp_path / "odd.sqlite3"
    odd = "half a pair \ud800 and a NUL \x00 byte"
    with SQLiteCache(path) as cache:
        cache.update(odd, LLM, [Generation(text=odd)])
    ls = gencache("ls", str(path))
    assert ls.returncode == 0, ls.stderr
    assert "half a pair" in ls.stdout
    key = ls.stdout.splitlines()[1].split()[0]
    show = gencache("show", str(path), key)
    assert show.returncode == 0, show.stderr
    assert "\\ud800" in show.stdout
    copy = tmp_path / "copy.sqlite3"
    _export_import(str(path), str(copy), tmp_path)
    with SQLiteCache(copy) as restored:
        assert restored.lookup(odd, LLM) == [Generation(text=odd)]


def _damage(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE gencache_entries SET payload = x'ff00ff'"
            " WHERE prompt = CAST('bad payload' AS BLOB)"
        )
        db.execute(
            "UPDATE gencache_entries SET prompt = x'c328' WHERE prompt = CAST('bad utf8' AS BLOB)"
        )
        db.execute(
            "UPDATE gencache_entries SET created_at = 'yesterday'"
            " WHERE prompt = CAST('bad time' AS BLOB)"
        )
        nested = (
            b'{"g":[{"t":"gen","text":"x","generation_info":{"a":'
            + b"[" * 5_000
            + b"]" * 5_000
            + b'}}],"v":2}'
        )
        db.execute(
            "UPDATE gencache_entries SET payload = ? WHERE prompt = CAST('deep' AS BLOB)", (nested,)
        )


def test_damaged_rows_are_reported_and_skipped_never_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite3"
    with SQLiteCache(path) as cache:
        for prompt in ("good", "bad payload", "bad utf8", "bad time", "deep"):
            cache.update(prompt, LLM, [Generation(text=prompt)])
    _damage(path)
    for command in (["stats"], ["ls"], ["export"]):
        result = gencache(*command, str(path))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    export = gencache("export", str(path))
    assert "skipped 2 damaged entries" in export.stderr
    records = [json.loads(line) for line in export.stdout.splitlines()]
    assert "good" in {r["prompt"] for r in records}
    assert "bad payload" not in {r["prompt"] for r in records}


# -- inspection without write access --------------------------------------------------------


def test_inspection_needs_no_write_access(shared_dir: Path) -> None:
    path = shared_dir / "cache.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("What is 2+2?", LLM, [Generation(text="4")])
    for name in ("cache.sqlite3", "cache.sqlite3-wal", "cache.sqlite3-shm"):
        if (shared_dir / name).exists():
            (shared_dir / name).chmod(0o644)  # readable by others, writable by root only
    before = sorted(p.name for p in shared_dir.iterdir())
    for command in ("stats", "ls", "export"):
        result = _as_nobody(command, str(path))
        assert result.returncode == 0, (command, result.stderr)
    assert "entries:   1" in _as_nobody("stats", str(path)).stdout
    assert "What is 2+2?" in _as_nobody("ls", str(path)).stdout
    assert sorted(p.name for p in shared_dir.iterdir()) == before


def test_an_unreadable_file_is_a_permission_problem(shared_dir: Path) -> None:
    path = shared_dir / "cache.sqlite3"
    SQLiteCache(path).update("p", LLM, [Generation(text="x")])
    path.chmod(0o600)  # root's own
    result = _as_nobody("stats", str(path))
    assert result.returncode == 1
    assert "permission" in result.stderr.lower()
    assert "Traceback" not in result.stderr


# -- ls and show ----------------------------------------------------------------------------


def test_ls_says_how_many_it_did_not_print_and_filters_any_case(tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite3"
    with SQLiteCache(path) as cache:
        for i in range(7):
            cache.update(f"prompt {i}", LLM, [Generation(text=str(i))])
        cache.update("other", "[('model', 'Claude-3')]", [Generation(text="c")])
    limited = gencache("ls", str(path), "--limit", "3")
    assert limited.returncode == 0, limited.stderr
    assert len(limited.stdout.splitlines()) == 1 + 3 + 1
    assert "5 more not shown" in limited.stdout
    assert "3 more" not in gencache("ls", str(path), "--limit", "0").stdout
    only = gencache("ls", str(path), "--model", "claude")
    assert len(only.stdout.splitlines()) == 2
    assert "Claude-3" in only.stdout
    bad = gencache("ls", str(path), "--limit", "-1")
    assert bad.returncode != 0
    assert "--limit" in bad.stderr


def test_show_renders_messages_and_summarises_images(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    image = base64.b64encode(b"\x89PNG" + b"\x00" * 14_000).decode()
    messages = [
        SystemMessage("Be brief."),
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
            ]
        ),
    ]
    with SQLiteCache(path) as cache:
        cache.update(dumps(messages), LLM, [ChatGeneration(message=AIMessage("A cat."))])
    key = gencache("ls", str(path)).stdout.splitlines()[1].split()[0]
    show = gencache("show", str(path), key)
    assert show.returncode == 0, show.stderr
    assert "system: Be brief." in show.stdout
    assert "human: What is in this picture? [image/png, 13.7 KB]" in show.stdout
    assert image[:100] not in show.stdout
    assert "A cat." in show.stdout


# -- targets --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["127.0.0.1:6379", "http://cache.local:6379/0"])
def test_a_target_that_is_not_a_redis_url_gets_a_hint(target: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gencache", "stats", target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "not a Redis URL" in result.stderr
    assert "did you mean redis://" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no file named after it


def test_upper_case_scheme_is_redis(tmp_path: Path) -> None:
    url = shared_server().url.replace("redis://", "REDIS://")
    result = subprocess.run(
        [sys.executable, "-m", "gencache", "stats", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


# -- explain and savings --------------------------------------------------------------------


def test_explain_names_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    stored = "[('model', 'gpt-4o-mini'), ('temperature', 0.2)]"
    with SQLiteCache(path) as cache:
        cache.update("Capital of France?", stored, [Generation(text="Paris")])
    prompt, llm = tmp_path / "p.txt", tmp_path / "l.txt"
    prompt.write_text("Capital of France?")
    llm.write_text("[('model', 'gpt-4o-mini'), ('temperature', 0.7)]")
    result = gencache(
        "explain", str(path), "--prompt-file", str(prompt), "--llm-string-file", str(llm)
    )
    assert result.returncode == 0, result.stderr
    assert "Miss" in result.stdout
    assert "temperature 0.7 != 0.2" in result.stdout
    llm.write_text(stored)
    hit = gencache(
        "explain", str(path), "--prompt-file", str(prompt), "--llm-string-file", str(llm)
    )
    assert "Hit" in hit.stdout


def test_stats_shows_what_every_process_saved(tmp_path: Path) -> None:
    path = tmp_path / "saved.sqlite3"
    for _ in range(2):  # two processes' worth of caches on one file
        with SQLiteCache(path) as cache:
            model = CountingChatModel(cache=cache, delay=0.0)
            model.invoke("q")
            model.invoke("q")
            cache.stats()
    result = gencache("stats", str(path), "--price", "counting-model=1,4")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "counting-model" in x and "0." in x)
    assert line.split()[1:4] == ["3", "300", "60"]  # 3 hits: 1 + 2 across the two runs
    assert "0.0005" in line  # 3 * (100 * 1 + 20 * 4) / 1e6 = 0.00054


def test_clear_one_scope(tmp_path: Path) -> None:
    path = tmp_path / "scoped.sqlite3"
    with SQLiteCache(path) as cache:
        cache.update("p", LLM, [Generation(text="global")])
        with control(scope="tenant-a"):
            cache.update("p", LLM, [Generation(text="a")])
    result = gencache("clear", str(path), "--scope", "tenant-a", "--yes")
    assert result.returncode == 0, result.stderr
    assert "deleted 1 entries of scope 'tenant-a'" in result.stdout
    with SQLiteCache(path) as cache:
        assert cache.lookup("p", LLM) == [Generation(text="global")]
