"""Cache keys: one definition of "the same call" for every backend.

LangChain identifies a call by the pair ``(prompt, llm_string)``. A chat prompt is keyed by
its canonical form (:func:`canonical_prompt`, from :mod:`gencache._chat_prompt`), which
leaves out the fields never sent to a provider and sorts nested JSON keys, so that the same
conversation gives the same key on every run; any other prompt is keyed as it is.

The in-memory cache keys its dict by ``(prompt, llm_string)`` directly; backends that store
outside the process use :func:`digest`, a SHA-256 over the length-prefixed parts, so that no
two different keys share a digest (unlike ``md5(prompt + llm_string)``, where ``("ab", "c")``
and ``("a", "bc")`` collide). What splits a key and what does not, and why: docs/keys.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from gencache._chat_prompt import canonical_prompt
from gencache._protocol import Key

__all__ = ["KEY_VERSION", "RecentKeys", "canonical_prompt", "check_key", "digest"]

#: Version of the key format, part of every digest: entries written under another version
#: (gencache 0.1 wrote version 1) are misses, never wrong hits.
KEY_VERSION: Final = 2


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


_DOMAIN: Final = b"gencache-key-v%d\x00" % KEY_VERSION


def digest(prompt: str, llm_string: str, scope: str | None = None) -> str:
    """Return the hex SHA-256 key of ``(prompt, llm_string, scope)``.

    Each part is prefixed with its byte length, and ``scope`` with a tag that tells ``None``
    from every ``str`` (``""`` included), so the encoding is injective: different keys give
    different inputs to the hash. :data:`KEY_VERSION` is part of the input, so digests of
    another key version never match. Callers pass the canonical prompt
    (:func:`canonical_prompt`). Cost: O(len(prompt) + len(llm_string) + len(scope)).

    Raises:
        TypeError: If ``prompt`` or ``llm_string`` is not a ``str``, or ``scope`` is neither
            ``None`` nor a ``str``.
    """
    check_key(prompt, llm_string)
    given: object = scope  # typed callers cannot get this wrong; untyped ones can
    if given is not None and not isinstance(given, str):
        msg = f"scope must be a str or None, not {type(given).__name__}"
        raise TypeError(msg)
    p, s = _utf8(prompt), _utf8(llm_string)
    h = hashlib.sha256(_DOMAIN)
    h.update(len(p).to_bytes(8, "big"))
    h.update(p)
    h.update(len(s).to_bytes(8, "big"))
    h.update(s)
    if scope is None:
        h.update(b"\x00")
    else:
        c = _utf8(scope)
        h.update(b"\x01")
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    return h.hexdigest()


_RECENT_KEYS: Final = 1_024  # requests remembered by RecentKeys ...
_RECENT_CHARS: Final = 4_000_000  # ... holding at most this many characters of them


class RecentKeys:
    """The keys of recent requests, for backends that store outside the process.

    A repeated request (a hit, the update after its miss, a near-cache hit) then costs a
    dict lookup of the ``(prompt, llm_string, scope)`` tuple, ~0.3 us for fresh strings of
    800 characters, instead of its canonical form and SHA-256 (~1.8 us): a near-cache hit
    went from ~1 us in 0.1 to ~4 us with one digest per call. Bounded: at most 1,024 keys
    and 4,000,000 characters (a prompt over 250,000 is never kept), then it starts over.
    Thread-safe (single dict operations; a lost entry only costs a digest).

    Args:
        canonical: Key chat prompts by their canonical form.
    """

    __slots__ = ("_canonical", "_chars", "_keys")

    def __init__(self, canonical: bool) -> None:
        self._canonical = canonical
        self._keys: dict[tuple[str, str, str | None], Key] = {}
        self._chars = 0

    def key(self, prompt: str, llm_string: str, scope: str | None) -> Key:
        """The :class:`~gencache._protocol.Key` of a request.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``, or ``scope`` is
                neither ``None`` nor a ``str``.
        """
        asked = (prompt, llm_string, scope)
        try:
            known = self._keys.get(asked)
        except TypeError:  # an unhashable part: refused below
            known = None
        if known is not None:
            return known
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        keyed = canonical_prompt(prompt) if self._canonical else prompt
        key = Key(digest(keyed, llm_string, scope), prompt, llm_string, scope)
        size = len(prompt) + len(llm_string)
        if size <= _RECENT_CHARS // 16:
            if len(self._keys) >= _RECENT_KEYS or self._chars + size > _RECENT_CHARS:
                self._keys.clear()
                self._chars = 0
            self._keys[asked] = key
            self._chars += size
        return key
