"""The write half of the cache template: what to write for an update, and the error policy.

:class:`ErrorPolicy` decides what a backend failure does (log and degrade, or raise);
:class:`Writes` turns an answer into the document to store (admission, TTL, the cost of
the call for savings, the codec) or decides to skip it. Both are used by
:class:`gencache._store.StoreCache`.
"""

from __future__ import annotations

from collections.abc import Hashable

from langchain_core.outputs import Generation

from gencache import codec
from gencache._accounting import Accountant
from gencache._admission import Admit
from gencache._control import Options
from gencache._document import document
from gencache._expiries import Expiries
from gencache._log import RateLimitedLog
from gencache._protocol import Key
from gencache._runs import provider_seconds
from gencache._ttl import Timer
from gencache.errors import BackendError
from gencache.stats import Counter

__all__ = ["ErrorPolicy", "Writes"]


class ErrorPolicy:
    """What a failure of the store (or of the codec on write) does. Thread-safe, O(1).

    Args:
        strict: Raise :class:`~gencache.errors.BackendError`; else log (rate-limited).
        log: Where warnings go.
    """

    def __init__(self, strict: bool, log: RateLimitedLog) -> None:
        self.strict = strict
        self._log = log

    def failed(self, exc: Exception, action: str) -> None:
        """Raise ``exc`` (as a ``BackendError``) when strict, else log it."""
        if not isinstance(exc, BackendError):  # a backend bug must not reach the caller
            wrapped = BackendError(f"{action} failed: unexpected {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        if self.strict:
            raise exc
        self._log.warning(
            action, "gencache: %s failed, continuing without the cache: %s", action, exc
        )


class Writes:
    """Prepares the writes of one cache. Thread-safe; one encode per write.

    Args:
        acct: The cache's accountant (provider timing and the cost to store).
        policy: The cache's error policy.
        admit: The admission hook, or ``None`` to admit every answer.
        ttl: The default TTL in seconds, or ``None``.
        timer: Wall-clock time, for ``created_at`` and expiry.
        describe: Whether documents carry the prompt and llm_string (self-describing).
        skipped: Counts writes skipped (``write=False``, empty or unstorable answers).
        refused: Counts writes the admission hook refused (or raised for).
    """

    def __init__(
        self,
        acct: Accountant,
        policy: ErrorPolicy,
        *,
        admit: Admit | None,
        ttl: float | None,
        timer: Timer,
        describe: bool,
        skipped: Counter,
        refused: Counter,
    ) -> None:
        self._acct, self._policy, self._admit = acct, policy, admit
        self._ttl, self._timer, self._describe = ttl, timer, describe
        self._skipped, self._refused = skipped, refused
        #: The expiry of the entries written lately, for ``explain()`` once they are gone.
        self.expiries = Expiries()

    def written(self, key: Key, expires_at: float | None) -> None:
        """Note a write that succeeded (its expiry, for ``explain()``). O(1)."""
        if expires_at is None:
            self.expiries.forget(key.digest)
        else:
            self.expiries.note(key.digest, expires_at, key.scope)

    def prepare(
        self, key: Key, value: list[Generation], opts: Options, owner: Hashable
    ) -> tuple[bytes, float, float | None] | None:
        """The write to make: ``(payload, created_at, expires_at)``, or ``None`` to skip it."""
        seconds = self._acct.pending.took(owner, key.digest)
        if seconds is None:
            seconds = provider_seconds()
        if not opts.write or not value:  # an empty hit would break every LangChain call
            next(self._skipped)
            return None
        if self._admit is not None:
            try:
                admitted = self._admit(key.prompt, key.llm_string, value)
            except Exception as exc:
                next(self._refused)
                error = BackendError(f"admit raised {type(exc).__name__}: {exc}")
                self._policy.failed(error, "admit")
                return None
            if not admitted:
                next(self._refused)
                return None
        ttl = opts.ttl if opts.ttl is not None else self._ttl
        now = self._timer()
        expires = None if ttl is None else now + ttl
        cost = self._acct.cost_meta(key.llm_string, value, seconds)
        try:
            payload = document(
                key, value, describe=self._describe, created_at=now, expires_at=expires, cost=cost
            )
        except codec.CodecError as exc:
            next(self._skipped)
            self._policy.failed(BackendError(f"the answer cannot be stored: {exc}"), "update")
            return None
        return payload, now, expires

    def restored(
        self, key: Key, value: list[Generation], created_at: float, expires_at: float | None
    ) -> bytes:
        """The document of an entry restored with given times (no cost: no call was made).

        Raises:
            BackendError: If the codec cannot store it.
        """
        try:
            return document(
                key,
                value,
                describe=self._describe,
                created_at=created_at,
                expires_at=expires_at,
                cost=None,
            )
        except codec.CodecError as exc:
            msg = f"the entry cannot be stored: {exc}"
            raise BackendError(msg) from exc
