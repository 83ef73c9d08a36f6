"""Strict replay of LLM calls in test suites: a pytest plugin (guide: docs/testing.md).

Record a test's LLM calls once, commit the file, and replay them in CI; a request that was
not recorded fails the test with what differs from the nearest recorded one::

    import pytest
    from langchain_openai import ChatOpenAI

    @pytest.mark.llm_replay("recordings/capital.jsonl")   # next to this test file
    def test_capital() -> None:
        answer = ChatOpenAI(model="gpt-4o-mini").invoke("Capital of France? One word.")
        assert "Paris" in answer.content

The plugin is on when gencache is installed and does nothing unless a test uses the
``llm_replay`` fixture or marker. ``--llm-replay=replay|record|auto`` picks the mode
(default: ``replay`` when the ``CI`` environment variable is set, ``auto`` otherwise). For
the test, the fixture sets LangChain's global cache (``set_llm_cache``) to a
:class:`ReplayCache` over the file, and restores the previous one afterwards, whatever the
outcome; it then writes what was recorded.

This module imports only pytest at load: the cache (and LangChain) load on first use, so
the plugin costs sessions that never use it nothing beyond ``import gencache``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gencache._replay import (
        ReplayCache,
        ReplayError,
        ReplayMiss,
        ReplayMode,
        SecretInRecordingError,
    )

__all__ = [
    "DEFAULT_DIRECTORY",
    "ReplayCache",
    "ReplayError",
    "ReplayMiss",
    "ReplayMode",
    "SecretInRecordingError",
    "default_path",
]

DEFAULT_DIRECTORY = "llm_replay"
"""Directory, next to the test file, of the recordings of tests whose marker names none."""

_OPTION = "--llm-replay"
_MODES = ("replay", "record", "auto")
_NOT_SET = frozenset({"", "0", "false", "no", "off"})  # CI=false is not CI
_SAFE = re.compile(r"[^A-Za-z0-9._\[\]-]")
_LONGEST = 100  # characters of a file name kept from the test's name
# Files recorded into in this session, in record mode: the next test recording into one
# adds to it instead of starting it afresh.
_RECORDED = pytest.StashKey[set[Path]]()
# Whether a test's own call raised: a ReplayError that did not is reported at teardown.
_CALL_RAISED = pytest.StashKey[bool]()


def __getattr__(name: str) -> Any:
    if name in {"ReplayCache", "ReplayError", "ReplayMiss", "ReplayMode", "SecretInRecordingError"}:
        from gencache import _replay

        return getattr(_replay, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--llm-replay``."""
    group = parser.getgroup("gencache", "gencache: recorded LLM calls")
    group.addoption(
        _OPTION,
        dest="llm_replay",
        choices=_MODES,
        default=None,
        help=(
            "how tests using the llm_replay fixture or marker treat LLM calls: replay "
            "(a request not recorded fails), record (call the provider, re-record the "
            "files), auto (replay what is recorded, record the rest). "
            "Default: replay if $CI is set, else auto."
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "llm_replay(path=None, *, check_secrets=True): replay this test's LLM calls from "
        "the JSON-lines file at path (relative to the test file; default "
        f"{DEFAULT_DIRECTORY}/<module>/<test>.jsonl); see the llm_replay fixture.",
    )
    config.stash[_RECORDED] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Note whether the test's call raised (one stash write per test)."""
    if call.when == "call":
        item.stash[_CALL_RAISED] = call.excinfo is not None


def default_path(test_file: Path, nodeid: str) -> Path:
    """Return the recording of a test whose marker names no file (or that has no marker).

    ``<test file's directory>/llm_replay/<module>/<test>.jsonl``, ``<test>`` being the
    test's node id after the file, with ``::`` as ``.``: ``TestCart.test_total[2-3]``.
    Characters other than letters, digits, ``._-[]`` become ``_``; when any did, or the
    name is over 100 characters, it is cut and ends in 10 hex digits of its SHA-256, so
    two tests never share a default file.

    Args:
        test_file: The test's file.
        nodeid: The test's pytest node id.

    Returns:
        The path of the test's default recording (which need not exist).
    """
    name = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    name = name.replace("::", ".")
    safe = _SAFE.sub("_", name)
    if safe != name or len(safe) > _LONGEST:
        tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        safe = f"{safe[:_LONGEST]}-{tag}"
    return test_file.parent / DEFAULT_DIRECTORY / test_file.stem / f"{safe}.jsonl"


def _mode(config: pytest.Config) -> ReplayMode:
    chosen: ReplayMode | None = config.getoption("llm_replay")
    if chosen is not None:
        return chosen
    return "replay" if os.environ.get("CI", "").strip().lower() not in _NOT_SET else "auto"


def _marker_arguments(request: pytest.FixtureRequest) -> tuple[Path, bool]:
    """The file and ``check_secrets`` of the test's ``llm_replay`` marker, if any."""
    test_file = request.node.path
    marker = request.node.get_closest_marker("llm_replay")
    args: tuple[Any, ...] = marker.args if marker is not None else ()
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if "path" in kwargs:
        args = (*args, kwargs.pop("path"))
    check_secrets = kwargs.pop("check_secrets", True)
    if len(args) > 1 or kwargs or not isinstance(check_secrets, bool):
        msg = (
            "@pytest.mark.llm_replay takes one optional path and check_secrets=True|False, "
            f"not args={args!r}, kwargs={kwargs!r}"
        )
        raise TypeError(msg)
    if not args or args[0] is None:
        return default_path(test_file, request.node.nodeid), check_secrets
    given = args[0]
    if not isinstance(given, (str, os.PathLike)):
        msg = f"@pytest.mark.llm_replay path must be a str or a path, not {type(given).__name__}"
        raise TypeError(msg)
    return test_file.parent / Path(given), check_secrets


@pytest.fixture
def llm_replay(request: pytest.FixtureRequest) -> Iterator[ReplayCache]:
    """Replay this test's LLM calls from a recording; yield the :class:`ReplayCache`.

    The file is the ``llm_replay`` marker's (relative to the test file's directory), else
    :func:`default_path`. For the test, LangChain's global cache is the recording: every
    chat model and LLM whose ``cache`` is unset uses it (streams too, through
    ``gencache.cached(model)``). Afterwards the previous global cache is restored and,
    in ``record`` or ``auto`` mode, what was recorded is written (also when the test
    failed: the answers are real). A test that passes although a :class:`ReplayMiss` or
    :class:`SecretInRecordingError` was raised (the code under test caught it) fails in
    teardown with that error.
    """
    from langchain_core.globals import get_llm_cache, set_llm_cache

    from gencache._replay import ReplayCache

    path, check_secrets = _marker_arguments(request)
    path = Path(os.path.abspath(path))
    mode = _mode(request.config)
    recorded = request.config.stash[_RECORDED]
    cache = ReplayCache(path, mode, keep_existing=path in recorded, check_secrets=check_secrets)
    previous = get_llm_cache()
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(previous)
        cache.save()
        if mode == "record" and cache.stats().updates:
            recorded.add(path)
    raised = cache.raised
    if raised and not request.node.stash.get(_CALL_RAISED, False):
        # The test passed (or xfailed) although a request was refused: the code under
        # test caught the error (except Exception, with_fallbacks, return_exceptions).
        pytest.fail(
            f"{len(raised)} LLM call(s) failed the replay, but the test did not see it "
            f"(the code under test caught {type(raised[0]).__name__}). The first:\n"
            f"{raised[0]}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _llm_replay_marker(request: pytest.FixtureRequest) -> None:
    # A test with the marker gets the fixture without naming it; others pay one lookup.
    if "llm_replay" not in request.fixturenames and request.node.get_closest_marker("llm_replay"):
        request.getfixturevalue("llm_replay")
