"""``Lane``: GET and SET on connections kept out of redis-py's pool between calls.

On redis-py 8.1 ``Redis.get`` adds ~20 µs of Python to each round trip (dispatch, a retry
closure, metrics hooks, the command packer) and the blocking pool's checkout and return
~15 µs more (a queue under a condition variable, metrics). A lane pops an idle connection
from a list, sends a command packed here, reads the reply with redis-py and pushes the
connection back: ~4 µs of Python. Measured (gencache 0.1): a hit 0.61x of LangChain's
``RedisCache`` (docs/benchmarks.md); without the lane, 0.73-0.89x. ``SET`` goes the same
way since 0.2, packed into one buffer (see :data:`_JOIN`).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from typing import Any

import redis.exceptions as rexc
from redis.connection import BlockingConnectionPool

__all__ = ["Lane"]

# GET <key> as RESP sends it (RESP2 and RESP3 alike): what redis-py's packer builds, ~3 µs less.
_GET = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
_SET = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n"
_SET_PX = b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n"
_PX = b"\r\n$2\r\nPX\r\n$%d\r\n%s\r\n"
# redis-py sends each part of a command with its own sendall: a syscall, and a packet
# (TCP_NODELAY). Below this size one copy of the value costs less than two more syscalls
# (a 64 KB copy is a few µs): an update of 1 KB measured 7-15 µs faster joined.
_JOIN = 64 * 1024


class Lane:
    """Kept connections of one pool; thread-safe (list pops and appends are atomic).

    The connections stay checked out of the pool, whose bound therefore still holds; at
    most ``idle`` wait here, the rest go back. A connection that raised anything is
    disconnected and given back (none waits here with an unread reply), one marked for
    reconnection (a maintenance notification) too; a forked child drops the parent's.
    Retries as the clients built from a URL do: once, after a ``ConnectionError``.
    """

    def __init__(self, pool: BlockingConnectionPool, idle: int) -> None:
        self._pool: Any = pool  # its methods are untyped
        self._max_idle = idle
        self._encode: Callable[[str], bytes] = self._pool.get_encoder().encode
        self._idle: list[Any] = []  # redis.connection.Connection
        os.register_at_fork(after_in_child=functools.partial(_forget, weakref.ref(self)))

    def get(self, rkey: str) -> object:
        """The reply to ``GET rkey``; raises what redis-py raises."""
        key = self._encode(rkey)  # as redis-py encodes it (the URL may set the encoding)
        return self._call((_GET % (len(key), key),))

    def set(self, rkey: str, value: bytes, px: int | None) -> object:
        """The reply to ``SET rkey value [PX px]``."""
        key = self._encode(rkey)
        if px is None:
            parts: tuple[bytes, ...] = (_SET % (len(key), key, len(value)), value, b"\r\n")
        else:
            ms = b"%d" % px
            parts = (_SET_PX % (len(key), key, len(value)), value, _PX % (len(ms), ms))
        if len(value) < _JOIN:
            parts = (b"".join(parts),)
        return self._call(parts)

    def run(self, *commands: tuple[str | bytes | int, ...]) -> list[object]:
        """The replies to ``commands``, sent in one write and read in order: one round trip.

        Raises what redis-py raises; an error reply raises once every reply is read.
        """
        packed = b"".join(self._pack(command) for command in commands)
        replies = self._call((packed,), len(commands))
        assert isinstance(replies, list)
        return replies

    def _pack(self, command: tuple[str | bytes | int, ...]) -> bytes:
        parts = [b"*%d\r\n" % len(command)]
        for arg in command:
            if isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, int):
                data = b"%d" % arg
            else:
                data = self._encode(arg)
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    def _call(self, command: tuple[bytes, ...], replies: int = 0) -> object:
        """Send ``command``; its reply, or a list of ``replies`` replies when given."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
        try:
            try:
                value = _roundtrip(conn, command, replies)
            except rexc.ConnectionError:  # closed, e.g. by a restart: redis-py disconnected it
                value = _roundtrip(conn, command, replies)  # the one retry; this reconnects
        except BaseException:
            conn.disconnect()
            self._pool.release(conn)
            raise
        if len(self._idle) < self._max_idle and not conn.should_reconnect():
            self._idle.append(conn)
        else:
            self._pool.release(conn)  # which disconnects it if it should reconnect
        return value

    def close(self) -> None:
        """Disconnect the idle connections and give them back to the pool."""
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:  # another thread took the last one
                return
            conn.disconnect()
            self._pool.release(conn)

    def forget(self) -> None:
        """Drop the idle connections without touching them (their sockets are a parent's)."""
        self._idle = []


def _roundtrip(conn: Any, command: tuple[bytes, ...], replies: int) -> object:
    conn.send_packed_command(command)  # connects a disconnected connection first
    if replies:
        values = [conn.read_response() for _ in range(replies)]
        for value in values:
            if isinstance(value, rexc.ResponseError):
                raise value
        return values
    reply = conn.read_response()
    if isinstance(reply, rexc.ResponseError):
        raise reply
    return reply


def _forget(ref: weakref.ref[Lane]) -> None:
    lane = ref()
    if lane is not None:  # in a forked child
        lane.forget()
