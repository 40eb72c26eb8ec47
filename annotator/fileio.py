"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

A reader never sees a half-written file, and a crash mid-write leaves the old file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
