"""The ``gencache`` commands: each takes the parsed arguments and an output stream."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from gencache import codec
from gencache._demo import demo_command
from gencache._protocol import Entry
from gencache.cli._render import (
    age,
    content_text,
    messages_text,
    model_of,
    preview,
    printable,
    size,
)
from gencache.cli._targets import CLIError, is_redis, open_target
from gencache.stats import Savings

__all__ = [
    "cmd_clear",
    "cmd_demo",
    "cmd_explain",
    "cmd_export",
    "cmd_import",
    "cmd_ls",
    "cmd_prune",
    "cmd_show",
    "cmd_stats",
]


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


def _decoded(entry: Entry) -> list[Any] | None:
    """The entry's generations, or ``None`` for a damaged one."""
    try:
        return codec.decode(entry.payload)
    except codec.CodecError:
        return None


def _damaged(count: int, out: TextIO) -> None:
    if count:
        sys.stderr.write(f"skipped {count:,} damaged entries (they are misses for every lookup)\n")


def cmd_demo(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache demo``."""
    demo_command(args.backend, latency=args.latency, reset=args.reset, out=out)


def _prices(specs: list[str] | None) -> dict[str, tuple[float, float]]:
    prices = {}
    for spec in specs or ():
        model, sep, pair = spec.partition("=")
        try:
            tin, tout = (float(x) for x in pair.split(","))
        except ValueError:
            msg = f"--price wants MODEL=INPUT,OUTPUT (per million tokens), not {spec!r}"
            raise CLIError(msg) from None
        if not sep or not model:
            msg = f"--price wants MODEL=INPUT,OUTPUT (per million tokens), not {spec!r}"
            raise CLIError(msg)
        prices[model] = (tin, tout)
    return prices


def _money(model: str, saved: Savings, prices: dict[str, tuple[float, float]]) -> str:
    price = prices.get(model)
    if price is not None:
        value = (saved.input_tokens * price[0] + saved.output_tokens * price[1]) / 1e6
        return f"{value:,.4f}"
    return "-" if saved.money is None else f"{saved.money:,.4f}"


def cmd_stats(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache stats``: size, age, models, and what the cache saved."""
    cache = open_target(args.target, args.namespace)
    now = time.time()
    count = payload = damaged = 0
    oldest: float | None = None
    models: Counter[str] = Counter()
    expiring = 0
    for entry in cache.entries():
        count += 1
        payload += len(entry.payload)
        models[model_of(entry.llm_string)] += 1
        oldest = entry.created_at if oldest is None else min(oldest, entry.created_at)
        expiring += entry.expires_at is not None
    out.write(f"cache:     {printable(args.target)}\n")
    out.write(f"entries:   {count:,}\n")
    out.write(f"payload:   {size(payload)} (encoded generations)\n")
    if not is_redis(args.target):
        path = Path(args.target).expanduser()
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        out.write(f"file size: {size(sum(p.stat().st_size for p in files))}\n")
    if oldest is not None:
        out.write(f"oldest:    {age(now - oldest)} ago\n")
    out.write(f"with TTL:  {expiring:,}\n")
    if models:
        out.write("models:\n")
        for name, n in models.most_common(10):
            out.write(f"  {n:>8,}  {printable(name)}\n")
    _damaged(damaged, out)
    saved = cache.stored_savings()
    prices = _prices(args.price)
    if saved:
        out.write("saved by hits (every process that used this cache):\n")
        out.write(f"  {'MODEL':<28} {'CALLS':>8} {'TOKENS IN':>12} {'TOKENS OUT':>11}")
        out.write(f" {'TIME':>8} {'MONEY':>10}\n")
        total = Savings()
        for model, s in sorted(saved.items(), key=lambda kv: -kv[1].calls):
            total += s
            out.write(
                f"  {preview(model or '(unknown)', 28):<28} {s.calls:>8,} {s.input_tokens:>12,}"
                f" {s.output_tokens:>11,} {age(s.seconds):>8} {_money(model, s, prices):>10}\n"
            )
        if len(saved) > 1:
            money = sum(
                float(m)
                for m in (_money(k, v, prices).replace(",", "") for k, v in saved.items())
                if m != "-"
            )
            out.write(
                f"  {'total':<28} {total.calls:>8,} {total.input_tokens:>12,}"
                f" {total.output_tokens:>11,} {age(total.seconds):>8} {money:>10,.4f}\n"
            )
    else:
        out.write("saved by hits: nothing recorded yet\n")


def cmd_ls(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache ls``: one line per entry."""
    if args.limit < 0:
        msg = f"--limit must be 0 (all) or more, not {args.limit}"
        raise CLIError(msg)
    cache = open_target(args.target, args.namespace)
    now = time.time()
    wanted = args.model.casefold() if args.model else None
    out.write(f"{'KEY':<12}  {'AGE':>6}  {'SIZE':>8}  {'MODEL':<24}  PROMPT\n")
    shown = matched = 0
    for entry in cache.entries():
        model = model_of(entry.llm_string)
        if wanted is not None and wanted not in model.casefold():
            continue
        matched += 1
        if args.limit and shown >= args.limit:
            continue
        lines = messages_text(entry.prompt)
        text = " | ".join(lines) if lines is not None else entry.prompt
        out.write(
            f"{entry.key[:12]:<12}  {age(now - entry.created_at):>6}  "
            f"{size(len(entry.payload)):>8}  {preview(model, 24):<24}  {preview(text, 60)}\n"
        )
        shown += 1
    if matched > shown:
        out.write(f"... and {matched - shown:,} more not shown (--limit 0 shows all)\n")


def cmd_show(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache show``: one entry in full."""
    cache = open_target(args.target, args.namespace)
    matches = [e for e in cache.entries() if e.key.startswith(args.key)]
    if not matches:
        msg = f"no entry whose key starts with {args.key!r}"
        raise CLIError(msg)
    if len(matches) > 1:
        msg = f"{len(matches)} entries match {args.key!r}; give more characters of the key"
        raise CLIError(msg)
    entry = matches[0]
    now = time.time()
    w = out.write
    w(f"key:        {entry.key}\n")
    w(f"model:      {printable(model_of(entry.llm_string))}\n")
    if entry.scope is not None:
        w(f"scope:      {printable(entry.scope)}\n")
    w(f"age:        {age(now - entry.created_at)}\n")
    if entry.expires_at is not None:
        w(f"expires in: {age(entry.expires_at - now)}\n")
    w(f"llm_string: {printable(entry.llm_string)}\n")
    lines = messages_text(entry.prompt)
    if lines is None:
        w(f"prompt:\n{printable(entry.prompt)}\n")
    else:
        w("prompt:\n" + "".join(f"  {line}\n" for line in lines))
    generations = _decoded(entry)
    if generations is None:
        w("generations: damaged (a miss for every lookup)\n")
        return
    for i, generation in enumerate(generations):
        message = getattr(generation, "message", None)
        kind = type(message).__name__ if message is not None else type(generation).__name__
        text = content_text(message.content) if message is not None else generation.text
        w(f"generation {i} ({kind}):\n{printable(text)}\n")
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            w(f"tool_calls: {printable(json.dumps(tool_calls, default=str))}\n")


def _private_file(name: str) -> TextIO:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file
    return open(fd, "w", encoding="utf-8")  # closed by the caller


def _record(entry: Entry, generations: list[Any]) -> str:
    """One export line: ASCII JSON (lone surrogates escaped), sorted keys."""
    fields = {
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "llm_string": entry.llm_string,
        "prompt": entry.prompt,
    }
    if entry.scope is not None:
        fields["scope"] = entry.scope
    head = json.dumps(fields, ensure_ascii=True, sort_keys=True)
    envelope = codec.encode(generations).decode("utf-8")
    return f'{head[:-1]}, "generations": {envelope}}}\n'


def cmd_export(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache export``: every live entry as one JSON line, streamed."""
    cache = open_target(args.target, args.namespace)
    total = len(cache)
    sink: TextIO = out if args.output == "-" else _private_file(args.output)
    done = damaged = 0
    bar = _Progress("exported", total, _progress_wanted(args, total))
    try:
        for entry in cache.entries():
            generations = _decoded(entry)
            if generations is None:
                damaged += 1
                continue
            sink.write(_record(entry, generations))
            done += 1
            bar.update(done)
    finally:
        if sink is not out:
            sink.close()
    bar.close(done)
    _damaged(damaged, out)
    if sink is not out:
        sys.stderr.write(f"exported {done:,} entries to {args.output}\n")


def _records(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            msg = f"line {number}: not JSON ({str(exc)[:80]})"
            raise CLIError(msg) from None
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("prompt", "llm_string")
        ):
            msg = f"line {number}: expected an object with 'prompt', 'llm_string', 'generations'"
            raise CLIError(msg)
        yield number, record


def _time(record: dict[str, Any], name: str, number: int) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"line {number}: {name} must be a number of seconds since the epoch or null"
        raise CLIError(msg)
    return float(value)


def cmd_import(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache import``: JSON lines written by ``export``, with their times."""
    source = Path(args.file)
    if not source.is_file():
        msg = f"no such file: {source}"
        raise CLIError(msg)
    with source.open(encoding="utf-8", errors="surrogateescape") as f:
        total = sum(1 for line in f if line.strip())
    cache = open_target(args.target, args.namespace, create=True, write=True)
    bar = _Progress("imported", total, _progress_wanted(args, total))
    done = expired = 0
    now = time.time()
    with source.open(encoding="utf-8", errors="surrogateescape") as f:
        for number, record in _records(f):
            try:
                generations = codec.decode(json.dumps(record.get("generations")))
            except codec.CodecError as exc:
                msg = f"line {number}: bad generations ({exc}); {done:,} imported before it"
                raise CLIError(msg) from None
            created = _time(record, "created_at", number)
            expires = _time(record, "expires_at", number)
            scope = record.get("scope")
            if not (scope is None or (isinstance(scope, str) and scope)):
                msg = f"line {number}: scope must be a non-empty string or absent"
                raise CLIError(msg)
            if cache.restore(
                record["prompt"],
                record["llm_string"],
                generations,
                created_at=now if created is None else created,
                expires_at=expires,
                scope=scope,
            ):
                done += 1
            else:
                expired += 1
            bar.update(done + expired)
    bar.close(done + expired)
    note = f" ({expired:,} already expired, not imported)" if expired else ""
    out.write(f"imported {done:,} entries into {printable(args.target)}{note}\n")


def cmd_prune(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache prune``: remove expired entries (SQLite)."""
    cache = open_target(args.target, args.namespace, write=True)
    if is_redis(args.target):
        out.write("Redis removes expired entries itself; nothing to prune.\n")
        return
    stats = cache.stats()  # purges every expired row; counters start at zero on open
    out.write(f"removed {stats.expirations:,} expired entries; {stats.size:,} remain\n")


def cmd_clear(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache clear``: delete this cache's entries (or one scope's)."""
    cache = open_target(args.target, args.namespace, write=True)
    scope = args.scope
    count = len(cache) if scope is None else sum(1 for e in cache.entries() if e.scope == scope)
    what = f"{count:,} entries" + ("" if scope is None else f" of scope {scope!r}")
    if not args.yes:
        if not sys.stdin.isatty():
            msg = f"refusing to delete {what} without --yes (stdin is not a terminal)"
            raise CLIError(msg)
        answer = input(f"Delete {what} of {args.target}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.write("nothing deleted\n")
            return
    if scope is None:
        cache.clear()
    else:
        cache.clear(scope=scope)
    out.write(f"deleted {what}\n")


def _read_text(name: str, what: str) -> str:
    path = Path(name)
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        msg = f"cannot read the {what} file {name}: {exc.strerror or exc}"
        raise CLIError(msg) from None


def cmd_explain(args: argparse.Namespace, out: TextIO) -> None:
    """``gencache explain``: would this request hit, and if not, what differs?"""
    prompt = _read_text(args.prompt_file, "prompt")
    llm_string = _read_text(args.llm_string_file, "llm_string")
    if args.strip_newline:
        prompt, llm_string = prompt.removesuffix("\n"), llm_string.removesuffix("\n")
    cache = open_target(args.target, args.namespace)
    from gencache._control import control

    with control(scope=args.scope) if args.scope else contextlib.nullcontext():
        explanation = cache.explain(prompt, llm_string)
    out.write(printable(str(explanation)) + "\n")
