"""Accounting: what each cached answer cost, and what the hits saved.

At ``update`` time the cache records, per entry, what the original call cost: input and
output tokens (``usage_metadata`` of chat messages; ``token_usage`` / ``usage`` in a
generation's ``generation_info`` for LLMs, else the run's ``llm_output["token_usage"]``
noted by :mod:`gencache._usage`), the model (``response_metadata`` first, else
the ``llm_string``), and how long the provider took (from this thread's or task's miss of
the same key to its update, when known). Each hit adds that cost to the cache's savings,
per model and in total; money is computed from a price table when one is given.

Opt-in changes to what a hit returns (new objects, never the cached ones):
``zero_usage_on_hit`` sets a hit's ``usage_metadata`` token counts to 0 (the original
counts kept under ``response_metadata["gencache"]["usage"]``), so usage callbacks report
billed tokens only; ``mark_hits`` adds ``response_metadata["gencache"] = {"hit": True,
"age_s": ..., "backend": ...}``. Canonical keys ignore both fields, so neither changes a
later turn's key.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache._prices import GENAI_PRICES, Cost, Ledger, Prices, check_prices, is_count
from gencache._savings import SavingsBook, SavingsStore
from gencache._usage import generation_tokens, usage_of
from gencache.stats import Savings

__all__ = [
    "GENAI_PRICES",
    "Accountant",
    "Cost",
    "Ledger",
    "Pending",
    "Prices",
    "check_prices",
    "cost_of",
    "model_named",
    "rewrite_hit",
]

# Where an llm_string names its model, most telling first: the model parameter, the
# model class's ``_type``, the last part of a serialized class id.
_MODEL_RES = (
    re.compile(
        r"""["'](?:model_name|model|model_id|deployment_name)["']\s*[:,]\s*["']([^"']{1,200})"""
    ),
    re.compile(r"""["']_type["']\s*[:,]\s*["']([^"']{1,200})"""),
    re.compile(r'"id":\s*\[[^\]]*"([^"]{1,200})"\]'),
)
_PENDING_MAX = 4_096  # misses remembered for provider timing (oldest dropped first)
_TALLY_MAX, _TALLY_DELAY = 256, 1.0  # hits noted before they are counted, at most


def _model(llm_string: str, generations: Sequence[Generation]) -> str:
    for generation in generations:
        # Not getattr(generation, "message", None): on a plain Generation that raises and
        # catches pydantic's AttributeError, ~2.5 us.
        if not isinstance(generation, ChatGeneration):
            continue
        metadata = getattr(generation.message, "response_metadata", None) or {}
        for name in ("model_name", "model", "model_id"):
            value = metadata.get(name)
            if isinstance(value, str) and value:
                return value[:200]
    named = _NAMED.get(llm_string)
    if named is None:
        if len(_NAMED) >= _NAMED_MAX:
            _NAMED.clear()
        _NAMED[llm_string] = named = model_named(llm_string)
    return named


# model_named() of recent llm_strings (a few per application: one per model configuration),
# so that a plain Generation's cost does not run the regular expressions each time (1.1 us).
# Thread-safe as dict reads and writes are; a race only recomputes.
_NAMED: dict[str, str] = {}
_NAMED_MAX = 256
_new_tuple = tuple.__new__  # see cost_of()


def model_named(llm_string: str) -> str:
    """The model an llm_string names (its model parameter, else its ``_type``), or ``""``.

    Reads at most the first 100,000 characters; never raises.
    """
    head = llm_string[:100_000]
    for pattern in _MODEL_RES:
        found = pattern.search(head)
        if found:
            return found.group(1)
    return ""


def _tokens(generations: Sequence[Generation]) -> tuple[int, int]:
    tin = tout = 0
    found = False
    for generation in generations:
        carried = generation_tokens(generation)
        if carried is not None:
            tin, tout, found = tin + carried[0], tout + carried[1], True
    if not found and (noted := usage_of(generations)) is not None:
        return noted  # an LLM that reports usage in llm_output only (gencache._usage)
    return tin, tout


