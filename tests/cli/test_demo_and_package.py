"""The ``gencache`` command, run as a user would: in a subprocess."""

from __future__ import annotations

import types

import gencache
from tests.helpers import run_gencache

run = run_gencache


def test_demo_answers_the_warm_run_from_the_cache() -> None:
    result = run("demo", "--latency", "0.01")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FakeListChatModel" in out
    assert "simulated provider latency" in out
    assert "no network" in out
    assert "cold run" in out
    assert "0/5 answered from cache" in out
    assert "5/5 answered from cache" in out
    assert "hits=5 misses=5 hit_rate=50%" in out


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
        assert getattr(gencache, name) is not None
    assert set(gencache.__all__) <= set(dir(gencache))
