"""Recorded LLM calls for test suites: :class:`ReplayCache`, the errors it raises, misses.

The file format and the secret check are :mod:`gencache._recording`; the reference is
docs/testing.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, get_args

from langchain_core.outputs import Generation

from gencache import codec
from gencache._cache import GenCache, check_bool, check_generations
from gencache._chat_prompt import canonical_prompt
from gencache._explain import MAX_SCANNED, Explanation, common_prefix, describe_differences
from gencache._keys import check_key
from gencache._recording import Entry, ReplayError, find_secret, load, render, without_run_id
from gencache.stats import CacheStats

__all__ = ["ReplayCache", "ReplayError", "ReplayMiss", "ReplayMode", "SecretInRecordingError"]

ReplayMode = Literal["replay", "record", "auto"]
"""``replay``: every lookup must hit; ``record``: every call goes to the provider and is
recorded; ``auto``: hits replay, misses go to the provider and are recorded."""

_MODES: Final = get_args(ReplayMode)
_SHOWN = 60  # characters of a differing message shown on each side of a miss


class ReplayMiss(ReplayError):  # noqa: N818  (the name is the public API of issue 11)
    """A request that the recording does not hold, in ``replay`` mode.

    The message names the fields in which the nearest recorded request differs, with the
    differing text of the first differing message.

    Attributes:
        path: The recording file (``None`` only for one built by hand).
        prompt: The request's canonical prompt.
        llm_string: The request's llm_string.
        differences: What differs from the nearest recorded request (empty when the
            recording holds none).
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        prompt: str = "",
        llm_string: str = "",
        differences: Sequence[str] = (),
    ) -> None:
        # Defaults, so that copy and pickle, which call ReplayMiss(message) and then
        # restore the attributes, work.
        super().__init__(message)
        self.path = path
        self.prompt = prompt
        self.llm_string = llm_string
        self.differences = tuple(differences)


class SecretInRecordingError(ReplayError):
    """A request or response to record holds what looks like a secret; nothing was written."""


# Shown as gencache.testing.X in tracebacks: the module users import them from.
for _cls in (ReplayMiss, SecretInRecordingError):
    _cls.__module__ = "gencache.testing"


