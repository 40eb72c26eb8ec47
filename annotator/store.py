"""Accepted annotations, saved to disk on every change so that nothing is lost.

One JSON file per image folder holds the images (key = path relative to the folder, size),
the categories used (name → stable id, assigned at first use and never changed) and the
annotations (mask as COCO compressed RLE).  Every change rewrites it atomically.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_write_json
from .masks import decode_rle, encode_rle, rle_area, rle_bbox

log = logging.getLogger(__name__)

STORE_VERSION = 1


class StoreError(RuntimeError):
    """The store file exists but cannot be read; it is left untouched."""


@dataclass
class Annotation:
    """One accepted mask.

    Attributes:
        id: unique within the store, never reused.
        image: image key (path relative to the image folder, POSIX separators).
        label: category name.
        category_id: stable id of ``label`` in this store.
        rle: COCO compressed RLE ``{"size": [H, W], "counts": str}`` at the image's resolution.
        bbox: ``[x, y, width, height]`` pixels (COCO XYWH).
        area: mask pixel count.
        score: label suggestion score of ``label`` when it was predicted, else ``None``.
        predicted_iou: SAM's predicted IoU of the mask, ``None`` if not predicted.
        prompt: the prompt that produced it (``points``, ``point_labels``, ``box``).
        created: UNIX time of acceptance.
    """

    id: int
    image: str
    label: str
    category_id: int
    rle: dict
    bbox: list[float]
    area: int
    score: float | None = None
    predicted_iou: float | None = None
    prompt: dict = field(default_factory=dict)
    created: float = 0.0


@dataclass
class ImageInfo:
    """An image of the store: key (relative path), ``width`` and ``height`` in pixels."""

    key: str
    width: int
    height: int


class AnnotationStore:
    """Persistent, thread-safe collection of :class:`Annotation` for one image folder.

    Args:
        path: the JSON file; created on first change, loaded if it exists.
        category_ids: preferred ids for names (the vocabulary's), used when a name is first seen.
    Raises:
        StoreError: ``path`` exists but is not a readable store.
    """

    def __init__(self, path: str | Path, category_ids: dict[str, int] | None = None):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._preferred = dict(category_ids or {})
        self.images: dict[str, ImageInfo] = {}
        self.categories: dict[str, int] = {}
        self.annotations: dict[int, Annotation] = {}
        self.meta: dict = {}
        self._next_id = 1
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.images = {k: ImageInfo(**v) for k, v in data["images"].items()}
            self.categories = {k: int(v) for k, v in data["categories"].items()}
            anns = [Annotation(**a) for a in data["annotations"]]
            self.meta = dict(data.get("meta", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self.path} is not a readable annotation store ({exc}); move it away to start fresh"
            ) from exc
        self.annotations = {a.id: a for a in anns}
        self._next_id = int(data.get("next_id", max(self.annotations, default=0) + 1))

    def save(self) -> None:
        """Write the store atomically (temp file + rename)."""
        with self._lock:
            data = {
                "version": STORE_VERSION,
                "next_id": self._next_id,
                "meta": self.meta,
                "images": {k: asdict(v) for k, v in self.images.items()},
                "categories": self.categories,
                "annotations": [asdict(a) for a in self.annotations.values()],
            }
            atomic_write_json(self.path, data)

    def category_id(self, name: str) -> int:
        """Stable id of a category name, assigned on first use (the vocabulary's id if free)."""
        with self._lock:
            if name not in self.categories:
                used = set(self.categories.values())
                cid = self._preferred.get(name)
                if cid is None or cid in used:
                    cid = max([*used, *self._preferred.values(), 0]) + 1
                self.categories[name] = cid
            return self.categories[name]

    def add_image(self, image: str, width: int, height: int, save: bool = True) -> ImageInfo:
        """Register an image with no annotation yet (e.g. one where nothing was found: a
        negative, still exported and pushed for review). Existing images are left as they are."""
        with self._lock:
            info = self.images.setdefault(image, ImageInfo(image, int(width), int(height)))
            if save:
                self.save()
        return info

    def add(
        self,
        image: str,
        mask: np.ndarray,
        label: str,
        score: float | None = None,
        predicted_iou: float | None = None,
        prompt: dict | None = None,
        save: bool = True,
    ) -> Annotation:
        """Accept a mask: store it and save.

        Args:
            image: image key; mask: (H, W) bool at the image's resolution.
            save: write the store now; pass ``False`` when adding many, then call :meth:`save`.
        Raises:
            ValueError: empty mask or empty label.
        """
        label = label.strip()
        if not label:
            raise ValueError("an annotation needs a label")
        if not mask.any():
            raise ValueError("cannot accept an empty mask")
        rle = encode_rle(mask)
        with self._lock:
            h, w = mask.shape
            self.images.setdefault(image, ImageInfo(image, int(w), int(h)))
            ann = Annotation(
                id=self._next_id,
                image=image,
                label=label,
                category_id=self.category_id(label),
                rle=rle,
                bbox=rle_bbox(rle),
                area=rle_area(rle),
                score=None if score is None else float(score),
                predicted_iou=None if predicted_iou is None else float(predicted_iou),
                prompt=prompt or {},
                created=time.time(),
            )
            self._next_id += 1
            self.annotations[ann.id] = ann
            if save:
                self.save()
        return ann

    def delete(self, ann_id: int) -> None:
        """Remove an annotation and save. Raises ``KeyError`` if absent."""
        with self._lock:
            del self.annotations[ann_id]
            self.save()

    def relabel(self, ann_id: int, label: str) -> Annotation:
        """Change an annotation's label (score cleared: the label is now the user's) and save."""
        label = label.strip()
        if not label:
            raise ValueError("an annotation needs a label")
        with self._lock:
            ann = self.annotations[ann_id]
            ann.label, ann.category_id, ann.score = label, self.category_id(label), None
            self.save()
            return ann

    def merge(self, ann_ids: list[int], label: str | None = None) -> Annotation:
        """Replace annotations of one image by one whose mask is their union, and save.

        Args:
            ann_ids: two or more ids.
            label: the merged label; default the first id's.
        Returns:
            The new annotation (a new id; score cleared, predicted IoU the best of the parts).
        Raises:
            KeyError: an unknown id.
            ValueError: fewer than two distinct ids, or annotations of different images.
        """
        ids = list(dict.fromkeys(int(i) for i in ann_ids))
        if len(ids) < 2:
            raise ValueError("merging needs two or more different annotation ids")
        with self._lock:
            parts = [self.annotations[i] for i in ids]
            if len({a.image for a in parts}) != 1:
                raise ValueError("annotations of different images cannot be merged")
            mask = np.logical_or.reduce([decode_rle(a.rle) for a in parts])
            ious = [a.predicted_iou for a in parts if a.predicted_iou is not None]
            merged = self.add(
                parts[0].image,
                mask,
                label or parts[0].label,
                predicted_iou=max(ious) if ious else None,
                prompt={"merged": ids},
                save=False,
            )
            for i in ids:
                del self.annotations[i]
            self.save()
            return merged

    def for_image(self, image: str) -> list[Annotation]:
        """Annotations of one image, in acceptance order."""
        with self._lock:
            return [a for a in self.annotations.values() if a.image == image]

    def set_meta(self, **values) -> None:
        """Update free-form metadata (e.g. the image last worked on) and save."""
        with self._lock:
            self.meta.update(values)
            self.save()

    def counts(self) -> dict[str, int]:
        """Number of annotations per image key (images without any are absent)."""
        with self._lock:
            return dict(Counter(a.image for a in self.annotations.values()))

    @property
    def done(self) -> set[str]:
        """Image keys the user marked as done (saved in the store's metadata)."""
        with self._lock:
            return set(self.meta.get("done", []))

    def set_done(self, image: str, done: bool = True) -> None:
        """Mark an image as done (or not) and save."""
        with self._lock:
            marks = set(self.meta.get("done", []))
            if (image in marks) == bool(done):
                return
            marks = marks | {image} if done else marks - {image}
            self.meta["done"] = sorted(marks)
            self.save()
