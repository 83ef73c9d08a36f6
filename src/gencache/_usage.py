"""Token usage as LangChain reports it: on a generation, or in an LLM's ``llm_output``.

:func:`generation_tokens` reads what one generation carries (a chat message's
``usage_metadata``; for LLMs ``generation_info["token_usage"]`` or ``["usage"]``, with
OpenAI's or Anthropic's names). The rest of this module is for the LLMs that carry none:

An LLM such as ``langchain_openai.OpenAI`` puts its token counts in the ``LLMResult``'s
``llm_output``, which LangChain does not pass to the cache: ``update`` sees the generations
only. The run watcher (:mod:`gencache._flight`) hands every finished LLM run to
:func:`note_end`, which fires before LangChain writes the cache; it remembers the counts by
the identity of the run's first generation, and :func:`usage_of` finds them at ``update``.

Attribution: LangChain splits a batched call into one run per prompt and keeps the whole
batch's usage on the first run only (``LLMResult.flatten``; the other runs carry
``token_usage == {}``). gencache divides it evenly over the batch's prompts (the batch size
comes from ``on_llm_start``), so each entry records ``total // n`` tokens (the first also
the remainder): exact for a call of one prompt, an estimate for a batch. The runs of one
batch end one after another in one thread, which is how the siblings are found.

Thread-safe. Bounded: the counts of the last 1,024 runs and the batch sizes of the last
1,024 starts are kept, each O(1) to note and to find.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.outputs import ChatGeneration, Generation

from gencache._prices import is_count

__all__ = [
    "NOTED",
    "generation_tokens",
    "note_end",
    "note_start",
    "usage_counts",
    "usage_of",
]

_KEEP = 1024
_lock = threading.Lock()
# id(first generation) -> (that generation, input tokens, output tokens). The generation is
# held so that its id cannot be reused while the entry lives.
# Empty until an LLM reports usage this way: callers test it before calling usage_of().
NOTED: OrderedDict[int, tuple[Generation, int, int]] = OrderedDict()
_batch_sizes: OrderedDict[Any, int] = OrderedDict()


class _OpenBatch(threading.local):
    """The batch whose later runs are still to end in this thread: their share, and how many."""

    def __init__(self) -> None:
        self.share: tuple[int, int] = (0, 0)
        self.left = 0


_open = _OpenBatch()


def _count(value: object) -> int:
    if type(value) is int:  # the usual case, in one test (bool is not int's type)
        return value if value >= 0 else 0
    return cast("int", value) if is_count(value) else 0


def usage_counts(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of a usage mapping with OpenAI's or Anthropic's names.

    A missing or malformed count (not an int >= 0) is 0.
    """
    tin = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
    tout = _count(usage.get("completion_tokens", usage.get("output_tokens")))
    return tin, tout


def generation_tokens(generation: object) -> tuple[int, int] | None:
    """(input, output) tokens that ``generation`` itself carries, or ``None`` if none."""
    # Not getattr(generation, "message", None): on a plain Generation that raises and
    # catches pydantic's AttributeError, ~2.5 us.
    if isinstance(generation, ChatGeneration):
        usage = getattr(generation.message, "usage_metadata", None)
        if type(usage) is dict or isinstance(usage, Mapping):  # the ABC check alone: ~150 ns
            return _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    info = getattr(generation, "generation_info", None) or {}
    usage = info.get("token_usage") or info.get("usage")
    return usage_counts(usage) if isinstance(usage, Mapping) else None


def note_start(run_id: object, batch_size: object) -> None:
    """Remember how many prompts the LLM run ``run_id`` was started with, if more than one."""
    if isinstance(batch_size, int) and batch_size > 1:
        with _lock:
            _batch_sizes[run_id] = batch_size
            if len(_batch_sizes) > _KEEP:
                _batch_sizes.popitem(last=False)


def note_end(response: object, run_id: object) -> None:
    """Remember the ``llm_output`` token usage of a finished LLM run, if it has one.

    Only runs whose generations carry no usage of their own are noted. Never raises
    for a malformed response: it is ignored.
    """
    llm_output = getattr(response, "llm_output", None)
    generations = getattr(response, "generations", None)
    if not isinstance(llm_output, Mapping) or not isinstance(generations, list):
        return
    if len(generations) != 1 or not isinstance(generations[0], list) or not generations[0]:
        return  # LangChain ends a run with one prompt's generations
    first = generations[0][0]
    if not isinstance(first, Generation) or any(
        generation_tokens(g) is not None for g in generations[0]
    ):
        return
    usage = llm_output.get("token_usage")
    if not isinstance(usage, Mapping):
        return
    if usage:
        # Only now: a chat model's run (every chat call ends here) takes no lock. The
        # batch size of a run that was not noted stays until the bound drops it.
        with _lock:
            size = _batch_sizes.pop(run_id, 1)
        tin, tout = usage_counts(usage)
        _open.share, _open.left = (tin // size, tout // size), size - 1
        tin, tout = tin - tin // size * (size - 1), tout - tout // size * (size - 1)
    elif _open.left > 0:  # a later prompt of the batch: LangChain emptied its usage
        _open.left -= 1
        tin, tout = _open.share
    else:
        return
    with _lock:
        NOTED[id(first)] = (first, tin, tout)
        if len(NOTED) > _KEEP:
            NOTED.popitem(last=False)


def usage_of(generations: Sequence[Generation]) -> tuple[int, int] | None:
    """The (input, output) tokens noted for the run that produced ``generations``, or ``None``.

    O(1): one dict lookup; nothing at all while no LLM has reported usage this way.
    """
    if not NOTED or not generations:
        return None
    first = generations[0]
    with _lock:
        found = NOTED.get(id(first))
    if found is None or found[0] is not first:
        return None
    return found[1], found[2]
