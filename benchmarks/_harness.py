"""Shared benchmark plumbing: realistic data, interleaved sampling, statistics, reports.

Every benchmark script compares gencache with LangChain's cache *in the same process*,
through this one harness:

- **sampling**: :func:`interleave` runs each contender's round in turn, reversing the
  order every other round so that machine drift hits all alike. A round returns
  per-operation samples in nanoseconds: one operation timed on its own (:func:`timed`),
  or, for operations too short to time one by one, the mean of a batch of operations
  (:func:`batched`); whole-run figures (threads, asyncio) give one sample per round;
- **statistics**: :class:`Stats`, the median, p90, p99 and max of a contender's samples;
- **report**: :func:`table`, one markdown table format for every script (the four
  figures per contender, the ratio ours / baseline at the median and p90, a note), and
  :func:`report`, which prints it and writes ``--json``;
- **command line**: :func:`arguments`, ``--quick``, ``--rounds N`` and ``--json PATH``.

Nothing here is thread-safe except :func:`run_threads`; all of it is cheap next to what
it times (one ``perf_counter_ns`` pair per sample).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
        f"{os.cpu_count() or 1} cores"
    )


T = TypeVar("T")

#: One contender's round: per-operation samples, in nanoseconds.
Round = Callable[[], list[float]]


def timed(op: Callable[..., object], *args: Any) -> float:
    """Run ``op(*args)`` once; return how long it took, in ns."""
    start = time.perf_counter_ns()
    op(*args)
    return float(time.perf_counter_ns() - start)


def per_op_ns(op: Callable[[], object], n: int) -> float:
    """Time ``op`` (which performs ``n`` operations) and return ns per operation."""
    return timed(op) / n


def batched(run: Callable[[Sequence[T]], object], items: Sequence[T], size: int) -> list[float]:
    """Time ``run`` on consecutive batches of ``size`` items; one ns/op sample per batch.

    For operations of a few hundred ns, where a clock read per operation would be a
    large part of what is measured.
    """
    samples = []
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        samples.append(timed(run, chunk) / len(chunk))
    return samples


def interleave(contenders: dict[str, Round], rounds: int) -> dict[str, list[float]]:
    """Run the contenders' rounds alternately (reversed every other round); gather samples."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders.items())
        for name, run in order[::-1] if r % 2 else order:
            samples[name] += run()
    return samples


def paired(
    baseline: Callable[[Sequence[T]], object],
    ours: Callable[[Sequence[T]], object],
    make: Callable[[int], Sequence[T]],
    batches: int,
) -> float:
    """The median over ``batches`` of ``ours``' time / ``baseline``'s on one batch each.

    Batch ``b`` is built twice by ``make(b)`` (fresh objects for each contender) and both
    run back to back, in alternating order: the machine's drift between rounds, which
    the interleaved medians still feel (+-25 % on a shared machine), cancels within each
    batch's ratio (runs an hour apart moved by +-0.03-0.05, over a few hundred batches).
    """
    ratios = []
    for b in range(batches):
        times: dict[bool, float] = {}
        for mine in (b % 2 == 1, b % 2 == 0):
            times[mine] = timed(ours if mine else baseline, make(b))
        ratios.append(times[True] / times[False])
    return statistics.median(ratios)


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


@dataclass(frozen=True)
class Stats:
    """The median, p90, p99 and max of one contender's samples (and their count)."""

    median: float
    p90: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Statistics of ``samples`` (at least one); percentiles by ``statistics.quantiles``."""
        if len(samples) == 1:
            x = samples[0]
            return cls(x, x, x, x, 1)
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return cls(statistics.median(samples), cuts[89], cuts[98], max(samples), len(samples))


@dataclass
class Row:
    """One workload: samples per contender.

    ``unit`` is ``"ns"`` for timings (printed as ns, µs or ms); other units (``"B"``,
    ``"%"``, ``"ops/s"``) name a single figure per contender, printed as it is.
    """

    name: str
    unit: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def stats(self, contender: str) -> Stats | None:
        """The contender's statistics, or None if it did not run this workload."""
        xs = self.samples.get(contender)
        return Stats.of(xs) if xs else None

    def median(self, contender: str) -> float:
        """The contender's median (it must have run this workload)."""
        return statistics.median(self.samples[contender])


