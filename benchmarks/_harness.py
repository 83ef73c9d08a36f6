"""Shared benchmark plumbing: realistic data, interleaved timing, a markdown table.

Benchmarks compare gencache with LangChain's caches *in the same process*, alternating
rounds between the contenders so that machine drift hits both alike, and report medians
and ratios rather than absolute times.
"""

from __future__ import annotations

import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

#: A ~330-character llm_string shaped like the ones LangChain chat models produce.
LLM_STRING = (
    '{"lc": 1, "type": "constructor", "id": ["langchain", "chat_models", "openai", '
    '"ChatOpenAI"], "kwargs": {"model_name": "gpt-4o-mini", "temperature": 0.0, '
    '"max_tokens": 1024, "top_p": 1.0, "openai_api_key": {"lc": 1, "type": "secret", '
    '"id": ["OPENAI_API_KEY"]}, "max_retries": 2, "n": 1}, "name": "ChatOpenAI"}'
    '---[("stop", None)]'
)


def fresh(text: str) -> str:
    """An equal string that is a new object with no cached hash, as LangChain passes."""
    return (text + "x")[:-1]


def prompt(i: int) -> str:
    """A distinct ~500-character prompt."""
    body = f"Question {i}: summarise the following support ticket in two sentences. "
    return (body * 8)[:492] + f"|{i:07d}"


def generation(i: int) -> list[Generation]:
    """One chat generation of about 1 KB, as a chat model returns it."""
    text = (f"Answer {i}. " + "The customer reports that the export job fails. " * 25)[:1000]
    message = AIMessage(
        content=text,
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 120, "output_tokens": 250, "total_tokens": 370},
    )
    return [ChatGeneration(message=message)]


def environment() -> str:
    """A line naming the date, Python and machine."""
    return (
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.machine()}, {platform.system()}, "
        f"{_cpu_count()} cores"
    )


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


@dataclass
class Result:
    """One benchmark row: the same workload timed for each contender."""

    name: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""


def interleave(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each contender's round function alternately; return the median per contender.

    Each round function returns its own per-operation figure (e.g. ns/op).
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders.items())
        if r % 2:
            order.reverse()
        for name, run in order:
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def per_op_ns(op: Callable[[], object], n: int) -> float:
    """Time ``op`` (which performs ``n`` operations) and return ns per operation."""
    start = time.perf_counter_ns()
    op()
    return (time.perf_counter_ns() - start) / n


def run_threads(jobs: Sequence[Callable[[], object]]) -> int:
    """Run each job in a thread of its own, released together; return the wall time (ns)."""
    barrier = threading.Barrier(len(jobs) + 1)

    def start(job: Callable[[], object]) -> None:
        barrier.wait()
        job()

    pool = [threading.Thread(target=start, args=(job,)) for job in jobs]
    for thread in pool:
        thread.start()
    barrier.wait()
    began = time.perf_counter_ns()
    for thread in pool:
        thread.join()
    return time.perf_counter_ns() - began


def table(results: Sequence[Result], baseline: str, ours: str) -> str:
    """Render results as a markdown table with ours/baseline ratios."""
    lines = [
        f"| workload | {baseline} | {ours} | ratio ({ours} / {baseline}) | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        base, mine = r.values.get(baseline), r.values.get(ours)
        ratio = _ratio(mine / base) if base and mine is not None else "n/a"
        lines.append(
            f"| {r.name} | {_fmt(base, r.unit)} | {_fmt(mine, r.unit)} | {ratio} | {r.note} |"
        )
    return "\n".join(lines)


def _ratio(ratio: float) -> str:
    # Below 0.1, two decimals would print 0.00×: give the inverse too.
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.4f}× (1/{1 / ratio:,.0f})"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ns":
        return f"{value / 1000:.2f} µs" if value >= 10_000 else f"{value:.0f} ns"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.0f} {unit}"
