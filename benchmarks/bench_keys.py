"""The cost of canonical chat keys (gencache._keys.canonical_prompt), side by side.

Run: ``python benchmarks/bench_keys.py [--quick] [--rounds N] [--json PATH]``. Prints two
of the harness's markdown tables (median, p90, p99 and max over interleaved rounds; the
lookups are sampled as the mean of batches of 500):

- a prompt with no AI message: LangChain's ``InMemoryCache`` lookup hit against
  gencache's (canonical keys on), and against the same LangChain lookup preceded by
  ``canonical_prompt`` (the key's own cost); fresh equal strings each call, as LangChain
  passes them; the hit rows' notes add the median ratio of paired batches (each batch of
  500 timed for both back to back: the figure to read against issue 9's 1.1x);
- a 20-turn conversation of ~20 KB whose AI messages carry OpenAI-shaped usage and
  response metadata: ``canonical_prompt`` against a cache-hit ``FakeListChatModel.invoke``
  of the same conversation, end to end, for a conversation never seen before ("cold"), the
  next turn of one canonicalised one turn earlier, and the same prompt again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.caches import InMemoryCache as LangChainCache
from langchain_core.language_models import FakeListChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from _harness import (
    LLM_STRING,
    Round,
    Row,
    arguments,
    batched,
    environment,
    fresh,
    generation,
    interleave,
    paired,
    report,
    rounds,
    timed,
)
from gencache import InMemoryCache
from gencache._chat_prompt import canonical_prompt

LC, OURS = "LangChain", "gencache"
INVOKE, KEY = "cache-hit invoke", "canonical_prompt"
TURNS = 20


def human_prompt(i: int) -> str:
    """A distinct ~500-character prompt of one human message, as LangChain serializes it."""
    text = (f"Ticket {i}: summarise the following support ticket in two sentences. " * 6)[:380]
    return dumps([HumanMessage(text)])


def system_human_prompt(i: int) -> str:
    """A distinct ~500-character prompt of a system and a human message."""
    text = (f"Ticket {i}: summarise the following support ticket in two sentences. " * 4)[:240]
    return dumps([SystemMessage("You are a support agent. Be brief."), HumanMessage(text)])


def _metadata(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Usage and response metadata shaped like ChatOpenAI's (chat completions API)."""
    usage = {
        "input_tokens": 120 + 40 * i,
        "output_tokens": 60,
        "total_tokens": 180 + 40 * i,
        "input_token_details": {"audio": 0, "cache_read": 0},
        "output_token_details": {"audio": 0, "reasoning": 0},
    }
    response = {
        "token_usage": {
            "completion_tokens": 60,
            "prompt_tokens": 120 + 40 * i,
            "total_tokens": 180 + 40 * i,
            "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 0},
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        },
        "model_provider": "openai",
        "model_name": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_560af6e559",
        "id": f"chatcmpl-BxKq8mZ3{i:06d}",
        "finish_reason": "stop",
        "logprobs": None,
    }
    return usage, response


def conversation(tag: str, turns: int = TURNS) -> list[BaseMessage]:
    """A support conversation: a system prompt, then ``turns`` questions and answers."""
    messages: list[BaseMessage] = [SystemMessage(f"You are a support agent ({tag}). Be brief.")]
    for i in range(turns):
        messages.append(HumanMessage(f"Question {i}: " + "why does the nightly export fail? " * 4))
        usage, response = _metadata(i)
        answer = f"Answer {i}: " + "the export times out on the CSV step; add a filter. " * 3
        messages.append(AIMessage(answer, usage_metadata=usage, response_metadata=response))
    messages.append(HumanMessage("And if it still fails tomorrow?"))
    return messages


