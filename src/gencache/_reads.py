"""The read half of the cache template: decoding a stored record, and dropping bad ones.

Used by :class:`gencache._store.StoreCache`: a read record is opened (decoded, its key
and age checked), a hit's saving goes to the accountant, and a damaged entry is deleted
(compare-and-delete: never a newer entry).
"""

from __future__ import annotations

import logging

from langchain_core.outputs import Generation

from gencache._accounting import Accountant
from gencache._control import Options
from gencache._document import open_record
from gencache._log import RateLimitedLog
from gencache._protocol import FrontHit, Key, Record, Store
from gencache._ttl import Timer

__all__ = ["Reads"]

_log = logging.getLogger("gencache._store")


class Reads:
    """Opens the reads of one cache. Thread-safe; one decode per read.

    Args:
        store: The backend (for deleting damaged entries).
        acct: The cache's accountant (a hit's saving; the hit rewrites).
        timer: Wall-clock time, for expiry and ``max_age``.
        log: Where warnings about damaged entries go.
    """

    def __init__(self, store: Store, acct: Accountant, timer: Timer, log: RateLimitedLog) -> None:
        self._store, self._acct, self._timer, self._log = store, acct, timer, log

    def open(
        self, key: Key, record: Record | None, opts: Options
    ) -> tuple[list[Generation] | None, float | None, bool, FrontHit | None]:
        """Decode a read; return ``(value, expires_at, must_delete, for_front)``.

        Counts no hit or miss; a hit's saving goes to the accountant, which may rewrite it
        (``zero_usage_on_hit``, ``mark_hits``). ``for_front`` is the entry as read, before
        any rewrite, for a front layer to keep (``None`` for a miss).
        """
        if record is None:
            return None, None, False, None
        now = self._timer()
        opened = open_record(key, record, now, opts.max_age)
        if opened.damage is not None:  # deleted: serving it could answer another prompt
            self._log.warning(
                "damaged", "gencache: dropping %s entry %s", opened.damage, key.digest[:16]
            )
            return None, None, True, None
        if opened.value is None:  # expired (the store removes it) or too old for this call
            return None, None, False, None
        age = None if opened.created is None else now - opened.created
        fresh = FrontHit(opened.value, opened.meta, opened.created)
        value = self._acct.hit(key.digest, opened.value, opened.meta, age)
        return value, opened.expires, False, fresh

    def front_hit(self, key: Key, hit: FrontHit) -> list[Generation]:
        """A hit a front layer answered: its saving counted, rewritten as a read would be."""
        age = None  # only a marked hit says its age: no clock read otherwise
        if self._acct.marks and hit.created is not None:
            age = self._timer() - hit.created
        return self._acct.hit(key.digest, hit.generations, hit.meta, age)

    def drop(self, key: Key, record: Record | None) -> None:
        """Delete a damaged entry if it is still ``record``; never raises."""
        if record is None:
            return
        try:
            self._store.delete(key, record)
        except Exception:  # housekeeping: the answer is a miss whatever happens here
            _log.debug("gencache: could not delete entry %s", key.digest[:16], exc_info=True)

    async def adrop(self, key: Key, record: Record | None) -> None:
        """Async :meth:`drop`."""
        if record is None:
            return
        try:
            await self._store.adelete(key, record)
        except Exception:
            _log.debug("gencache: could not delete entry %s", key.digest[:16], exc_info=True)
