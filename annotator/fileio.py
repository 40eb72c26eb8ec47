"""Durable file writes.

- Atomic writes: a temporary file in the target folder, fsync, then ``os.replace``.  A reader
  never sees a half-written file, and a crash mid-write leaves the old file intact.  The file
  gets the mode a plain ``open`` would give it (0666 less the umask: 0644 usually), not the
  temporary file's 0600, so that the people and tools an export is for can read it.
- Journals: JSON Lines appended one fsynced line at a time; a torn last line (a crash mid-write)
  is skipped on reading.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_umask_lock = threading.Lock()


def _file_mode() -> int:
    """0666 less the process umask (read without changing it for other threads for long)."""
    with _umask_lock:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; parent folders are created.

    Returns:
        The written path.
    Raises:
        OSError: the folder is not writable or the disk is full (the old file is kept).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Serialise ``obj`` as UTF-8 JSON and write it atomically (see :func:`atomic_write_bytes`)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append ``obj`` as one JSON line and fsync it; a torn line left by an earlier crash is
    terminated first, so it cannot swallow this one. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with path.open("a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(line number, object)`` of each parsable line of a journal (none if the file does not
    exist); unparsable lines are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                yield n, json.loads(line)
            except ValueError as exc:
                log.warning("%s line %d unreadable (%s): skipped", path, n, exc)
