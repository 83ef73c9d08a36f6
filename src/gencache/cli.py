"""The ``gencache`` command: a demo, and tools to inspect persistent caches.

Examples::

    gencache demo                                  # chat model answered from an in-memory cache
    gencache demo --backend sqlite                 # twice: the 2nd run hits the 1st's cache
    gencache stats ~/.cache/gencache/llm_cache.sqlite3
    gencache ls redis://localhost:6379/0 --limit 20
    gencache show cache.sqlite3 3fa2c1
    gencache export cache.sqlite3 -o backup.jsonl
    gencache import other.sqlite3 backup.jsonl
    gencache prune cache.sqlite3
    gencache clear redis://localhost:6379/0 --namespace myapp --yes
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from gencache import codec
from gencache._base import GenCache, StoreCache
from gencache._demo import run_demo
from gencache.errors import GenCacheError
from gencache.memory import InMemoryCache

__all__ = ["main"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_EXIT_ERROR = 1


class CLIError(Exception):
    """An error to report in one line, with exit status 1."""


# -- opening caches -----------------------------------------------------------------------


def _is_redis(target: str) -> bool:
    return target.startswith(_REDIS_SCHEMES)


def _open(target: str, namespace: str, *, create: bool = False) -> StoreCache:
    """Open the cache at ``target`` (a SQLite path or a Redis URL) in strict mode."""
    if _is_redis(target):
        from gencache.redis import RedisCache

        cache = RedisCache(target, namespace=namespace, strict=True)
        # Reach the server now (one GET; strict raises), so that a bad URL or password
        # fails with a clear message before any output. len() would SCAN everything.
        cache.lookup("", "")
        return cache
    from gencache.sqlite import SQLiteCache

    path = Path(target).expanduser()
    if not create and not path.exists():
        msg = f"no such cache file: {path}"
        raise CLIError(msg)
    return SQLiteCache(path, strict=True)  # refuses directories and foreign files itself


def _model(llm_string: str) -> str:
    """The model named in an llm_string, or its start."""
    for pattern in (
        r"""["'](?:model_name|model|model_id|deployment_name)["']\s*[:,]\s*["']([^"']+)""",
        r"""["']_type["']\s*[:,]\s*["']([^"']+)""",
        r'"id":\s*\[[^\]]*"([^"]+)"\]',
    ):
        found = re.search(pattern, llm_string)
        if found:
            return found.group(1)
    return _preview(llm_string, 24)


def _prompt_text(prompt: str) -> str:
    """A chat prompt's messages as ``role: content`` text; other prompts as they are."""
    if not prompt.startswith("[{"):
        return prompt
    try:
        messages = json.loads(prompt)
        parts = []
        for message in messages:
            kwargs = message["kwargs"]
            content = kwargs["content"]
            text = content if isinstance(content, str) else json.dumps(content)
            parts.append(f"{kwargs.get('type', '?')}: {text}")
    except (ValueError, KeyError, TypeError):
        return prompt
    return " | ".join(parts)


def _preview(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class _Progress:
    """A one-line progress count on stderr, shown for large jobs on a terminal or on demand."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self._label, self._total, self._enabled = label, total, enabled
        self._shown = False

    def update(self, done: int) -> None:
        if self._enabled and (done % 1_000 == 0):
            total = f"/{self._total:,}" if self._total else ""
            sys.stderr.write(f"\r{self._label} {done:,}{total}")
            sys.stderr.flush()
            self._shown = True

    def close(self, done: int) -> None:
        if self._shown:
            sys.stderr.write(f"\r{self._label} {done:,} - done\n")


def _progress_wanted(args: argparse.Namespace, total: int | None) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty() and (total is None or total >= 10_000)


# -- commands -------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> None:
    backend: str = args.backend
    cache: GenCache
    if backend == "memory":
        cache, label = InMemoryCache(maxsize=1_000), "gencache.InMemoryCache (in this process)"
    elif backend == "sqlite" or not _is_redis(backend):
        from gencache.sqlite import SQLiteCache, default_path

        path = default_path().with_name("demo.sqlite3") if backend == "sqlite" else Path(backend)
        cache, label = SQLiteCache(path), f"gencache.SQLiteCache at {path}"
    else:
        from gencache.redis import RedisCache

        cache = RedisCache(backend, namespace="gencache-demo", strict=True)
        label = f"gencache.RedisCache at {cache!r}"
    if args.reset:
        cache.clear()
    if not isinstance(cache, InMemoryCache):
        out.write(
            f"Entries already in this cache from earlier runs: {len(cache)} "
            "(run the demo again: the next process is answered from this one's cache; "
            "--reset starts empty).\n"
        )
    run_demo(cache, latency=args.latency, out=out, label=label)


def _cmd_stats(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    now = time.time()
    count = payload = 0
    oldest: float | None = None
    models: Counter[str] = Counter()
    expiring = 0
    for entry in cache.entries():
        count += 1
        payload += len(entry.payload)
        models[_model(entry.llm_string)] += 1
        oldest = entry.created_at if oldest is None else min(oldest, entry.created_at)
        expiring += entry.expires_at is not None
    out.write(f"cache:     {args.target}\n")
    out.write(f"entries:   {count:,}\n")
    out.write(f"payload:   {_size(payload)} (encoded generations)\n")
    if not _is_redis(args.target):
        path = Path(args.target).expanduser()
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        out.write(f"file size: {_size(sum(p.stat().st_size for p in files))}\n")
    if oldest is not None:
        out.write(f"oldest:    {_age(now - oldest)} ago\n")
    out.write(f"with TTL:  {expiring:,}\n")
    if models:
        out.write("models:\n")
        for name, n in models.most_common(10):
            out.write(f"  {n:>8,}  {name}\n")


def _cmd_ls(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    now = time.time()
    out.write(f"{'KEY':<12}  {'AGE':>6}  {'SIZE':>8}  {'MODEL':<24}  PROMPT\n")
    shown = 0
    for entry in cache.entries():
        model = _model(entry.llm_string)
        if args.model and args.model not in model:
            continue
        out.write(
            f"{entry.key[:12]:<12}  {_age(now - entry.created_at):>6}  "
            f"{_size(len(entry.payload)):>8}  {_preview(model, 24):<24}  "
            f"{_preview(_prompt_text(entry.prompt), 60)}\n"
        )
        shown += 1
        if args.limit and shown >= args.limit:
            break


def _cmd_show(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    matches = [e for e in cache.entries() if e.key.startswith(args.key)]
    if not matches:
        msg = f"no entry whose key starts with {args.key!r}"
        raise CLIError(msg)
    if len(matches) > 1:
        msg = f"{len(matches)} entries match {args.key!r}; give more characters of the key"
        raise CLIError(msg)
    entry = matches[0]
    now = time.time()
    out.write(f"key:        {entry.key}\n")
    out.write(f"model:      {_model(entry.llm_string)}\n")
    out.write(f"age:        {_age(now - entry.created_at)}\n")
    if entry.expires_at is not None:
        out.write(f"expires in: {_age(entry.expires_at - now)}\n")
    out.write(f"llm_string: {entry.llm_string}\n")
    out.write(f"prompt:\n{entry.prompt}\n")
    try:
        generations = codec.decode(entry.payload)
    except codec.CodecError as exc:
        out.write(f"generations: cannot be decoded ({exc})\n")
        return
    for i, generation in enumerate(generations):
        message = getattr(generation, "message", None)
        kind = type(message).__name__ if message is not None else type(generation).__name__
        out.write(f"generation {i} ({kind}):\n{generation.text}\n")
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            out.write(f"tool_calls: {json.dumps(tool_calls)}\n")


def _cmd_export(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    total = len(cache)
    progress = _progress_wanted(args, total)
    sink: TextIO = out if args.output == "-" else _private_file(args.output)
    done = 0
    bar = _Progress("exported", total, progress)
    try:
        for entry in cache.entries():
            record = {
                "prompt": entry.prompt,
                "llm_string": entry.llm_string,
                "created_at": entry.created_at,
                "expires_at": entry.expires_at,
                "generations": json.loads(entry.payload),
            }
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            done += 1
            bar.update(done)
    finally:
        if sink is not out:
            sink.close()
    bar.close(done)
    if sink is not out:
        sys.stderr.write(f"exported {done:,} entries to {args.output}\n")


def _private_file(name: str) -> TextIO:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file
    return open(fd, "w", encoding="utf-8")  # closed by the caller


def _records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"line {number}: not JSON ({exc.msg})"
            raise CLIError(msg) from None
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("prompt", "llm_string")
        ):
            msg = f"line {number}: expected an object with 'prompt', 'llm_string', 'generations'"
            raise CLIError(msg)
        yield number, record


def _cmd_import(args: argparse.Namespace, out: TextIO) -> None:
    source = Path(args.file)
    if not source.is_file():
        msg = f"no such file: {source}"
        raise CLIError(msg)
    with source.open(encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    cache = _open(args.target, args.namespace, create=True)
    bar = _Progress("imported", total, _progress_wanted(args, total))
    done = 0
    with source.open(encoding="utf-8") as f:
        for number, record in _records(f):
            try:
                generations = codec.decode(json.dumps(record.get("generations")))
            except codec.CodecError as exc:
                msg = f"line {number}: bad generations ({exc}); {done:,} imported before it"
                raise CLIError(msg) from None
            cache.update(record["prompt"], record["llm_string"], generations)
            done += 1
            bar.update(done)
    bar.close(done)
    out.write(f"imported {done:,} entries into {args.target}\n")


def _cmd_prune(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    if _is_redis(args.target):
        out.write("Redis removes expired entries itself; nothing to prune.\n")
        return
    stats = cache.stats()  # purges every expired row; counters start at zero on open
    out.write(f"removed {stats.expirations:,} expired entries; {stats.size:,} remain\n")


def _cmd_clear(args: argparse.Namespace, out: TextIO) -> None:
    cache = _open(args.target, args.namespace)
    count = len(cache)
    if not args.yes:
        if not sys.stdin.isatty():
            msg = f"refusing to delete {count:,} entries without --yes (stdin is not a terminal)"
            raise CLIError(msg)
        answer = input(f"Delete all {count:,} entries of {args.target}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.write("nothing deleted\n")
            return
    cache.clear()
    out.write(f"deleted {count:,} entries\n")


# -- argument parsing -----------------------------------------------------------------------


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not value >= 0:
        msg = f"must be >= 0: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gencache",
        description="Caches for LangChain LLM and chat-model calls.",
        epilog=(
            "TARGET is a SQLite file (e.g. ~/.cache/gencache/llm_cache.sqlite3) or a Redis "
            "URL (redis://, rediss://, unix://). Run 'gencache COMMAND --help' for examples."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a chat model twice through the cache and show cold vs warm time",
        description=(
            "Ask a LangChain chat model five prompts twice through a gencache cache and show "
            "cold vs warm time, hit rate and statistics. The model is LangChain's fake chat "
            "model with a simulated provider latency: no network, no API key."
        ),
        epilog=(
            "examples:\n  gencache demo\n  gencache demo --backend sqlite   "
            "# run twice: the second process is answered from the first one's cache\n"
            "  gencache demo --backend redis://localhost:6379/0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--latency",
        type=_non_negative_float,
        default=0.3,
        help="simulated provider latency per call, in seconds (default: 0.3)",
    )
    demo.add_argument(
        "--backend",
        default="memory",
        help="'memory' (default), 'sqlite' (a demo file in the cache directory), a SQLite "
        "path, or a Redis URL",
    )
    demo.add_argument("--reset", action="store_true", help="clear the demo cache first")

    def target_command(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("target", metavar="TARGET", help="a SQLite file or a Redis URL")
        sub.add_argument(
            "--namespace",
            default="gencache",
            help="Redis key namespace (default: gencache); ignored for SQLite",
        )
        return sub

    target_command("stats", "show size, age and models of a cache", "gencache stats cache.sqlite3")
    ls = target_command(
        "ls", "list entries: key, age, size, model, prompt", "gencache ls cache.sqlite3 --limit 20"
    )
    ls.add_argument("--limit", type=int, default=50, help="at most this many (0: all)")
    ls.add_argument("--model", help="only entries whose model contains this text")
    show = target_command(
        "show",
        "show one entry in full, by the start of its key",
        "gencache show cache.sqlite3 3fa2",
    )
    show.add_argument("key", help="the first characters of the entry's key (see 'ls')")
    export = target_command(
        "export", "write every entry as JSON lines", "gencache export cache.sqlite3 -o dump.jsonl"
    )
    export.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    imp = target_command(
        "import",
        "read JSON lines written by 'export' into a cache",
        "gencache import new.sqlite3 dump.jsonl",
    )
    imp.add_argument("file", help="the JSON lines file")
    for sub in (export, imp):
        sub.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show a progress count on stderr (default: on a terminal, for large caches)",
        )
    target_command("prune", "remove expired entries", "gencache prune cache.sqlite3")
    clear = target_command(
        "clear",
        "delete every entry of the cache (only this cache's keys)",
        "gencache clear redis://localhost:6379/0 --namespace myapp --yes",
    )
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


_COMMANDS = {
    "demo": _cmd_demo,
    "stats": _cmd_stats,
    "ls": _cmd_ls,
    "show": _cmd_show,
    "export": _cmd_export,
    "import": _cmd_import,
    "prune": _cmd_prune,
    "clear": _cmd_clear,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args, sys.stdout)
    except BrokenPipeError:  # e.g. `gencache ls ... | head`: stop quietly, as git does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (CLIError, GenCacheError, OSError) as exc:
        sys.stderr.write(f"gencache {args.command}: error: {exc}\n")
        return _EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
