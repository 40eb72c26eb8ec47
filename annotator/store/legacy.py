"""The JSON store of earlier versions (``<slug>.annotations.json`` + ``<slug>.session.json``),
read once to be migrated into the database (:meth:`AnnotationStore.migrate_json`).

Format (``version`` 1): ``{"version", "next_id", "meta", "images": {key: {key, width,
height}}, "categories": {name: id}, "annotations": [Annotation fields...]}``; before the session
file existed, ``meta`` held ``last_image`` and ``done``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .model import Annotation, ImageInfo, StoreError


@dataclass
class LegacyStore:
    """A JSON store as read: every part the database keeps."""

    images: dict[str, ImageInfo]
    categories: dict[str, int]
    annotations: list[Annotation]
    next_id: int
    meta: dict = field(default_factory=dict)
    last_image: str | None = None
    done: list[str] = field(default_factory=list)


def read_legacy(path: Path, session_path: Path | None) -> LegacyStore:
    """Read a JSON store and its session file (if any).

    Raises:
        StoreError: either file unreadable or not of the format (a wrong type anywhere too);
            both are left untouched.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {str(k): ImageInfo(**v) for k, v in data["images"].items()}
        categories = {str(k): int(v) for k, v in data["categories"].items()}
        anns = [Annotation(**a) for a in data["annotations"]]
        meta = dict(data.get("meta", {}))
        next_id = int(data.get("next_id", max((a.id for a in anns), default=0) + 1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"{path} is not a readable annotation store ({exc}); move it away to start fresh") from exc
    last_image, done = meta.pop("last_image", None), meta.pop("done", [])
    if session_path is not None and session_path.exists():
        try:
            session = json.loads(session_path.read_text(encoding="utf-8"))
            last_image, done = session.get("last_image"), session.get("done", [])  # a list, checked below
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise StoreError(f"{session_path} is not a readable session file ({exc}); move it away") from exc
    if not isinstance(done, list) or not all(isinstance(k, str) for k in done):
        raise StoreError(f"{session_path or path}: 'done' is not a list of image keys")
    if last_image is not None and not isinstance(last_image, str):
        raise StoreError(f"{session_path or path}: 'last_image' is not an image key")
    return LegacyStore(images, categories, anns, next_id, meta, last_image, done)
