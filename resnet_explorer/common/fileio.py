"""Atomic file writes shared by the model store, run records and the trainer.

Every file another process may read while we write it (status.json, configs,
checkpoints, model files) goes through these helpers: the bytes land in a
temporary file in the same folder, are flushed to disk, and only then renamed
over the target with ``os.replace``. A reader (or a process killed mid-write)
therefore sees either the complete old file or the complete new one, never a
torn mix. The temporary file lives in the target's folder because a rename is
only atomic within one file system.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere `exclusive_lock` serialises nothing
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "append_line",
           "exclusive_lock", "is_disk_full", "os_error_text", "os_errors_as", "TMP_SUFFIX"]

# Leftovers of a killed writer end with this suffix; readers and listings skip them.
TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True,
                       exclusive: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically and return the path.

    ``fsync=False`` skips the flush to disk for frequently rewritten,
    expendable files (progress in status.json): the rename is still atomic,
    only durability across a power cut is traded for speed. ``exclusive=True``
    never replaces: it raises FileExistsError if ``path`` exists, atomically (a
    hard link claims the name), so two writers cannot both think they created it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp_name, target)
            os.unlink(tmp_name)
        else:
            os.replace(tmp_name, target)
    except BaseException:
        # BaseException on purpose: a KeyboardInterrupt/SystemExit mid-write must
        # not leave a stray temporary file behind either.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> Path:
    # allow_nan=False: NaN/Infinity are not JSON; a metric that went non-finite
    # must be turned into null by the caller rather than written as invalid JSON.
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text, fsync=fsync)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line to a log-like file (metrics.jsonl, log.txt).

    Appends are not replaced atomically (rewriting a growing file every step
    would be quadratic); instead each line goes out in a single ``write`` on an
    O_APPEND descriptor, and readers ignore a trailing line without its
    newline, which is all a killed writer can leave behind.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block, waiting for it:
    read-modify-write sequences of several files (a run id and its marker, a sweep's
    runs.json) then do not interleave between threads, sessions or processes. The kernel
    drops the lock when the holder dies, so a crash never leaves it taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an error it was raised from, is a full disk or an exhausted quota
    (also behind a UserError that wrapped the OSError)."""
    seen = 0
    while exc is not None and seen < 8:  # a bounded walk: a cycle of causes cannot hang it
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def os_error_text(exc: OSError) -> str:
    """An error of the file system in words for a person; a full disk says so, and where."""
    if is_disk_full(exc):
        where = f" ({Path(exc.filename).parent})" if isinstance(exc.filename, str) else ""
        return f"the disk is full{where}"
    return exc.strerror or str(exc)


@contextmanager
def os_errors_as(error: type[Exception], doing: str) -> Iterator[None]:
    """Turn an OSError in the block into `error` ("could not …: the disk is full (…)"), for
    actions a person starts from a page; the OSError stays its cause."""
    try:
        yield
    except OSError as exc:
        raise error(f"{doing}: {os_error_text(exc)}") from exc


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable. Not every platform/file system allows
    # opening a directory, and durability here is best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
