"""A disk that is really full, and a record of every file in a tree, for the fault tests.

A full disk is a small tmpfs mounted over a test folder and filled with a ballast file, so
every write fails the way it does in production (ENOSPC from write(), not a mock). Mounting
needs root, which this project's CI has; elsewhere `tmpfs_or_reason` says why not, and each
test states what it does then (an injection in-process, or a failure on CI, never a quiet
skip there).
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BALLAST = "ballast"


def on_ci() -> bool:
    return bool(os.environ.get("CI"))


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[str | None]:
    """Mount a tmpfs of `size` (e.g. "4m") on `folder` for the block; yields None when mounted,
    else the reason it could not be (not root, no mount command, a sandbox that refuses)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
        refused = f"mount refused: {done.stderr.strip()[:200]}" if done.returncode else None
    except OSError as exc:
        refused = f"mount cannot run: {exc}"
    if refused:
        yield refused
        return
    try:
        yield None
    finally:
        # Lazy: a process of a failed test may still hold a file open there.
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill_disk(folder: Path) -> Path:
    """Write a ballast file into `folder` until its file system has no byte left; its path.
    Smaller chunks at the end take the last free pages too."""
    ballast = folder / BALLAST
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            data = bytes(chunk)
            while True:
                try:
                    os.write(fd, data)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


def tree_record(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root` (hidden ones too): content digest, size and
    modification time of each file; entries and modification time of each folder."""
    record: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        st = here.stat()
        record[str(here.relative_to(root))] = ("dir", sorted(dirs + files), st.st_mtime_ns)
        for name in files:
            path = here / name
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            record[str(path.relative_to(root))] = ("file", digest, st.st_size, st.st_mtime_ns)
    return record


def leftovers(root: Path) -> list[str]:
    """Temporary files of interrupted atomic writes and run reserves under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith(".tmp") or p.name == ".reserve")
