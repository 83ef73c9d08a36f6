"""Test helpers shared by every suite: a fake clock and sample generations."""

from __future__ import annotations

import os
import subprocess
import sys

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation


class FakeClock:
    """A clock that moves only when told to, so TTL tests never sleep."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gens(text: str, n: int = 1) -> list[Generation]:
    """``n`` plain generations whose text starts with ``text``."""
    return [
        Generation(text=f"{text}#{i}" if i else text, generation_info={"i": i}) for i in range(n)
    ]


def chat_gens(text: str) -> list[Generation]:
    """One chat generation with an ``AIMessage``, as chat models return."""
    return [ChatGeneration(message=AIMessage(content=text, response_metadata={"model": "m"}))]


def run_gencache(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``gencache`` command as a user would: a new process, no terminal."""
    return subprocess.run(
        [sys.executable, "-m", "gencache", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
