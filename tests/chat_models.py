"""Chat models for tests that count provider calls: real ``BaseChatModel`` subclasses, so
every call goes through LangChain's own cache path (lookup, provider, update)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ProviderError(RuntimeError):
    """What a failing provider raises."""


class CountingChatModel(BaseChatModel):
    """Answers ``"answer to <last message>"`` after ``delay`` seconds; counts its calls.

    ``fail_first``: the first N provider calls raise :class:`ProviderError`.
    Usage is reported as 100 input / 20 output tokens per call.
    """

    delay: float = 0.2
    fail_first: int = 0
    calls: int = 0
    model_name: str = "counting-model"

    def model_post_init(self, context: Any) -> None:
        object.__setattr__(self, "_lock", threading.Lock())

    @property
    def _llm_type(self) -> str:
        return "counting-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "delay": self.delay}

    def _count(self) -> int:
        with self._lock:  # type: ignore[attr-defined]
            self.calls += 1
            return self.calls

    def _answer(self, messages: list[BaseMessage], number: int) -> ChatResult:
        if number <= self.fail_first:
            msg = f"provider failed (call {number})"
            raise ProviderError(msg)
        text = f"answer to {messages[-1].content}"
        message = AIMessage(
            content=text,
            id=f"resp-{number}-{time.monotonic_ns()}",  # a provider id: new on every call
            usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
            response_metadata={
                "model_name": self.model_name,
                "system_fingerprint": f"fp-{number}",
                "created": time.time(),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        number = self._count()
        time.sleep(self.delay)
        return self._answer(messages, number)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        number = self._count()
        await asyncio.sleep(self.delay)
        return self._answer(messages, number)


class ToolAgentModel(CountingChatModel):
    """Asks for a tool after each human turn, answers after each tool result.

    Tool-call arguments come back in a different key order on every call, as providers
    do; ids and metadata differ on every call too.
    """

    def _answer(self, messages: list[BaseMessage], number: int) -> ChatResult:
        last = messages[-1]
        meta = {"model_name": self.model_name, "created": time.time()}
        usage = {"input_tokens": 50, "output_tokens": 10, "total_tokens": 60}
        if isinstance(last, ToolMessage):
            message = AIMessage(
                content=f"the tool said {last.content}",
                id=f"resp-{number}",
                usage_metadata=usage,
                response_metadata=meta,
            )
        else:
            args = {"query": str(last.content), "limit": 3}
            if number % 2:
                args = dict(reversed(list(args.items())))
            call = {"name": "search", "args": args, "id": f"call-{len(messages)}"}
            message = AIMessage(
                content="",
                id=f"resp-{number}",
                tool_calls=[call],
                usage_metadata=usage,
                response_metadata=meta,
            )
        return ChatResult(generations=[ChatGeneration(message=message)])
