"""The ``gencache`` command and ``scripts/demo``, run as a user would: in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import gencache
from tests.helpers import run_gencache

run = run_gencache
ROOT = Path(__file__).resolve().parents[2]


def test_demo_in_memory_says_where_each_answer_came_from() -> None:
    result = run("demo", "--latency", "0.01")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FakeListChatModel" in out
    assert "simulated provider latency of 10 ms" in out
    assert "no network" in out
    assert out.count("ms  from the model") == 5
    assert out.count("ms  from the cache") == 5
    assert "5/5 sent to the model, 0/5 answered from cache (a cold run)" in out
    assert "0/5 sent to the model, 5/5 answered from cache" in out
    assert re.search(
        r"Pass 2: every prompt answered from the cache pass 1 wrote: .* instead of", out
    )
    assert "earlier process" not in out  # an in-memory cache starts empty
    # The conversation: canonical keys hit every turn of the re-run, LangChain's key 1 of 5.
    assert "gencache (canonical keys)    run 2: 5/5 turns answered from the cache" in out
    assert "LangChain's InMemoryCache    run 2: 1/5 turns answered from the cache" in out
    # 5 prompts and 5 turns, each missed once and hit once.
    assert "hits=10 misses=10 hit_rate=50%" in out
    assert "Saved by this process's hits: 10 model calls" in out
    assert "[cold]" not in out
    assert "--backend sqlite keeps it" in out


def test_demo_second_process_says_an_earlier_process_wrote_the_cache(tmp_path: Path) -> None:
    target = str(tmp_path / "demo.sqlite3")
    first = run("demo", "--backend", target, "--latency", "0.01")
    assert first.returncode == 0, first.stderr
    assert "written by earlier runs: 0" in first.stdout
    assert "Run the same command again" in first.stdout
    second = run("demo", "--backend", target, "--latency", "0.01")
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "written by earlier runs: 10" in out  # 5 prompts and 5 conversation turns
    assert "from the model" not in out
    assert out.count("ms  from the cache") == 10
    # This process never called the model: the comparison is the simulated cost.
    assert re.search(
        r"Pass 1: every prompt answered from the cache an earlier process wrote: "
        r"[\d.]+ ms instead of 50 ms \(5 model calls x 10 ms of simulated latency\)\.",
        out,
    ), out
    assert "Pass 2: every prompt answered from the same cache" in out
    assert "cold" not in out
    assert "faster" not in out  # no speed-up against a pass that was not cold
    assert "hits=20 misses=0 hit_rate=100%" in out
    # Savings kept in the file: the first process's 10 hits and this one's 20.
    assert "Saved by every process that used this cache: 30 model calls" in out


def _fake_checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's ``scripts/demo`` beside a ``.venv`` whose pip only logs.

    ``.venv/bin/python`` runs this interpreter, except ``-m pip``, which appends its
    arguments to ``pip.log``; ``src`` links to the real sources, so the gencache that this
    interpreter imports is "installed from this checkout".
    """
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo", checkout / "scripts" / "demo")
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    (checkout / "src").symlink_to(ROOT / "src")
    bin_ = checkout / ".venv" / "bin"
    bin_.mkdir(parents=True)
    python, log = bin_ / "python", checkout / "pip.log"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -m ] && [ "$2" = pip ]; then echo "$*" >> "{log}"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    (bin_ / "gencache").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gencache "$@"\n')
    for script in (python, bin_ / "gencache"):
        script.chmod(0o755)
    return checkout


def _script(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "demo"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def _pip_calls(checkout: Path) -> int:
    log = checkout / "pip.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_scripts_demo_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    checkout = _fake_checkout(tmp_path)
    first = _script(checkout, "--help")  # no stamp yet: installs, then records the stamp
    assert first.returncode == 0, first.stderr
    assert "installing gencache" in first.stdout
    assert _pip_calls(checkout) == 1
    demo = _script(checkout, "--latency", "0")  # nothing changed: straight to the demo
    assert demo.returncode == 0, demo.stderr
    assert "installing" not in demo.stdout
    assert _pip_calls(checkout) == 1
    assert "5/5 answered from cache" in demo.stdout
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a changed dependency, say\n")
    again = _script(checkout, "--help")
    assert again.returncode == 0, again.stderr
    assert "installing gencache" in again.stdout
    assert _pip_calls(checkout) == 2


def test_help_and_bad_arguments() -> None:
    assert "demo" in run("--help").stdout
    bad = run("demo", "--latency", "-1")
    assert bad.returncode == 2
    assert "must be >= 0" in bad.stderr
    assert run().returncode == 2


def test_public_names_are_sorted_and_complete() -> None:
    assert gencache.__all__ == sorted(gencache.__all__)
    public = {
        name
        for name, value in vars(gencache).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations", "TYPE_CHECKING", "Any"} <= set(gencache.__all__)
    for name in gencache.__all__:
        if name == "RedisCache" and importlib.util.find_spec("redis") is None:
            # The optional extra is missing: the error says what to install.
            with pytest.raises(ImportError, match=r"pip install 'gencache\[redis\]'"):
                getattr(gencache, name)
            continue
        assert getattr(gencache, name) is not None
    assert set(gencache.__all__) <= set(dir(gencache))
