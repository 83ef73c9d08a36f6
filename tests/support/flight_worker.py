"""A worker process for the cross-process single-flight tests.

    python -m tests.support.flight_worker TARGET NAMESPACE CALLS_FILE GO_FILE MODE N [FAIL_FILE]

Builds a cache with ``single_flight=True`` on TARGET (a SQLite path or a Redis URL),
starts N threads (MODE ``threads``) or N asyncio tasks (MODE ``tasks``) that wait for
GO_FILE to exist and then ask a counting chat model the same question. Each provider
call appends a line to CALLS_FILE (O_APPEND: safe across processes). Prints one JSON
line: the answers (``"failed"`` for a call that raised).

With FAIL_FILE, the first provider call of all the processes (the one that creates
FAIL_FILE) raises :class:`ProviderError`, and the flight timeout is 300 s: a worker that
finishes within the test's timeout was released by the owner's failure, not the deadline.
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
from tests.chat_models import CountingChatModel, ProviderError


class FileCountingModel(CountingChatModel):
    """Counts provider calls in a file shared by every process."""

    calls_file: str = ""
    fail_file: str = ""

    def _note(self) -> None:
        fd = os.open(self.calls_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        if self.fail_file:
            try:
                os.close(os.open(self.fail_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                return
            time.sleep(self.delay)
            msg = "the owner's provider call failed"
            raise ProviderError(msg)

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
    fail_file = sys.argv[7] if len(sys.argv) > 7 else ""
    options: dict[str, Any] = {"single_flight": True, "strict": True}
    if fail_file:
        options["flight_timeout"] = 300
    cache: GenCache
    if target.startswith("redis://"):
        cache = RedisCache(target, namespace=namespace, **options)
    else:
        cache = SQLiteCache(target, **options)
    model = FileCountingModel(cache=cache, delay=0.5, calls_file=calls_file, fail_file=fail_file)
    go = Path(go_file)
    answers: list[str] = []
    Path(f"{go_file}.ready.{os.getpid()}").touch()
    if mode == "threads":

        def ask() -> None:
            _wait_for(go)
            try:
                answers.append(str(model.invoke("the same question").content))
            except ProviderError:
                answers.append("failed")

        threads = [threading.Thread(target=ask) for _ in range(int(count))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def run() -> None:
            await asyncio.to_thread(_wait_for, go)
            results = await asyncio.gather(
                *(model.ainvoke("the same question") for _ in range(int(count))),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, ProviderError):
                    answers.append("failed")
                elif isinstance(result, BaseException):
                    raise result
                else:
                    answers.append(str(result.content))

        asyncio.run(run())
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
