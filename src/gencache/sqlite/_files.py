"""The SQLite cache's file on disk: its path, creation, permissions and who may write it.

Everything here happens once, at construction, before SQLite opens the file. The rules:
every directory the cache creates is ``0o700`` and the file ``0o600`` (SQLite gives the
``-wal`` and ``-shm`` files the file's mode), whatever the umask; and, unless the caller
passes ``allow_shared=True``, a file or directory that another user can write is
refused, because that user could plant answers (served to this process) or read and
replace the prompts it writes. "Another user can write" means: owned by a user other
than this one or root, or writable by its group or by others. A sticky directory
(``/tmp``) counts as writable by others: anyone may create the ``-wal``, ``-shm`` or
``-journal`` file beside the database before this process does, and SQLite would read
it. Ancestors of the directory are not checked, nor ACLs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from gencache.errors import BackendUnavailableError

__all__ = ["check_path", "create_private", "open_existing", "write_hint"]

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def check_path(path: object, default: Callable[[], Path]) -> Path:
    """Return ``path`` (or the default) as an absolute path, after checking its type.

    Raises:
        TypeError: If ``path`` is not a ``str`` or ``os.PathLike[str]``.
        ValueError: For an in-memory or URI name, or a NUL character.
    """
    if path is None:
        return default()
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):
        msg = f"path must be a str or os.PathLike[str], not {type(path).__name__}"
        raise TypeError(msg)
    if text in {"", ":memory:"} or text.startswith("file:"):
        msg = f"path must name a database file, not {text!r} (use InMemoryCache for memory)"
        raise ValueError(msg)
    if "\x00" in text:
        msg = "path must not contain a NUL character"
        raise ValueError(msg)
    return Path(text).expanduser().absolute()


def create_private(path: Path, *, allow_shared: bool) -> tuple[int, int]:
    """Create missing directories (``0o700`` each) and the file (``0o600``); return its id.

    Raises:
        BackendUnavailableError: If the path cannot be created, is not a regular file,
            cannot be read by this user, or is not private (see the module docstring).
    """
    try:
        if path.is_dir():
            msg = f"SQLite cache {path}: is a directory; pass the path of a file inside it"
            raise BackendUnavailableError(msg)
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for directory in reversed(missing):  # each one 0o700, not just the last
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
                directory.chmod(0o700)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            path.chmod(0o600)
        info = path.stat()
    except OSError as exc:
        msg = f"SQLite cache {path}: cannot create the database file: {exc}"
        raise BackendUnavailableError(msg) from exc
    return _checked(path, info, allow_shared=allow_shared)


def open_existing(path: Path, *, allow_shared: bool) -> tuple[int, int]:
    """Return the id of an existing file to open read-only, after the same checks.

    Raises:
        BackendUnavailableError: If the file is missing, not a regular file, unreadable
            (the message says it is a permission problem) or not private.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        msg = f"SQLite cache {path}: no such file"
        raise BackendUnavailableError(msg) from None
    except PermissionError as exc:
        msg = f"SQLite cache {path}: permission denied: {_who()} cannot reach the file ({exc})"
        raise BackendUnavailableError(msg) from exc
    except OSError as exc:
        msg = f"SQLite cache {path}: cannot open: {exc}"
        raise BackendUnavailableError(msg) from exc
    return _checked(path, info, allow_shared=allow_shared)


def write_hint(path: Path) -> str:
    """A hint for a failed read-write open: ``""``, or why the directory is the cause."""
    if os.access(path.parent, os.W_OK | os.X_OK):
        return ""
    return (
        f" ({_who()} cannot write its directory {path.parent}, where SQLite keeps the"
        " -wal and -shm files; to read the cache, open it with readonly=True)"
    )


def _checked(path: Path, info: os.stat_result, *, allow_shared: bool) -> tuple[int, int]:
    if stat.S_ISDIR(info.st_mode):
        msg = f"SQLite cache {path}: is a directory; pass the path of a file inside it"
        raise BackendUnavailableError(msg)
    if not stat.S_ISREG(info.st_mode):
        msg = f"SQLite cache {path}: not a regular file ({stat.filemode(info.st_mode)})"
        raise BackendUnavailableError(msg)
    if not os.access(path, os.R_OK):
        msg = (
            f"SQLite cache {path}: permission denied: {_who()} cannot read the file "
            f"(owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)})"
        )
        raise BackendUnavailableError(msg)
    if not allow_shared:
        _check_private(path, info)
    return info.st_dev, info.st_ino


def _check_private(path: Path, info: os.stat_result) -> None:
    trusted = (os.geteuid(), 0)
    if info.st_uid not in trusted or info.st_mode & _OTHERS_WRITE:
        msg = (
            f"SQLite cache {path}: the file can be written by another user "
            f"(owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}), who could "
            "plant answers or read the prompts; use a private file, or pass allow_shared=True"
        )
        raise BackendUnavailableError(msg)
    directory = path.parent
    try:
        parent = directory.stat()
    except OSError as exc:
        msg = f"SQLite cache {path}: cannot check its directory: {exc}"
        raise BackendUnavailableError(msg) from exc
    if parent.st_uid not in trusted or parent.st_mode & _OTHERS_WRITE:
        msg = (
            f"SQLite cache {path}: its directory {directory} can be written by another user "
            f"(owner uid {parent.st_uid}, mode {stat.filemode(parent.st_mode)}), who could "
            "replace the file or plant its -wal or -journal file; use a private directory, "
            "or pass allow_shared=True"
        )
        raise BackendUnavailableError(msg)


def _who() -> str:
    return f"this user (uid {os.geteuid()})"
