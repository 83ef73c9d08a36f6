"""Prices and the ledger: what a call cost, what that is worth, and the savings per model.

:class:`Cost` is what one provider call cost (tokens, model, seconds); :class:`Ledger`
adds up what hits saved, per model, and prices them from a table or from the offline data
of ``genai-prices``. Used by :mod:`gencache._accounting`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from gencache.stats import Savings

__all__ = ["GENAI_PRICES", "Cost", "Ledger", "Prices", "check_prices", "is_count"]

#: ``{model: (input price, output price)}`` per million tokens, in any one currency.
Prices = Mapping[str, tuple[float, float]]


class Cost(NamedTuple):
    """What one provider call cost (a named tuple: built per entry hit when savings are
    added up, at half the cost of a frozen dataclass).

    Attributes:
        model: The model name, or ``""`` when unknown.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        seconds: Provider time, or ``None`` when unknown.
    """

    model: str
    input_tokens: int
    output_tokens: int
    seconds: float | None

    def to_meta(self) -> dict[str, Any]:
        """The cost as stored in an entry's document."""
        meta: dict[str, Any] = {"model": self.model, "in": self.input_tokens}
        meta["out"] = self.output_tokens
        if self.seconds is not None:
            meta["s"] = round(self.seconds, 6)
        return meta

    @classmethod
    def from_meta(cls, meta: object) -> Cost | None:
        """The cost stored in a document, or ``None`` if absent or malformed."""
        if not isinstance(meta, dict):
            return None
        model, tin, tout, secs = meta.get("model"), meta.get("in"), meta.get("out"), meta.get("s")
        if not isinstance(model, str) or not is_count(tin) or not is_count(tout):
            return None
        seconds = float(cast("float", secs)) if _number(secs) else None
        return cls(model, cast("int", tin), cast("int", tout), seconds)