def cost_of(
    llm_string: str,
    generations: Sequence[Generation],
    seconds: float | None,
    tokens: tuple[int, int] | None = None,
) -> Cost:
    """What the call that produced ``generations`` cost. O(len(generations)).

    ``tokens`` (input, output), when given, are the counts noted at write time for an LLM
    that reported them in ``llm_output`` only.
    """
    tin, tout = _tokens(generations) if tokens is None else tokens
    # tuple.__new__ builds the same Cost as Cost(...), whose generated __new__ is Python:
    # 240 -> 120 ns, of ~1 us per entry hit.
    return _new_tuple(Cost, (_model(llm_string, generations), tin, tout, seconds))


class Pending:
    """When this process's misses happened, per caller and key, for provider timing.

    Thread-safe; bounded (the oldest of 4,096 is forgotten). O(1) per call.
    """

    def __init__(self) -> None:
        self._since: OrderedDict[tuple[Hashable, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, owner: Hashable, digest: str) -> None:
        """Remember that ``owner`` missed ``digest`` now."""
        with self._lock:
            self._since[owner, digest] = time.monotonic()
            if len(self._since) > _PENDING_MAX:
                self._since.popitem(last=False)

    def took(self, owner: Hashable, digest: str) -> float | None:
        """Seconds since ``owner`` missed ``digest`` (and forget it), or ``None``."""
        with self._lock:
            since = self._since.pop((owner, digest), None)
        return None if since is None else time.monotonic() - since


def _zeroed(usage: dict[str, Any]) -> dict[str, Any]:
    """Every token count of a usage dict (and its ``*_details``) set to 0."""
    for name, value in usage.items():
        if isinstance(value, dict):
            usage[name] = _zeroed(dict(value))
        elif is_count(value):
            usage[name] = 0
    return usage


def rewrite_hit(
    generations: list[Generation],
    *,
    zero_usage: bool,
    mark: dict[str, Any] | None,
) -> list[Generation]:
    """A hit's generations with zeroed usage and/or a hit mark: new objects, O(n).

    Only chat generations with an ``AIMessage`` change; others are returned as they are.
    """
    out: list[Generation] = []
    for generation in generations:
        message = getattr(generation, "message", None)
        if not isinstance(generation, ChatGeneration) or not isinstance(message, AIMessage):
            out.append(generation)
            continue
        update: dict[str, Any] = {}
        info: dict[str, Any] = dict(mark or {})
        usage = message.usage_metadata
        if zero_usage and usage is not None:
            info["usage"] = dict(usage)
            update["usage_metadata"] = _zeroed(dict(usage))
        if info:
            update["response_metadata"] = {**message.response_metadata, "gencache": info}
        if not update:
            out.append(generation)
            continue
        new = message.model_copy(update=update)
        out.append(ChatGeneration(message=new, generation_info=generation.generation_info))
    return out


class Accountant:
    """The accounting step of the cache template: costs in, savings out. Thread-safe.

    Args:
        prices: A price table, ``"genai-prices"``, or ``None``.
        savings: Where a persistent store keeps savings across processes, or ``None``.
        zero_usage: Rewrite hits with zero token counts (``zero_usage_on_hit``).
        mark: Rewrite hits with ``response_metadata["gencache"]`` (``mark_hits``).
        backend: The cache's class name, for the hit mark.
    """

    def __init__(
        self,
        prices: Mapping[str, tuple[float, float]] | str | None,
        savings: SavingsStore | None,
        *,
        zero_usage: bool,
        mark: bool,
        backend: str,
    ) -> None:
        self.ledger = Ledger(prices)
        self.pending = Pending()
        self._savings = savings
        self._book = None if savings is None else SavingsBook(savings)
        self._zero_usage, self._mark, self._backend = zero_usage, mark, backend
        # Hits noted as (digest, stored cost), counted in batches by _settle: a hit costs
        # one append (atomic, no lock); parsing, pricing and summing happen once per batch.
        self._tally: deque[tuple[str, object]] = deque()
        self._due: float | None = None
        self._settling = threading.Lock()

    def cost_meta(
        self, llm_string: str, generations: Sequence[Generation], seconds: float | None
    ) -> dict[str, Any]:
        """What to store with an entry about the call that produced it."""
        return cost_of(llm_string, generations, seconds).to_meta()

    def saved(self, digest: str, cost: Cost) -> None:
        """Count one hit of ``digest`` whose call cost ``cost``."""
        money = self.ledger.add(cost)
        if self._book is not None:
            saved = Savings(1, cost.input_tokens, cost.output_tokens, cost.seconds or 0.0, money)
            self._book.add(digest, cost.model, saved)

    @property
    def marks(self) -> bool:
        """Whether hits are marked (``mark_hits``): only then does a hit's age matter."""
        return self._mark

    def hit(
        self, digest: str, value: list[Generation], meta: Mapping[str, Any], age: float | None
    ) -> list[Generation]:
        """A hit read from the store: count its saving; rewrite it if asked to."""
        raw = meta.get("cost")
        if raw is not None:
            tally = self._tally
            tally.append((digest, raw))
            if len(tally) >= _TALLY_MAX:
                # Counted now; written to the store when its book's batch is due (a
                # write per 256 hits cost a near-cache hit 0.6 us: a round trip each).
                self._settle()
                if self._book is not None:
                    self._book.flush_if_due()
            elif self._book is not None:
                now = time.monotonic()
                if self._due is None:
                    self._due = now + _TALLY_DELAY
                elif now >= self._due:
                    self.flush()
        if not (self._zero_usage or self._mark):
            return value
        mark: dict[str, Any] | None = None
        if self._mark:
            rounded = None if age is None else round(max(0.0, age), 3)
            mark = {"hit": True, "age_s": rounded, "backend": self._backend}
        return rewrite_hit(value, zero_usage=self._zero_usage, mark=mark)

    def shared(
        self, digest: str, llm_string: str, value: list[Generation], seconds: float | None
    ) -> None:
        """Count the saving of an answer shared by another caller's call (single-flight)."""
        self.saved(digest, cost_of(llm_string, value, seconds))

    def _settle(self) -> None:
        """Count the noted hits: O(noted), one parse and one price per distinct cost."""
        costs: dict[Hashable, list[Any]] = {}  # stored cost -> [raw, hits]
        # The same meta object hit again (a near-cache hit keeps the entry's own) is
        # grouped by its id first: ~250 ns a hit less than building its items' tuple.
        # The tally holds each raw object until here, so an id names one object.
        seen: dict[int, list[Any]] = {}
        hits: dict[str, int] = {}
        with self._settling:
            self._due = None
            tally = self._tally
            while tally:
                try:
                    digest, raw = tally.popleft()
                except IndexError:  # pragma: no cover - drained by another thread
                    break
                group = seen.get(id(raw))
                if group is None:
                    try:
                        ident: Hashable = tuple(cast("dict[str, Any]", raw).items())
                        group = costs.get(ident)
                    except (AttributeError, TypeError):  # not a dict of hashable values
                        ident, group = id(raw), None
                    if group is None:
                        costs[ident] = group = [raw, 0, {}]
                    seen[id(raw)] = group
                group[1] += 1
                group[2][digest] = group[2].get(digest, 0) + 1
        book = self._book
        by_model: dict[str, Savings] = {}
        for raw, calls, digests in costs.values():
            cost = Cost.from_meta(raw)
            if cost is None:
                continue
            money = self.ledger.add(cost, calls)
            if book is not None:
                saved = Savings(
                    calls,
                    calls * cost.input_tokens,
                    calls * cost.output_tokens,
                    calls * (cost.seconds or 0.0),
                    money,
                )
                by_model[cost.model] = by_model.get(cost.model, Savings()) + saved
                for digest, count in digests.items():
                    hits[digest] = hits.get(digest, 0) + count
        if book is not None and hits:
            book.merge(by_model, hits)

    def snapshot(self) -> tuple[Savings, Mapping[str, Savings]]:
        """The total savings and a read-only per-model view, noted hits counted first."""
        self._settle()
        return self.ledger.snapshot()

    def flush(self) -> None:
        """Count the noted hits, and write the batched savings to the store now."""
        self._settle()
        if self._book is not None:
            self._book.flush()

    def stored(self) -> dict[str, Savings]:
        """The store's totals per model (``{}`` without a savings store)."""
        if self._savings is None:
            return {}
        self.flush()
        return self._savings.savings()

    def finalizer(self) -> Callable[[], None] | None:
        """What to call at exit so that batched savings are not lost."""
        return None if self._book is None else self.flush
