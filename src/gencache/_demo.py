"""The ``gencache demo``: a LangChain chat model answered from the cache, cold then warm."""

from __future__ import annotations

import time
from typing import TextIO

from langchain_core.language_models import FakeListChatModel

from gencache._base import GenCache

PROMPTS = [
    "What is the capital of France?",
    "Summarise the plot of Hamlet in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Give me three names for a grey cat.",
    "What does HTTP status 418 mean?",
]
ANSWERS = [
    "Paris.",
    "A Danish prince avenges his father's murder and destroys his family doing it.",
    "Buenos días.",
    "Ash, Smokey and Pewter.",
    "I'm a teapot: an April Fools' joke from RFC 2324.",
]


def run_demo(cache: GenCache, *, latency: float, out: TextIO, label: str) -> None:
    """Ask every prompt twice through ``cache`` and report cold vs warm time.

    The model is LangChain's ``FakeListChatModel`` with ``latency`` seconds of simulated
    provider delay per call: no network, no API key, no cost.
    """
    model = FakeListChatModel(responses=ANSWERS, sleep=latency, cache=cache)
    w = out.write
    w(f"gencache demo: {len(PROMPTS)} prompts, asked twice, through {label}\n")
    w(
        "The model is LangChain's FakeListChatModel with a simulated provider latency of "
        f"{latency * 1000:.0f} ms per call (no network, no API key).\n\n"
    )
    timings = []
    for attempt in ("cold", "warm"):
        before = cache.stats()
        start = time.perf_counter()
        for prompt in PROMPTS:
            t0 = time.perf_counter()
            answer = model.invoke(prompt).content
            ms = (time.perf_counter() - t0) * 1000
            w(f"  [{attempt}] {ms:8.2f} ms  {prompt!r} -> {answer!r}\n")
        elapsed = time.perf_counter() - start
        after = cache.stats()
        hits = after.hits - before.hits
        timings.append(elapsed)
        answered = f"{hits}/{len(PROMPTS)} answered from cache"
        w(f"  {attempt} run: {elapsed * 1000:.1f} ms, {answered}\n\n")
    cold, warm = timings
    speedup = cold / warm if warm > 0 else float("inf")
    stats = cache.stats()
    w(f"Warm run was {speedup:,.0f}x faster than the cold run.\n")
    w(
        f"Cache stats: hits={stats.hits} misses={stats.misses} "
        f"hit_rate={stats.hit_rate:.0%} updates={stats.updates} size={stats.size} "
        f"evictions={stats.evictions} expirations={stats.expirations}\n"
    )
