"""The Redis backend under test: a real ``redis-server`` on a free loopback port.

The shared server starts on first use and stops when the test process exits; each cache
gets a fresh namespace on it. :class:`RedisServer` also serves the Redis-only tests,
which start their own servers (with a password, to kill and restart, as a cluster).
Nothing is mocked, and nothing is skipped: without ``redis-server`` the tests fail.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

try:
    from redis.client import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
except ModuleNotFoundError as exc:  # the [redis] extra is not installed: no such backend
    raise ModuleNotFoundError(str(exc), name=__name__) from exc

from gencache import GenCache
from gencache.redis import RedisCache
from tests.backends import Backend

__all__ = ["BACKEND", "RedisServer", "free_port", "shared_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """The path of ``redis-server``; raises if it is not installed (tests never skip)."""
    found = shutil.which("redis-server") or shutil.which("/usr/bin/redis-server")
    if found is None:
        msg = "redis-server is not installed: the Redis tests need it (apt install redis-server)"
        raise RuntimeError(msg)
    return found


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1, without persistence.

    Args:
        *args: Extra ``redis-server`` options, e.g. ``"--cluster-enabled", "yes"``.
        port: The port; a free one by default. A restart keeps it.
        password: A password clients must give (``--requirepass``).
        tls: ``(certificate, key)`` files: serve TLS only, with that self-signed certificate.
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        if password:
            args = (*args, "--requirepass", password)
        if tls:
            args = (*args, "--tls-cert-file", str(tls[0]), "--tls-key-file", str(tls[1]))
            args = (*args, "--tls-ca-cert-file", str(tls[0]), "--tls-auth-clients", "no")
        self._args = args
        self._dir = tempfile.mkdtemp(prefix="gencache-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[0]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        """A plain client, for setting up and checking what the cache wrote."""
        return Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> RedisServer:
        """Start the server and wait until it answers."""
        ports = ["--port", "0", "--tls-port"] if self.tls else ["--port"]
        command = [redis_server_binary(), *ports, str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self._dir, *self._args]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        with self.client() as probe:
            while True:
                try:
                    probe.ping()
                    return self
                except RedisConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.kill()
                        msg = f"redis-server did not start on port {self.port}"
                        raise RuntimeError(msg) from None
                    time.sleep(0.01)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open, but nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash or a lost host would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)


_SHARED: list[RedisServer] = []


def shared_server() -> RedisServer:
    """The server of this test run, started on first use and stopped at exit."""
    if not _SHARED:
        server = RedisServer().start()
        atexit.register(server.stop)
        _SHARED.append(server)
    return _SHARED[0]


def _make(**options: Any) -> GenCache:
    # The shared server is healthy: a 5 s socket timeout (not 0.5 s) keeps a machine busy
    # with other work from turning a slow connect into a failed test.
    options.setdefault("socket_timeout", 5)
    return RedisCache(shared_server().url, namespace=f"test-{uuid.uuid4().hex}", **options)


def _reopen(cache: GenCache) -> GenCache:
    assert isinstance(cache, RedisCache)
    return RedisCache(shared_server().url, namespace=cache.namespace)


def _damage(cache: GenCache, prompt: str, llm_string: str) -> None:
    assert isinstance(cache, RedisCache)
    with shared_server().client() as raw:
        raw.set(cache.redis_key(prompt, llm_string), b"\x80 not json", keepttl=True)


BACKEND = Backend(
    "redis", _make, frozenset({"ttl", "server_ttl", "shared", "damage"}), _reopen, _damage
)