def bench_no_ai_message(
    rounds: int, n: int, make: Callable[[int], str], name: str, *, alone: bool
) -> Row:
    """LangChain's lookup hit against gencache's (``alone``: against canonical_prompt + it)."""
    keys = [make(i) for i in range(1_000)]
    cache = LangChainCache()
    ours = InMemoryCache()
    for k in keys:
        cache.update(k, LLM_STRING, generation(0))
        ours.update(k, LLM_STRING, generation(0))
    lookup = cache.lookup
    our_lookup = ours.lookup

    def plain(chunk: Sequence[tuple[str, str]]) -> None:
        for p, s in chunk:
            lookup(p, s)

    def keyed(chunk: Sequence[tuple[str, str]]) -> None:
        for p, s in chunk:
            lookup(canonical_prompt(p), s)

    def gencache(chunk: Sequence[tuple[str, str]]) -> None:
        for p, s in chunk:
            our_lookup(p, s)

    def runner(canonical: bool) -> Round:
        def run() -> list[float]:
            pairs = [(fresh(keys[i % len(keys)]), fresh(LLM_STRING)) for i in range(n)]
            return batched((keyed if alone else gencache) if canonical else plain, pairs, 500)

        return run

    def batch(b: int) -> list[tuple[str, str]]:
        return [(fresh(keys[(b * 500 + i) % len(keys)]), fresh(LLM_STRING)) for i in range(500)]

    samples = interleave({LC: runner(False), OURS: runner(True)}, rounds)
    size = len(keys[0])
    if not alone:
        return Row(
            f"{name} ({size} chars): lookup hit",
            "ns",
            samples,
            note="gencache's InMemoryCache (canonical keys on) against LangChain's; paired "
            f"batches: median ratio {paired(plain, gencache, batch, 60 * rounds):.2f}",
        )
    return Row(
        f"{name} ({size} chars): canonical_prompt + LangChain's lookup hit",
        "ns",
        samples,
        note="the key's cost on its own, for a prompt never canonicalised before",
    )


def bench_conversation(rounds: int, n: int) -> list[Row]:
    messages = conversation("bench")
    prompt = dumps(messages)
    model = FakeListChatModel(responses=["cached answer"], cache=LangChainCache())
    model.invoke(messages)

    def invoke() -> list[float]:
        return [timed(model.invoke, messages) for _ in range(n)]

    counter = [0]

    def cold() -> list[float]:
        # Conversations never seen before: nothing for the memo of recent prompts to reuse.
        ps = [dumps(conversation(f"cold {counter[0]}-{i}")) for i in range(n)]
        counter[0] += 1
        return [timed(canonical_prompt, p) for p in ps]

    def next_turn() -> list[float]:
        # Each timed prompt extends, by an answer and a question, one canonicalised just
        # before (untimed), as the turns of a conversation do.
        counter[0] += 1
        samples = []
        for i in range(n):
            talk = conversation(f"turns {counter[0]}-{i}")
            canonical_prompt(dumps(talk[:-2]))
            samples.append(timed(canonical_prompt, dumps(talk)))
        return samples

    def repeat() -> list[float]:
        canonical_prompt(prompt)
        return [timed(canonical_prompt, fresh(prompt)) for _ in range(n)]

    results = []
    size = f"{TURNS} turns, {len(prompt) / 1000:.1f} KB, {len(messages)} messages"
    for label, run in (("cold", cold), ("next turn", next_turn), ("same prompt again", repeat)):
        row = Row(
            f"conversation ({size}): {label}", "ns", interleave({INVOKE: invoke, KEY: run}, rounds)
        )
        row.note = f"median {100 * row.median(KEY) / row.median(INVOKE):.2f} % of the invoke"
        results.append(row)
    return results


def main() -> None:
    args = arguments(__doc__).parse_args()
    n_rounds = rounds(args, 5, 9)
    lookups = [
        bench_no_ai_message(n_rounds, 20_000, human_prompt, "one human message", alone=False),
        bench_no_ai_message(
            n_rounds, 20_000, system_human_prompt, "system + human message", alone=False
        ),
        bench_no_ai_message(n_rounds, 20_000, human_prompt, "one human message", alone=True),
        bench_no_ai_message(
            n_rounds, 20_000, system_human_prompt, "system + human message", alone=True
        ),
    ]
    talks = bench_conversation(n_rounds, 20 if args.quick else 50)
    report(
        f"Canonical chat keys — {environment()}",
        [(lookups, LC, OURS), (talks, INVOKE, KEY)],
        args.json,
    )


if __name__ == "__main__":
    main()