class ReplayCache(GenCache):
    """A LangChain cache over one recording file, for tests; see docs/testing.md.

    ``replay``: a lookup that the file does not hold raises :class:`ReplayMiss` (from
    inside the model call, before any provider call). ``record``: lookups never hit, every
    answer is recorded; the file then holds exactly the requests recorded (unless
    ``keep_existing``). ``auto``: hits replay, misses return ``None`` (the model calls the
    provider) and their answers are recorded. Nothing is written until :meth:`save`.

    Prompts are compared in canonical form (:func:`gencache._keys.canonical_prompt`):
    message ids, usage and response metadata never make a recording stale.
    ``clear()`` keeps the recording: code under test that clears its cache must not change
    what a test replays.

    Thread safety: every method is safe from any thread and task; the async methods run
    inline. Costs: a lookup canonicalises the prompt and decodes the stored answer (new
    objects on every hit); an update encodes it and, with ``check_secrets``, scans it;
    :meth:`save` rewrites the whole file.

    Args:
        path: The recording file (need not exist; ``save`` creates its directories).
        mode: ``"replay"``, ``"record"`` or ``"auto"``.
        keep_existing: In ``record`` mode, start from the file's entries instead of from
            none (the plugin passes ``True`` to the second test recording into one file
            in a session). Ignored in the other modes, which always read the file.
        check_secrets: Refuse to record a request or answer that holds a known API-key
            pattern or the value of a secret-named environment variable (raises
            :class:`SecretInRecordingError` from the model call).

    Raises:
        ValueError: If ``mode`` is not one of the three.
        TypeError: If ``keep_existing`` or ``check_secrets`` is not a ``bool``.
        ReplayError: If the file exists but is not a recording (the message names the line).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: ReplayMode = "replay",
        *,
        keep_existing: bool = False,
        check_secrets: bool = True,
    ) -> None:
        if mode not in _MODES:
            msg = f"mode must be one of {', '.join(map(repr, _MODES))}, not {mode!r}"
            raise ValueError(msg)
        check_bool("keep_existing", keep_existing)
        self._check_secrets = check_bool("check_secrets", check_secrets)
        self._path = Path(path)
        self._mode: ReplayMode = mode
        fresh = mode == "record" and not keep_existing
        self._entries: dict[tuple[str, str], Entry] = {} if fresh else load(self._path)
        self._lock = threading.Lock()
        self._hits = self._misses = self._updates = self._skipped = 0
        self._saved = 0  # the value of _updates when the file last held every entry
        self._raised: list[ReplayError] = []

    @property
    def path(self) -> Path:
        """The recording file."""
        return self._path

    @property
    def mode(self) -> ReplayMode:
        """``"replay"``, ``"record"`` or ``"auto"``."""
        return self._mode

    @property
    def raised(self) -> tuple[ReplayError, ...]:
        """Every :class:`ReplayMiss` and :class:`SecretInRecordingError` raised, in order.

        Also those that code under test caught: the plugin checks this after each test.
        """
        with self._lock:
            return tuple(self._raised)

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return the recorded answer as new objects, or ``None`` to call the provider.

        Raises:
            ReplayMiss: In ``replay`` mode, if the request is not recorded.
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        check_key(prompt, llm_string)
        if self._mode == "record":
            self._count(misses=1)
            return None
        key = (canonical_prompt(prompt), llm_string)
        entry = self._entries.get(key)
        if entry is not None:
            self._count(hits=1)
            return codec.decode(entry.payload)
        self._count(misses=1)
        if self._mode == "replay":
            raise self._keep(self._miss(*key))
        return None

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Record the provider's answer (``record`` and ``auto``; ignored in ``replay``).

        Raises:
            SecretInRecordingError: If ``check_secrets`` and the request or answer holds
                what looks like a secret; nothing is recorded.
            CodecError: If the answer cannot be stored (see :mod:`gencache.codec`).
            TypeError: On arguments that are not LangChain's.
        """
        check_key(prompt, llm_string)
        generations = check_generations(return_val)
        if self._mode == "replay":
            self._count(skipped=1)
            return
        payload = codec.encode([without_run_id(g) for g in generations])
        entry = Entry(canonical_prompt(prompt), llm_string, payload)
        if self._check_secrets:
            found = find_secret(entry)
            if found is not None:
                raise self._keep(SecretInRecordingError(found))
        with self._lock:
            self._entries[entry.prompt, entry.llm_string] = entry
            self._updates += 1

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`, inline: no I/O, so no hop to a thread."""
        return self.lookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`, inline."""
        self.update(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        """Keep the recording: a test's recording is changed by re-recording, not by code."""

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`: keeps the recording too."""

    def __len__(self) -> int:
        """Return the number of recorded requests held."""
        return len(self._entries)

    def stats(self) -> CacheStats:
        """Hits replayed, misses (raised or recorded), updates recorded, updates skipped."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                updates=self._updates,
                evictions=0,
                expirations=0,
                size=len(self._entries),
                maxsize=None,
                skipped=self._skipped,
            )

    def save(self) -> bool:
        """Write the file if this cache recorded anything; return whether it changed.

        The file is rewritten whole, sorted, through a temporary file renamed over it, so
        a reader never sees half a file. Nothing is written in ``replay`` mode, when nothing
        was recorded, or when the bytes would be the same.

        Raises:
            OSError: If the file cannot be written.
        """
        with self._lock:
            version = self._updates
            if self._mode == "replay" or version == self._saved:
                return False
            entries = list(self._entries.values())
        text = render(entries)
        try:
            same = self._path.read_text(encoding="utf-8") == text
        except FileNotFoundError:
            same = False
        if not same:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                    out.write(text)
                os.replace(temp, self._path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        with self._lock:  # only now: a failed write is tried again by the next save()
            self._saved = max(self._saved, version)
        return not same

    def explain(self, prompt: str, llm_string: str) -> Explanation:
        """Say whether a lookup would replay ``(prompt, llm_string)``, and if not, why not.

        Costs one canonicalisation, and on a miss a comparison with every recorded
        request (at most :data:`~gencache._explain.MAX_SCANNED`). Counts nothing.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        check_key(prompt, llm_string)
        if self._mode == "record":
            return Explanation(False, "Miss: in record mode every request goes to the provider.")
        key = (canonical_prompt(prompt), llm_string)
        if key in self._entries:
            return Explanation(True, f"Hit: recorded in {_shown_path(self._path)}.")
        if not self._entries:
            return Explanation(False, "Miss: the recording holds no request.")
        _, differences = _nearest(*key, self._entries.values())
        reason = "Miss: no recorded request for this one; the nearest differs."
        return Explanation(False, reason, tuple(differences))

    def _keep(self, error: ReplayError) -> ReplayError:
        with self._lock:
            self._raised.append(error)
        return error

    def _count(self, *, hits: int = 0, misses: int = 0, skipped: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._skipped += skipped

    def _miss(self, prompt: str, llm_string: str) -> ReplayMiss:
        where = f"{_shown_path(self._path)} (mode: replay)"
        fix = (
            "Record it with --llm-replay=auto (adds new requests to the file) or "
            "--llm-replay=record (re-records the whole file)."
        )
        if not self._entries:
            held = "the file does not exist" if not self._path.exists() else "it holds none"
            msg = f"no recorded request in {where}: {held}.\n{fix}"
            return ReplayMiss(msg, path=self._path, prompt=prompt, llm_string=llm_string)
        nearest, differences = _nearest(prompt, llm_string, self._entries.values())
        lines = [f"no recorded response for this request in {where}.", "The nearest differs:"]
        lines += [f"  - {d}" for d in differences]
        lines += _excerpt(prompt, nearest.prompt)
        lines.append(fix)
        return ReplayMiss(
            "\n".join(lines),
            path=self._path,
            prompt=prompt,
            llm_string=llm_string,
            differences=differences,
        )


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- explaining a miss -------------------------------------------------------------------


def _nearest(prompt: str, llm_string: str, entries: Iterable[Entry]) -> tuple[Entry, list[str]]:
    """The recorded entry with the fewest differing fields, then the longest shared prefix.

    Fewest fields first: a changed temperature is explained as that, not as the prompt of
    another entry of the same model. Bounded by :data:`MAX_SCANNED` entries.
    """
    best: tuple[tuple[int, int, bool], Entry, list[str]] | None = None
    for scanned, entry in enumerate(entries):
        if scanned >= MAX_SCANNED:
            break
        found = describe_differences(prompt, llm_string, entry.prompt, entry.llm_string)
        score = (len(found), -common_prefix(prompt, entry.prompt), entry.llm_string != llm_string)
        if best is None or score < best[0]:
            best = (score, entry, found)
    assert best is not None  # callers pass at least one entry
    return best[1], best[2]


def _excerpt(prompt: str, stored: str) -> list[str]:
    """The text around the first difference of the first differing message (or prompt)."""
    asked, recorded = _texts(prompt), _texts(stored)
    if asked is None or recorded is None:
        asked, recorded = [("prompt", prompt)], [("prompt", stored)]
    for (name, a), (_, s) in zip(asked, recorded, strict=False):
        if a != s:
            at = common_prefix(a, s)
            start = max(0, at - _SHOWN // 3)
            return [
                f"  {name}, from char {start}:",
                f"      request:  {_window(a, start)}",
                f"      recorded: {_window(s, start)}",
            ]
    return []


def _texts(prompt: str) -> list[tuple[str, str]] | None:
    """Each message's string content, named as ``describe_differences`` names it."""
    if not prompt.startswith("["):
        return None
    try:
        messages = json.loads(prompt)
    except (ValueError, RecursionError):
        return None
    texts = []
    for i, message in enumerate(messages if isinstance(messages, list) else (), 1):
        kwargs = message.get("kwargs") if isinstance(message, dict) else None
        content = kwargs.get("content") if isinstance(kwargs, dict) else None
        if not isinstance(content, str):
            content = json.dumps(content, sort_keys=True, default=str)
        role = kwargs.get("type", "?") if isinstance(kwargs, dict) else "?"
        texts.append((f"message {i} ({role})", content))
    return texts or None


def _window(text: str, start: int) -> str:
    piece = text[start : start + _SHOWN]
    shown = repr(piece)
    return ("..." if start else "") + shown + ("..." if start + _SHOWN < len(text) else "")
