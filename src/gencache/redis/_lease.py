"""Single-flight leases in Redis: ``SET NX PX`` keys with an owner token.

The lease of an entry lives under ``{namespace}:lease:{tag}:{digest}`` (never matched as an
entry: ``clear`` and ``len`` ignore it; Redis expires it at its deadline). Its value is the
owner's token; a failed owner replaces it with ``failed:<token>`` for a few seconds, so its
waiters pay themselves at once, together.
"""

from __future__ import annotations

from gencache._flight import HeldLeases
from gencache._protocol import Key
from gencache.redis._clients import ERRORS, Redactor, SyncClient
from gencache.redis._lane import Lane

__all__ = ["RedisLeases"]

_FAILED_MS = 5_000
# Release: only while the lease is still ours; a failure leaves a short mark.
_RELEASE = """if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  return redis.call('SET', KEYS[1], 'failed:' .. ARGV[1], 'PX', ARGV[3])
end
return redis.call('DEL', KEYS[1])"""


class RedisLeases:
    """The :class:`~gencache._flight.Leases` of one namespace. Thread- and process-safe.

    ``lease`` is one ``SET NX PX`` (plus a ``GET`` when taken), ``release`` one script,
    unless the entry's write carried the release (:meth:`release_command`): then none.
    """

    def __init__(
        self, client: SyncClient, prefix: str, redactor: Redactor, lane: Lane | None = None
    ) -> None:
        self._client = client
        self._lane = lane  # kept connections, when the cache built its client from a URL
        self._prefix = prefix + "lease:"
        self._redactor = redactor
        self.held = HeldLeases()  # the owner's write releases its lease (release_command)

    def release_command(self, key: Key) -> tuple[tuple[str | int, ...], str] | None:
        """The command that releases our lease of ``key``, to send with the entry's write.

        Returns it with the token, to give back to :attr:`held` if the write fails, or
        ``None`` if this process holds no lease of ``key``. O(1), no round trip.
        """
        token = self.held.take(key.digest)
        if token is None:
            return None
        return ("EVAL", _RELEASE, 1, self._rkey(key), token, "0", _FAILED_MS), token

    def _rkey(self, key: Key) -> str:
        return self._prefix + key.digest  # the digest already names the scope

    def lease(self, key: Key, token: str, seconds: float) -> str | None:
        """Take the lease of ``key``; ``None`` if taken, else ``"busy"`` or ``"failed"``."""
        rkey = self._rkey(key)
        try:
            px = max(1, round(seconds * 1000))
            if self._lane is not None:
                taken = self._lane.run(("SET", rkey, token, "NX", "PX", px))[0] is not None
            else:
                taken = bool(self._client.set(rkey, token, nx=True, px=px))
            if taken:
                self.held.hold(key.digest, token)
                return None
            return _state(self._client.get(rkey)) or "busy"
        except ERRORS as exc:
            raise self._redactor.error(exc, "lease") from exc

    def release(self, key: Key, token: str, *, failed: bool) -> None:
        """End our lease; a failure leaves a short mark that releases the waiters.

        No round trip when the entry's write released it already.
        """
        if self.held.released(key.digest, token, failed=failed):
            return
        try:
            self._client.eval(
                _RELEASE, 1, self._rkey(key), token, "1" if failed else "0", _FAILED_MS
            )
        except ERRORS as exc:
            raise self._redactor.error(exc, "lease release") from exc

    def lease_state(self, key: Key) -> str | None:
        """``"busy"``, ``"failed"`` or ``None`` (no lease)."""
        try:
            return _state(self._client.get(self._rkey(key)))
        except ERRORS as exc:
            raise self._redactor.error(exc, "lease read") from exc


def _state(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, bytes) else str(value).encode()
    return "failed" if text.startswith(b"failed:") else "busy"
