"""A worker process for the cross-process single-flight tests.

    python -m tests.support.flight_worker TARGET NAMESPACE CALLS_FILE GO_FILE MODE N

Builds a cache with ``single_flight=True`` on TARGET (a SQLite path or a Redis URL),
starts N threads (MODE ``threads``) or N asyncio tasks (MODE ``tasks``) that wait for
GO_FILE to exist and then ask a counting chat model the same question. Each provider
call appends a line to CALLS_FILE (O_APPEND: safe across processes). Prints one JSON
line: the answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage

from gencache import GenCache, RedisCache, SQLiteCache
from tests.chat_models import CountingChatModel


class FileCountingModel(CountingChatModel):
    """Counts provider calls in a file shared by every process."""

    calls_file: str = ""

    def _note(self) -> None:
        fd = os.open(self.calls_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Any:
        self._note()
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Any:
        self._note()
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def _wait_for(go: Path) -> None:
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.001)


def main() -> None:
    target, namespace, calls_file, go_file, mode, count = sys.argv[1:7]
    cache: GenCache
    if target.startswith("redis://"):
        cache = RedisCache(target, namespace=namespace, single_flight=True, strict=True)
    else:
        cache = SQLiteCache(target, single_flight=True, strict=True)
    model = FileCountingModel(cache=cache, delay=0.5, calls_file=calls_file)
    go = Path(go_file)
    answers: list[str] = []
    Path(f"{go_file}.ready.{os.getpid()}").touch()
    if mode == "threads":

        def ask() -> None:
            _wait_for(go)
            answers.append(str(model.invoke("the same question").content))

        threads = [threading.Thread(target=ask) for _ in range(int(count))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def run() -> None:
            await asyncio.to_thread(_wait_for, go)
            results = await asyncio.gather(
                *(model.ainvoke("the same question") for _ in range(int(count)))
            )
            answers.extend(str(r.content) for r in results)

        asyncio.run(run())
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
