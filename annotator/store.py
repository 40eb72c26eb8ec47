"""Accepted annotations, saved to disk on every change so that nothing is lost.

Two JSON files per image folder, each rewritten atomically (temp file + rename) on change:

- the store: the images (key = path relative to the folder, size), the categories used
  (name → stable id, assigned at first use and never changed) and the annotations (mask as
  COCO compressed RLE, with their provenance);
- the session file beside it: the image worked on last and the done marks, small and written
  on their own, so that moving to another image never rewrites the annotations.

Annotations are indexed by image, and cross module lines as
:class:`~annotator.instances.Instances` (:meth:`AnnotationStore.instances`,
:meth:`AnnotationStore.add_instances`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_write_json
from .instances import Instances, Source
from .masks import decode_rle, encode_rle, rle_area, rle_bbox

log = logging.getLogger(__name__)

STORE_VERSION = 1
MAX_LABEL_CHARS = 200
"""The longest label a store takes (characters)."""


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
        prompt: the prompt that produced it (``points``, ``labels``, ``box``; ``everything``
            and ``patches`` for the everything mode; ``merged`` ids).
        created: UNIX time of acceptance.
        source: how it was made, a :class:`~annotator.instances.Source` value (stores written
            before it existed get it from ``prompt``).
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
    source: str = ""

    def __post_init__(self) -> None:
        self.source = Source(self.source).value if self.source else source_of_prompt(self.prompt).value


def check_label_text(label: str) -> str:
    """``label`` unchanged if an export can hold it: at most :data:`MAX_LABEL_CHARS` characters,
    no control character (Unicode category ``Cc``: NUL, BEL, newlines...; XML 1.0, which the
    Label Studio config is, cannot hold most of them).

    Raises:
        ValueError: too long, or a control character (named by its code point).
    """
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"a label has at most {MAX_LABEL_CHARS} characters ({len(label)} given)")
    bad = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"a label cannot hold the control character U+{ord(bad):04X}")
    return label


def _checked_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise ValueError("an annotation needs a label")
    return check_label_text(label)


def source_of_prompt(prompt: dict) -> Source:
    """The provenance of an annotation from its prompt (stores written before ``source``)."""
    if prompt.get("merged"):
        return Source.MERGE
    if prompt.get("everything"):
        try:
            return Source(prompt["everything"])
        except ValueError:
            return Source.PATCHES
    if prompt.get("points"):
        return Source.CLICK
    if prompt.get("box") is not None:
        return Source.BOX
    return Source.IMPORTED


@dataclass
class ImageInfo:
    """An image of the store: key (relative path), ``width`` and ``height`` in pixels."""

    key: str
    width: int
    height: int


class AnnotationStore:
    """Persistent, thread-safe collection of :class:`Annotation` for one image folder.

    Args:
        path: the store's JSON file; created on first change, loaded if it exists.
        category_ids: preferred ids for names (the vocabulary's), used when a name is first seen.
        session_path: the session file (last image, done marks); default beside ``path``
            (``<name>.session.json`` for ``<name>.annotations.json``).
    Raises:
        StoreError: ``path`` or ``session_path`` exists but is not readable.
    """

    def __init__(
        self, path: str | Path, category_ids: dict[str, int] | None = None, session_path: str | Path | None = None
    ):
        self.path = Path(path)
        if session_path is None:
            stem = self.path.name.removesuffix(".json").removesuffix(".annotations")
            session_path = self.path.with_name(f"{stem}.session.json")
        self.session_path = Path(session_path)
        self._lock = threading.RLock()
        self._preferred = dict(category_ids or {})
        self.images: dict[str, ImageInfo] = {}
        self.categories: dict[str, int] = {}
        self.annotations: dict[int, Annotation] = {}
        self._by_image: dict[str, dict[int, Annotation]] = {}
        self.meta: dict = {}
        self._session: dict = {"last_image": None, "done": []}
        self._next_id = 1
        migrated = False
        if self.path.exists():
            migrated = self._load()
        if self.session_path.exists():
            self._load_session()
        elif migrated:
            self._save_session()

    def _load(self) -> bool:
        """Read the store; returns whether it held session state (moved to the session file)."""
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
        migrated = False
        for key in ("last_image", "done"):  # kept in the store before the session file existed
            if key in self.meta:
                self._session[key] = self.meta.pop(key)
                migrated = True
        for a in anns:
            self._index(a)
        self._next_id = int(data.get("next_id", max(self.annotations, default=0) + 1))
        return migrated

    def _load_session(self) -> None:
        try:
            data = json.loads(self.session_path.read_text(encoding="utf-8"))
            self._session = {"last_image": data.get("last_image"), "done": list(data.get("done", []))}
        except (OSError, ValueError, AttributeError) as exc:
            raise StoreError(f"{self.session_path} is not a readable session file ({exc}); move it away") from exc

    def _index(self, ann: Annotation) -> None:
        self.annotations[ann.id] = ann
        self._by_image.setdefault(ann.image, {})[ann.id] = ann

    def _unindex(self, ann_id: int) -> Annotation:
        ann = self.annotations.pop(ann_id)
        del self._by_image[ann.image][ann_id]
        return ann

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

    def _save_session(self) -> None:
        atomic_write_json(self.session_path, {"version": STORE_VERSION, **self._session})

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

    def declared_categories(self) -> dict[str, int]:
        """The categories a run declared (``annotate --classes`` keeps them in ``meta["classes"]``)
        with their ids: the exports list them even where no instance was found."""
        return {name: self.category_id(name) for name in self.meta.get("classes", [])}

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
        mask: np.ndarray | dict,
        label: str,
        score: float | None = None,
        predicted_iou: float | None = None,
        prompt: dict | None = None,
        save: bool = True,
        source: Source | None = None,
    ) -> Annotation:
        """Accept a mask: store it and save.

        Args:
            image: image key; mask: (H, W) bool at the image's resolution, or its COCO RLE.
            source: how it was made; default from ``prompt`` (see :func:`source_of_prompt`).
            save: write the store now; pass ``False`` when adding many, then call :meth:`save`.
        Raises:
            ValueError: empty mask; empty, too long a label (:data:`MAX_LABEL_CHARS`) or one with
                a control character.
        """
        label = _checked_label(label)
        rle = dict(mask) if isinstance(mask, dict) else encode_rle(mask)
        area = rle_area(rle)
        if area == 0:
            raise ValueError("cannot accept an empty mask")
        with self._lock:
            h, w = rle["size"]
            self.images.setdefault(image, ImageInfo(image, int(w), int(h)))
            ann = Annotation(
                id=self._next_id,
                image=image,
                label=label,
                category_id=self.category_id(label),
                rle=rle,
                bbox=rle_bbox(rle),
                area=area,
                score=None if score is None else float(score),
                predicted_iou=None if predicted_iou is None else float(predicted_iou),
                prompt=prompt or {},
                created=time.time(),
                source="" if source is None else Source(source).value,
            )
            self._next_id += 1
            self._index(ann)
            if save:
                self.save()
        return ann

    def add_instances(self, image: str, instances: Instances, save: bool = True) -> list[Annotation]:
        """Accept every instance of an image (empty masks are skipped), in order.

        The prompt kept with each is ``data["prompt"]`` when the instances carry one, else for
        the everything mode ``{"everything": source, "patches": [...]}``.

        Args:
            image: image key; ``instances``: of that image, at its resolution.
            save: write the store once at the end.
        Returns:
            The new annotations.
        """
        prompts = instances.data.get("prompt")
        patches = instances.data.get("patches")
        areas = instances.areas
        added = []
        with self._lock:
            for i, rle in enumerate(instances.rles()):
                if areas[i] == 0:
                    continue
                source = Source(instances.source[i])
                if prompts is not None:
                    prompt = dict(prompts[i])
                elif source.automatic:
                    prompt = {"everything": source.value}
                    if patches is not None:
                        prompt["patches"] = [int(p) for p in patches[i]]
                else:
                    prompt = {}
                added.append(
                    self.add(
                        image,
                        rle,
                        str(instances.class_names[i]),
                        instances.score_or_none(i),
                        instances.predicted_iou_or_none(i),
                        prompt,
                        save=False,
                        source=source,
                    )
                )
            if save:
                self.save()
        return added

    def delete(self, ann_id: int) -> None:
        """Remove an annotation and save. Raises ``KeyError`` if absent."""
        with self._lock:
            self._unindex(ann_id)
            self.save()

    def relabel(self, ann_id: int, label: str) -> Annotation:
        """Change an annotation's label (score cleared: the label is now the user's) and save.

        Raises:
            KeyError: unknown id. ValueError: a label :meth:`add` refuses.
        """
        label = _checked_label(label)
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
            The new annotation (a new id, source ``merge``; score cleared, predicted IoU the
            best of the parts).
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
                source=Source.MERGE,
            )
            for i in ids:
                self._unindex(i)
            self.save()
            return merged

    def for_image(self, image: str) -> list[Annotation]:
        """Annotations of one image, in acceptance order (from the per-image index)."""
        with self._lock:
            return sorted(self._by_image.get(image, {}).values(), key=lambda a: a.id)

    def instances(self, image: str) -> Instances:
        """One image's annotations as :class:`~annotator.instances.Instances` (RLE masks, the
        store's category ids, ``data["annotation_id"]`` and ``data["prompt"]``), in acceptance
        order.

        Raises:
            KeyError: the image is not in the store.
        """
        with self._lock:
            info = self.images[image]
            anns = self.for_image(image)
            return Instances(
                [a.rle for a in anns],
                image_size=(info.height, info.width),
                scores=[a.score for a in anns],
                predicted_iou=[a.predicted_iou for a in anns],
                class_names=[a.label for a in anns],
                class_ids=[a.category_id for a in anns],
                source=[a.source for a in anns],
                data={
                    "annotation_id": np.array([a.id for a in anns], dtype=np.int64),
                    "prompt": [a.prompt for a in anns],
                },
            )

    def counts(self) -> dict[str, int]:
        """Number of annotations per image key (images without any are absent)."""
        with self._lock:
            return {k: len(v) for k, v in self._by_image.items() if v}

    @property
    def last_image(self) -> str | None:
        """The image worked on last (session file), ``None`` before any."""
        with self._lock:
            return self._session.get("last_image")

    def set_last_image(self, image: str) -> None:
        """Remember the image worked on (writes the small session file only, when it changes)."""
        with self._lock:
            if self._session.get("last_image") != image:
                self._session["last_image"] = image
                self._save_session()

    @property
    def done(self) -> set[str]:
        """Image keys the user marked as done (session file)."""
        with self._lock:
            return set(self._session.get("done", []))

    def set_done(self, image: str, done: bool = True) -> None:
        """Mark an image as done (or not); writes the session file."""
        with self._lock:
            marks = set(self._session.get("done", []))
            if (image in marks) == bool(done):
                return
            marks = marks | {image} if done else marks - {image}
            self._session["done"] = sorted(marks)
            self._save_session()