def single(name: str, unit: str, values: dict[str, float], note: str = "") -> Row:
    """A row of one figure per contender (a size, a rate, a whole-run mean)."""
    return Row(name, unit, {who: [v] for who, v in values.items()}, note)


def table(rows: Sequence[Row], baseline: str, ours: str) -> str:
    """Render rows as the markdown table every benchmark prints.

    Columns: the workload; median / p90 / p99 / max for the baseline and for ours; the
    ratio ours / baseline at the median and the p90 (below 1 is faster or smaller); a note.
    """
    head = "median / p90 / p99 / max"
    lines = [
        f"| workload | {baseline} ({head}) | {ours} ({head}) "
        f"| ratio {ours} / {baseline} (median / p90) | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        base, mine = r.stats(baseline), r.stats(ours)
        lines.append(
            f"| {r.name} | {cell(base, r.unit)} | {cell(mine, r.unit)} "
            f"| {_ratios(base, mine)} | {r.note} |"
        )
    return "\n".join(lines)


def cell(s: Stats | None, unit: str) -> str:
    """``median / p90 / p99 / max`` in one scale chosen by the median, or a dash.

    Timings: ns below a median of 1 µs, µs below 1 ms, else ms.
    """
    if s is None:
        return "–"
    if s.count == 1:
        return _single(s.median, unit)
    figures = (s.median, s.p90, s.p99, s.max)
    if unit != "ns":
        return " / ".join(_number(x) for x in figures) + f" {unit}"
    scale, name = (1, "ns") if s.median < 1_000 else (1e3, "µs") if s.median < 1e6 else (1e6, "ms")
    return " / ".join(_number(x / scale) for x in figures) + f" {name}"


def _single(value: float, unit: str) -> str:
    if unit == "ns":
        if value >= 1e7:
            return f"{value / 1e6:,.2f} ms"
        return f"{value / 1000:.2f} µs" if value >= 10_000 else f"{value:.0f} ns"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.0f} {unit}"


def _number(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _ratios(base: Stats | None, mine: Stats | None) -> str:
    if base is None or mine is None or not base.median:
        return "–"
    if base.count == 1 or mine.count == 1 or not base.p90:
        return _ratio(mine.median / base.median)
    return f"{_ratio(mine.median / base.median)} / {_ratio(mine.p90 / base.p90)}"


def _ratio(ratio: float) -> str:
    # Below 0.1, two decimals would print 0.00×: give the inverse too.
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.4f}× (1/{1 / ratio:,.0f})"


def arguments(doc: str, quick_help: str = "fewer rounds, smaller sizes") -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--quick``, ``--rounds N``, ``--json PATH``.

    A script adds its own flags to the parser it gets back.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: per script)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    return parser


def rounds(args: argparse.Namespace, quick: int, full: int) -> int:
    """``--rounds`` if given, else the script's quick or full default."""
    chosen: int | None = args.rounds
    return chosen if chosen else quick if args.quick else full


def report(
    title: str,
    tables: Sequence[tuple[Sequence[Row], str, str]],
    json_path: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print ``title`` and each (rows, baseline, ours) table; write them to ``json_path``.

    The JSON holds, per table and row, every contender's median, p90, p99, max and sample
    count (ns for timings), plus ``extra`` as given.
    """
    print(f"{title}\n")
    print("\n\n".join(table(rows, base, ours) for rows, base, ours in tables))
    if json_path is None:
        return
    document = {
        "title": title,
        "tables": [
            {
                "baseline": base,
                "ours": ours,
                "rows": [
                    {
                        "name": r.name,
                        "unit": r.unit,
                        "note": r.note,
                        "stats": {who: vars(Stats.of(xs)) for who, xs in r.samples.items() if xs},
                    }
                    for r in rows
                ],
            }
            for rows, base, ours in tables
        ],
        **(extra or {}),
    }
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def redis_server() -> Iterator[int]:
    """A throwaway redis-server on a free loopback port; yields the port."""
    import redis  # only the Redis benchmarks need it

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="gencache-bench-")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *args, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        probe = redis.Redis(port=port)
        for _ in range(500):
            try:
                probe.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.01)
        probe.close()
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
