"""Without the ``[redis]`` extra, gencache works and names the extra when Redis is asked for."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    class HideRedis:  # as if redis-py were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "redis" or name.startswith("redis."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideRedis())
    import gencache
    from gencache import InMemoryCache, SQLiteCache
    from langchain_core.outputs import Generation

    cache = InMemoryCache()
    cache.update("p", "l", [Generation(text="ok")])
    assert cache.lookup("p", "l") == [Generation(text="ok")]
    assert "redis" not in sys.modules
    try:
        gencache.RedisCache
    except ImportError as exc:
        print("ImportError:", exc)
    """
)


def test_redis_extra_missing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'gencache[redis]'" in result.stdout
