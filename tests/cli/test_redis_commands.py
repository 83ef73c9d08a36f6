"""The ``gencache`` inspection commands against a real Redis server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from langchain_core.outputs import Generation

from gencache import control
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer, free_port, shared_server
from tests.helpers import run_gencache as gencache


def test_stats_ls_export_and_clear_touch_only_the_namespace(tmp_path: Path) -> None:
    server = shared_server()
    namespace = f"cli-{uuid.uuid4().hex[:8]}"
    cache = RedisCache(server.url, namespace=namespace)
    for i in range(3):
        cache.update(f"prompt {i}", "model=m", [Generation(text=f"answer {i}")])
    with server.client() as raw:
        raw.set("unrelated", "keep me")
        ns = ["--namespace", namespace]
        stats = gencache("stats", server.url, *ns)
        assert stats.returncode == 0, stats.stderr
        assert "entries:   3" in stats.stdout
        assert len(gencache("ls", server.url, *ns).stdout.splitlines()) == 4

        dump = tmp_path / "dump.jsonl"
        assert gencache("export", server.url, *ns, "-o", str(dump)).returncode == 0
        assert len(dump.read_text().splitlines()) == 3
        assert json.loads(dump.read_text().splitlines()[0])["llm_string"] == "model=m"

        prune = gencache("prune", server.url, *ns)
        assert "Redis removes expired entries itself" in prune.stdout

        cleared = gencache("clear", server.url, *ns, "--yes")
        assert cleared.returncode == 0, cleared.stderr
        assert "deleted 3 entries" in cleared.stdout
        assert raw.get("unrelated") == b"keep me"
        assert cache.lookup("prompt 0", "model=m") is None

        imported = gencache("import", server.url, *ns, str(dump))
        assert imported.returncode == 0, imported.stderr
        assert cache.lookup("prompt 2", "model=m") == [Generation(text="answer 2")]
        raw.delete("unrelated")
    cache.clear()


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    result = gencache("stats", url)
    assert result.returncode == 1
    assert "gencache stats: error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2secret" not in result.stderr


def test_wrong_password_is_a_clear_error() -> None:
    server = RedisServer(password="right-password").start()
    try:
        url = f"redis://:wrong-password@127.0.0.1:{server.port}/0"
        result = gencache("ls", url)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "wrong-password" not in result.stderr
    finally:
        server.stop()


def test_demo_through_redis_is_shared_between_processes() -> None:
    server = shared_server()
    first = gencache("demo", "--backend", server.url, "--latency", "0.01", "--reset")
    assert first.returncode == 0, first.stderr
    assert "0/5 answered from cache" in first.stdout
    second = gencache("demo", "--backend", server.url, "--latency", "0.01")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("5/5 answered from cache") == 2
    RedisCache(server.url, namespace="gencache-demo").clear()


def test_explain_names_what_differs(tmp_path: Path) -> None:
    """``gencache explain`` on a Redis target: the same answers as on a SQLite file."""
    server = shared_server()
    namespace = f"cli-{uuid.uuid4().hex[:8]}"
    stored = "[('model', 'gpt-4o-mini'), ('temperature', 0.2)]"
    cache = RedisCache(server.url, namespace=namespace)
    cache.update("Capital of France?", stored, [Generation(text="Paris")])
    with control(scope="tenant-b"):
        cache.update("Capital of Spain?", stored, [Generation(text="Madrid")])
    prompt, llm = tmp_path / "p.txt", tmp_path / "l.txt"
    prompt.write_text("Capital of France?")
    llm.write_text("[('model', 'gpt-4o-mini'), ('temperature', 0.7)]")
    files = ["--namespace", namespace, "--prompt-file", str(prompt), "--llm-string-file", str(llm)]
    try:
        miss = gencache("explain", server.url, *files)
        assert miss.returncode == 0, miss.stderr
        assert "Miss" in miss.stdout
        assert "temperature 0.7 != 0.2" in miss.stdout
        llm.write_text(stored)
        assert "Hit" in gencache("explain", server.url, *files).stdout
        prompt.write_text("Capital of Spain?")
        scoped = gencache("explain", server.url, *files, "--scope", "tenant-a")
        assert "stored in scope 'tenant-b', looked up in scope 'tenant-a'" in scoped.stdout
        assert "Hit" in gencache("explain", server.url, *files, "--scope", "tenant-b").stdout
    finally:
        cache.clear()
        cache.close()
