"""Backends under test: every contract test runs against each backend that supports it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from gencache import GenCache
from tests.backends import BACKENDS, Backend, Factory

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile("default")

__all__ = ["BACKENDS", "Backend", "Factory", "backends_with"]


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


# Without an optional extra (scripts/test runs the suite so too), the tests that need it
# are not collected; the backend list in tests/backends/ leaves Redis out by itself.
collect_ignore_glob: list[str] = []
if _missing("redis"):
    collect_ignore_glob += [
        "redis/*",
        "cli/test_redis_commands.py",
        "cli/test_cli_inspection.py",
        "contract/test_single_flight_processes.py",
        "unit/test_timeouts.py",  # SQLite and Redis seconds arguments, side by side
    ]
if _missing("langchain_openai"):
    collect_ignore_glob += [
        "integrations/test_openai.py",
        "integrations/test_openai_llm.py",
        "integrations/test_streaming.py",
        "contract/test_explain.py",
    ]
if _missing("langgraph"):
    collect_ignore_glob += ["integrations/test_langgraph.py"]
if _missing("genai_prices"):
    collect_ignore_glob += ["contract/test_genai_prices.py"]


def backends_with(*features: str) -> list[Any]:
    """Parameters for the backends that support every feature named."""
    return [pytest.param(b, id=b.name) for b in BACKENDS if set(features) <= b.features]


@pytest.fixture
def make_cache(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """A factory for empty caches of the backend under test; cleared afterwards."""
    backend: Backend = request.param
    made: list[GenCache] = []

    def make(**options: Any) -> GenCache:
        cache = backend.make(**options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests that take ``make_cache`` without their own parametrisation run on every backend.
    if "make_cache" in metafunc.fixturenames and not any(
        m.name == "parametrize" and "make_cache" in str(m.args[0])
        for m in metafunc.definition.iter_markers()
    ):
        metafunc.parametrize("make_cache", backends_with(), indirect=True)
