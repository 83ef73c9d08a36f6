"""The recording file of :class:`gencache.testing.ReplayCache`: entries, lines, secrets.

A recording is a text file of JSON lines, one recorded request per line, sorted by prompt
then llm_string, with stable formatting, so that a diff of it reads as "this request was
added, this one changed"::

    {"generations": {"g": [...], "v": 2}, "llm_string": "...", "messages": [{"lc": 1, ...}]}

``messages`` is a chat prompt as :func:`gencache._keys.canonical_prompt` writes it (LangChain's
own layout, embedded as JSON rather than as an escaped string, so it reads as it is);
a prompt that is not a message list (an LLM's text prompt) is stored as ``"prompt": "<text>"``.
``generations`` is the envelope of :mod:`gencache.codec`. Keys are sorted and every
non-ASCII character is escaped, so the bytes of a file depend only on what it records.
Before an answer is recorded, :func:`find_secret` looks for what must never be committed.
The reference is docs/testing.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from langchain_core.messages import BaseMessage
from langchain_core.outputs import Generation
from langchain_core.utils.utils import LC_ID_PREFIX

from gencache import codec
from gencache._chat_prompt import canonical_prompt
from gencache.errors import GenCacheError

__all__ = ["Entry", "ReplayError", "find_secret", "load", "render", "without_run_id"]


class ReplayError(GenCacheError):
    """Base of the errors of :mod:`gencache.testing`: a recording cannot be used as asked.

    An ``Exception``, so code under test that handles provider errors with ``except
    Exception`` (a fallback answer, ``with_fallbacks``, ``batch(return_exceptions=True)``)
    can catch it: :attr:`ReplayCache.raised` keeps every one raised, and the pytest plugin
    fails a test that passed although one was raised. (A ``BaseException`` would pass
    through those handlers, but LangChain's async batch path turns one into an
    ``AttributeError``.)
    """


# Shown as gencache.testing.ReplayError in tracebacks: the module users import it from.
ReplayError.__module__ = "gencache.testing"


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded request and its answer."""

    prompt: str  # canonical
    llm_string: str
    payload: bytes  # the codec envelope


# -- the file ----------------------------------------------------------------------------


def load(path: Path) -> dict[tuple[str, str], Entry]:
    """Read a recording; a missing file is an empty one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the recording: {exc}"
        raise ReplayError(msg) from exc
    entries: dict[tuple[str, str], Entry] = {}
    first: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            entry = _parse(line)
        except (ValueError, TypeError, RecursionError) as exc:  # CodecError is a ValueError
            msg = f"{path}:{number}: not a recorded request: {str(exc)[:200]}"
            raise ReplayError(msg) from exc
        key = (entry.prompt, entry.llm_string)
        if key in first:
            msg = (
                f"{path}:{number}: the same request as line {first[key]} (a merge of two "
                "recordings?): keep one of the two lines, or re-record the file"
            )
            raise ReplayError(msg)
        first[key] = number
        entries[key] = entry
    return entries


_PROMPT_KEYS = frozenset({"generations", "llm_string", "prompt"})
_MESSAGES_KEYS = frozenset({"generations", "llm_string", "messages"})


def _parse(line: str) -> Entry:
    obj = json.loads(line)
    keys = obj.keys() if type(obj) is dict else None
    if keys == _MESSAGES_KEYS and type(obj["messages"]) is list:
        # The text LangChain's dumps() writes for these messages: keys in file order.
        prompt = json.dumps(obj["messages"])
    elif keys == _PROMPT_KEYS and type(obj["prompt"]) is str:
        prompt = obj["prompt"]
    else:
        msg = 'expected {"generations", "llm_string", "messages" (a list) or "prompt" (a str)}'
        raise ValueError(msg)
    llm_string = obj["llm_string"]
    if type(llm_string) is not str:
        msg = '"llm_string" must be a str'
        raise TypeError(msg)
    payload = json.dumps(obj["generations"], ensure_ascii=True).encode("ascii")
    codec.decode(payload)  # refuse a bad answer now, with its line number, not on a hit
    # Canonical again: a recording made when canonical prompts were written differently
    # still keys its entries as today's lookups do.
    return Entry(canonical_prompt(prompt), llm_string, payload)


def render(entries: Iterable[Entry]) -> str:
    """The text of a file holding ``entries``: one line each, sorted by prompt then llm_string."""
    ordered = sorted(entries, key=lambda e: (e.prompt, e.llm_string))
    return "".join(_line(e) + "\n" for e in ordered)


def _line(entry: Entry) -> str:
    """One line of the file: keys sorted, ASCII only, LangChain's layout for messages."""
    answer = json.dumps(json.loads(entry.payload), sort_keys=True, ensure_ascii=True)
    parts = [f'"generations": {answer}', f'"llm_string": {json.dumps(entry.llm_string)}']
    messages = _as_messages(entry.prompt)
    if messages is not None:
        parts.append(f'"messages": {messages}')
    else:
        parts.append(f'"prompt": {json.dumps(entry.prompt)}')
    return "{" + ", ".join(parts) + "}"


def _as_messages(prompt: str) -> str | None:
    """``prompt`` if it is a JSON list that reads back as the same text, else ``None``.

    Embedded as it is, it keeps LangChain's key order (not sorted): sorting would change
    the text, which is the key.
    """
    if not prompt.startswith("[") or not prompt.isascii():
        return None
    try:
        value = json.loads(prompt)
    except (ValueError, RecursionError):
        return None
    return prompt if isinstance(value, list) and json.dumps(value) == prompt else None


def without_run_id(generation: Generation) -> Generation:
    # An id LangChain made from the recording run ("lc_run-..."): noise in a committed
    # file, and a different one on every re-recording.
    message = getattr(generation, "message", None)
    ident = getattr(message, "id", None)
    if not isinstance(ident, str) or not ident.startswith(LC_ID_PREFIX):
        return generation
    assert isinstance(message, BaseMessage)
    return generation.model_copy(update={"message": message.model_copy(update={"id": None})})


# -- secrets -----------------------------------------------------------------------------

# Provider key formats that are secrets whatever field holds them.
_PATTERNS: Final = (
    ("an API key (sk-...)", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("a bearer token", re.compile(r"\b[Bb]earer [A-Za-z0-9._~+/-]{20,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_MIN = 12  # shorter values ("1", "true", a port) would match everywhere


def find_secret(entry: Entry) -> str | None:
    """Why ``entry`` must not be recorded, if it holds what looks like a secret."""
    fields = (
        ("the prompt", json.dumps(entry.prompt)),
        ("the llm_string", json.dumps(entry.llm_string)),
        ("the answer", entry.payload.decode("utf-8", "surrogatepass")),
    )
    values = [
        (name, value)
        for name, value in os.environ.items()
        if len(value) >= _SECRET_MIN and _SECRET_NAME.search(name)
    ]
    for field, text in fields:
        for name, value in values:
            if value in text or json.dumps(value)[1:-1] in text:
                return _refusal(field, f"the value of ${name}", value)
        for what, pattern in _PATTERNS:
            found = pattern.search(text)
            if found:
                return _refusal(field, what, found.group())
    return None


def _refusal(field: str, what: str, secret: str) -> str:
    return (
        f"refusing to record: {field} holds {what} ({secret[:6]}...). Recordings are "
        "committed; LangChain's models serialize their secret fields as ids only, so this "
        "one is in a plain field (default_headers, model_kwargs, the prompt?). If it is not "
        "a secret, use @pytest.mark.llm_replay(..., check_secrets=False)."
    )