def is_count(value: object) -> bool:
    """Whether ``value`` is a token count: an ``int >= 0`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


GENAI_PRICES = "genai-prices"
"""``prices="genai-prices"``: price from the offline data of the ``genai-prices`` package."""


def check_prices(prices: object) -> dict[str, tuple[float, float]] | str | None:
    """Return a validated copy of a price table, :data:`GENAI_PRICES`, or ``None``.

    Raises:
        TypeError: If it is not a mapping of model name to two numbers.
        ValueError: If a price is negative or not finite.
        ImportError: For ``"genai-prices"`` without the package (the ``prices`` extra).
    """
    if prices is None:
        return None
    if prices == GENAI_PRICES:
        _genai_prices()  # fail now, with the install hint, not at the first hit
        return GENAI_PRICES
    if not isinstance(prices, Mapping):
        kind = type(prices).__name__
        msg = f"prices must be a mapping of model name to (input, output), not {kind}"
        raise TypeError(msg)
    table: dict[str, tuple[float, float]] = {}
    for model, pair in prices.items():
        if not isinstance(model, str) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
            msg = f"prices[{model!r}] must be (input_per_million, output_per_million)"
            raise TypeError(msg)
        if not all(_number(p) for p in pair):
            msg = f"prices[{model!r}] must be two finite numbers >= 0, not {pair!r}"
            raise ValueError(msg)
        table[model] = (float(pair[0]), float(pair[1]))
    return table


def _genai_prices() -> Any:
    try:
        import genai_prices
    except ImportError as exc:
        msg = "prices='genai-prices' needs the genai-prices package: pip install 'gencache[prices]'"
        raise ImportError(msg, name="genai_prices") from exc
    return genai_prices


class Ledger:
    """Savings per model, thread-safe. O(1) per hit (a table lookup, or genai-prices')."""

    def __init__(self, prices: Mapping[str, tuple[float, float]] | str | None) -> None:
        self._genai = _genai_prices() if prices == GENAI_PRICES else None
        self._prices = dict(prices) if isinstance(prices, Mapping) else {}
        # Per model: [calls, input tokens, output tokens, seconds, money or None], added to
        # in place: a frozen Savings per hit (three of them, with __add__) cost ~2 us a hit.
        self._by_model: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def _from_genai_prices(self, cost: Cost) -> float | None:
        """The price from genai-prices' bundled data (never fetched: no network)."""
        if self._genai is None or not cost.model:
            return None
        usage = self._genai.Usage(input_tokens=cost.input_tokens, output_tokens=cost.output_tokens)
        try:
            return float(self._genai.calc_price(usage, model_ref=cost.model).total_price)
        except Exception:  # an unknown model: no price
            return None

    def price(self, cost: Cost) -> float | None:
        """The money a call of ``cost`` is worth, or ``None`` without a price."""
        if self._genai is not None:
            return self._from_genai_prices(cost)
        price = self._table_price(cost.model)
        if price is None:
            return None
        return (cost.input_tokens * price[0] + cost.output_tokens * price[1]) / 1e6

    def _table_price(self, model: str) -> tuple[float, float] | None:
        price = self._prices.get(model)
        if price is None and model:
            price = _lookup_price(self._prices, model)
        return price

    def add(self, cost: Cost, calls: int = 1) -> float | None:
        """Count ``calls`` hits of an entry whose call cost ``cost``; return the money."""
        money = self.price(cost)
        worth = None if money is None else calls * money
        with self._lock:
            self._add(cost.model, [calls, *_scaled(cost, calls)], worth)
        return worth

    def add_all(self, hits: Iterable[tuple[Cost, int]]) -> None:
        """:meth:`add` for each ``(cost, calls)``.

        With a price table (linear in tokens) the hits are summed per model first, then
        priced once per model under one lock; genai-prices prices each cost. O(len(hits)).
        """
        if self._genai is not None:  # not linear in tokens: each cost priced on its own
            for cost, calls in hits:
                self.add(cost, calls)
            return
        sums: dict[str, list[Any]] = {}
        # _scaled() written out: a call per entry hit cost the in-memory "savings added up"
        # benchmark row 2.59 -> 2.25x of LangChain's lookup (paired; 500 entries per drain).
        for (model, tin, tout, seconds), calls in hits:
            total = sums.get(model)
            if total is None:
                sums[model] = total = [0, 0, 0, 0.0]
            total[0] += calls
            total[1] += calls * tin
            total[2] += calls * tout
            if seconds is not None:
                total[3] += calls * seconds
        with self._lock:
            for model, total in sums.items():
                price = self._table_price(model)
                money = None if price is None else (total[1] * price[0] + total[2] * price[1]) / 1e6
                self._add(model, total, money)

    def _add(self, model: str, counts: list[Any], worth: float | None) -> None:
        """Add ``[calls, input, output, seconds]`` and the money to the model's totals in
        place; the caller holds the lock."""
        totals = self._by_model.get(model)
        if totals is None:
            self._by_model[model] = totals = [0, 0, 0, 0.0, None]
        totals[0] += counts[0]
        totals[1] += counts[1]
        totals[2] += counts[2]
        totals[3] += counts[3]
        if worth is not None:
            totals[4] = worth if totals[4] is None else totals[4] + worth

    def snapshot(self) -> tuple[Savings, Mapping[str, Savings]]:
        """The total and a read-only per-model view."""
        with self._lock:
            by_model = {model: Savings(*totals) for model, totals in self._by_model.items()}
        total = Savings()
        for saved in by_model.values():
            total += saved
        return total, MappingProxyType(by_model)


def _scaled(cost: Cost, calls: int) -> tuple[int, int, float]:
    """Input tokens, output tokens and seconds of ``calls`` calls of ``cost``."""
    return calls * cost.input_tokens, calls * cost.output_tokens, calls * (cost.seconds or 0.0)


def _lookup_price(prices: dict[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    """A dated model name (``gpt-4o-mini-2024-07-18``) priced by its base name."""
    best = ""
    for name in prices:
        if model.startswith(name) and len(name) > len(best):
            best = name
    return prices[best] if best else None
