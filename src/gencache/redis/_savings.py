"""Savings kept in Redis: per-model totals in one hash, ``{namespace}:savings``.

Fields are ``<model>|calls``, ``|in``, ``|out``, ``|s`` and ``|money``, added with
``HINCRBY`` / ``HINCRBYFLOAT`` in one pipeline per batch. Per-entry hit counts are not kept
in Redis (a hash of every entry would outlive the entries Redis expires).
"""

from __future__ import annotations

from collections.abc import Mapping

from gencache.redis._clients import ERRORS, Redactor, SyncClient
from gencache.stats import Savings

__all__ = ["RedisSavings"]


class RedisSavings:
    """The :class:`~gencache._savings.SavingsStore` of one namespace. Process-safe."""

    def __init__(self, client: SyncClient, prefix: str, redactor: Redactor) -> None:
        self._client = client
        self._key = prefix + "savings"
        self._redactor = redactor

    def add_savings(self, by_model: Mapping[str, Savings], hits: Mapping[str, int]) -> None:
        """Add one batch: one pipeline (atomic per field; no transaction needed)."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for model, saved in by_model.items():
                pipe.hincrby(self._key, f"{model}|calls", saved.calls)
                pipe.hincrby(self._key, f"{model}|in", saved.input_tokens)
                pipe.hincrby(self._key, f"{model}|out", saved.output_tokens)
                pipe.hincrbyfloat(self._key, f"{model}|s", saved.seconds)
                if saved.money is not None:
                    pipe.hincrbyfloat(self._key, f"{model}|money", saved.money)
            pipe.execute()
        except ERRORS as exc:
            raise self._redactor.error(exc, "savings") from exc

    def savings(self) -> dict[str, Savings]:
        """Totals per model, for every worker that used the namespace."""
        try:
            raw = self._client.hgetall(self._key)
        except ERRORS as exc:
            raise self._redactor.error(exc, "savings") from exc
        fields: dict[str, dict[str, float]] = {}
        for name, value in raw.items():
            text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            model, _, part = text.rpartition("|")
            try:
                fields.setdefault(model, {})[part] = float(value)
            except (TypeError, ValueError):
                continue
        return {
            model: Savings(
                int(f.get("calls", 0)),
                int(f.get("in", 0)),
                int(f.get("out", 0)),
                f.get("s", 0.0),
                f.get("money"),
            )
            for model, f in fields.items()
        }
