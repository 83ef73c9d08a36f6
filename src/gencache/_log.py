"""Rate-limited warnings: a failing backend must not flood an application's logs."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Log a warning at most once per ``interval`` seconds per message kind.

    Thread-safe. Suppressed messages are counted and the count is appended to the next
    message of the same kind that gets through. Cost: one lock and one dict lookup.
    """

    def __init__(self, logger: logging.Logger, interval: float = 30.0) -> None:
        self._logger, self._interval = logger, interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` unless a message of ``kind`` was logged recently."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(msg, *args)
