"""Cache keys: one definition of "the same call" for every backend.

LangChain identifies a call by the pair ``(prompt, llm_string)``. The in-memory cache keys
its dict by that tuple directly; backends that store outside the process use
:func:`digest`, a SHA-256 over the length-prefixed pair, so that no two different pairs
share a key (unlike ``md5(prompt + llm_string)``, where ``("ab", "c")`` and ``("a", "bc")``
collide).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["check_key", "digest"]


def check_key(prompt: Any, llm_string: Any) -> None:
    """Raise ``TypeError`` unless both parts of a key are ``str``.

    Cost: two ``isinstance`` checks.
    """
    for name, value in (("prompt", prompt), ("llm_string", llm_string)):
        if not isinstance(value, str):
            msg = f"{name} must be a str, not {type(value).__name__}"
            raise TypeError(msg)


def _utf8(text: str) -> bytes:
    # "surrogatepass" keeps lone surrogates distinct instead of failing or folding them.
    return text.encode("utf-8", "surrogatepass")


def digest(prompt: str, llm_string: str) -> str:
    """Return the hex SHA-256 key of ``(prompt, llm_string)``.

    Each part is prefixed with its byte length, so the encoding is injective: different
    pairs give different inputs to the hash. Cost: O(len(prompt) + len(llm_string)).

    Raises:
        TypeError: If either part is not a ``str``.
    """
    check_key(prompt, llm_string)
    p, s = _utf8(prompt), _utf8(llm_string)
    h = hashlib.sha256()
    h.update(b"gencache-key-v1\x00")
    h.update(len(p).to_bytes(8, "big"))
    h.update(p)
    h.update(len(s).to_bytes(8, "big"))
    h.update(s)
    return h.hexdigest()
