"""One typed set of instances that every stage speaks, in the spirit of supervision's ``Detections``.

A click, a box prompt, SAM patches, a SAM-CP or PosSAM pass, a bulk run, the annotation store
and the exporters all hand over :class:`Instances`: N masks of one image with their boxes,
scores, predicted IoU, class names / ids, thing-or-stuff flag and typed provenance
(:class:`Source`), validated on construction.  Masks are either dense ((N, H, W) bool) or COCO
compressed RLE (a list of N ``{"size": [H, W], "counts": str}``), whichever the producer has;
:meth:`Instances.mask` and :meth:`Instances.rles` give either form.

Missing values are explicit: ``scores`` / ``predicted_iou`` NaN (none), ``class_ids`` -1 (no
category).  Extra per-instance values go in ``data`` (name → array of length N), as in
supervision.

:meth:`Instances.to_supervision` / :meth:`Instances.from_supervision` hand results to and take
them from `supervision <https://supervision.roboflow.com>`_.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np

from .masks import decode_rle, encode_rle, masks_to_boxes, rle_area

UNLABELLED = "object"  # class name of masks no classifier named


class Source(str, Enum):
    """How an instance was made."""

    CLICK = "click"  # point prompts (and maybe a box) in the page
    BOX = "box"  # a box prompt alone (page or ``annotate --boxes``)
    PATCHES = "patches"  # a raw SAM patch of the everything mode
    SAMCP = "samcp"  # SAM-CP: patches labelled (Prompt I) and merged (Prompt II)
    POSSAM = "possam"  # PosSAM: a SAM mask classified by the MASE ensemble
    MERGE = "merge"  # the user merged annotations
    MANUAL = "manual"  # drawn by hand (brush, polygon) with no SAM prompt
    IMPORTED = "imported"  # from elsewhere (supervision, another tool)

    @property
    def automatic(self) -> bool:
        """Made by the everything mode, with no person's prompt."""
        return self in (Source.PATCHES, Source.SAMCP, Source.POSSAM)


def _column(values: Any, n: int, dtype: Any, default: Any, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    if dtype is object:
        out = np.empty(n, dtype=object)
        seq = list(values) if not isinstance(values, (str, Source)) else [values] * n
        if len(seq) != n:
            raise ValueError(f"{name}: {len(seq)} values for {n} instances")
        out[:] = seq
        return out
    arr = np.asarray([default if v is None else v for v in values] if isinstance(values, list) else values)
    arr = np.broadcast_to(arr.astype(dtype), (n,)).copy() if arr.ndim == 0 else arr.astype(dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: shape {arr.shape} for {n} instances")
    return arr


class Instances:
    """N segmented (and maybe labelled) instances of one image.

    Attributes:
        masks: (N, H, W) bool at the image's resolution, or N COCO compressed RLEs.
        image_size: (H, W) pixels; taken from the masks when they are dense or non-empty.
        boxes: (N, 4) float32 XYXY pixels (exclusive max: a one-pixel mask at (x, y) has box
            ``[x, y, x + 1, y + 1]``); derived from the masks on first use when not given.
        scores: (N,) float64 confidence in [0, 1] (label probability, or mask quality where
            nothing is labelled); NaN = none (a person chose the label).
        predicted_iou: (N,) float64, SAM's predicted IoU; NaN = not predicted.
        class_names: (N,) str; :data:`UNLABELLED` when no classifier named the instance.
        class_ids: (N,) int64 category ids (the vocabulary's or the store's); -1 = none.
        isthing: (N,) bool, countable thing (True) or amorphous stuff (False, COCO panoptic).
        source: (N,) :class:`Source`, how each instance was made.
        data: extra per-instance values, name → array of length N (``stability``, ``points``,
            ``patches``, ``prompt``, ``annotation_id``, ...).

    Derived values (``boxes`` when not given, ``rles()`` of dense masks) are computed on first
    use and kept: the masks are not to be modified after construction.

    Raises:
        ValueError: on construction, when lengths, shapes or dtypes disagree, a mask is not of
            ``image_size``, or a source is unknown.
    """

    def __init__(
        self,
        masks: np.ndarray | list[dict],
        image_size: tuple[int, int] | None = None,
        boxes: np.ndarray | None = None,
        scores: Any = None,
        predicted_iou: Any = None,
        class_names: Any = None,
        class_ids: Any = None,
        isthing: Any = None,
        source: Any = Source.IMPORTED,
        data: dict[str, Any] | None = None,
    ):
        self.masks, self.image_size = masks, image_size
        self.scores, self.predicted_iou = scores, predicted_iou
        self.class_names, self.class_ids, self.isthing = class_names, class_ids, isthing
        self.source, self.data = source, dict(data or {})
        self._boxes = boxes
        self._rles: list[dict] | None = None
        if isinstance(self.masks, np.ndarray):
            if self.masks.ndim != 3 or self.masks.dtype != bool:
                raise ValueError(f"dense masks must be (N, H, W) bool, got {self.masks.shape} {self.masks.dtype}")
            size = tuple(int(v) for v in self.masks.shape[1:])
            if self.image_size is not None and tuple(self.image_size) != size:
                raise ValueError(f"masks of {size} for an image of {tuple(self.image_size)}")
            self.image_size = size
        else:
            self.masks = list(self.masks)
            sizes = {tuple(int(v) for v in r["size"]) for r in self.masks}
            if self.image_size is None and len(sizes) == 1:
                self.image_size = sizes.pop()
                sizes = set()
            if self.image_size is None:
                raise ValueError("RLE instances need image_size when there are none or their sizes differ")
            if sizes - {tuple(self.image_size)}:
                raise ValueError(f"RLE masks of {sorted(sizes)} for an image of {tuple(self.image_size)}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        n = len(self.masks)
        self.scores = _column(self.scores, n, np.float64, np.nan, "scores")
        self.predicted_iou = _column(self.predicted_iou, n, np.float64, np.nan, "predicted_iou")
        self.class_names = _column(self.class_names, n, object, UNLABELLED, "class_names")
        self.class_ids = _column(self.class_ids, n, np.int64, -1, "class_ids")
        self.isthing = _column(self.isthing, n, bool, True, "isthing")
        self.source = _column(self.source, n, object, Source.IMPORTED, "source")
        try:
            self.source[:] = [Source(s) for s in self.source]
        except ValueError as exc:
            raise ValueError(f"unknown source: {exc}") from exc
        if not all(isinstance(c, str) and c for c in self.class_names):
            raise ValueError("class names must be non-empty strings")
        if self._boxes is not None:
            self._boxes = np.asarray(self._boxes, dtype=np.float32).reshape(-1, 4)
            if len(self._boxes) != n:
                raise ValueError(f"boxes: {len(self._boxes)} for {n} instances")
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"data[{key!r}]: {len(values)} values for {n} instances")

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.masks)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float32 XYXY (see the class doc), derived from the masks on first use."""
        if self._boxes is None:
            self._boxes = masks_to_boxes(self.masks) if len(self) else np.zeros((0, 4), np.float32)
        return self._boxes

    @property
    def dense(self) -> bool:
        """Whether the masks are held as an (N, H, W) bool array."""
        return isinstance(self.masks, np.ndarray)

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool mask of instance ``i``."""
        return self.masks[i] if self.dense else decode_rle(self.masks[i])

    def dense_masks(self) -> np.ndarray:
        """(N, H, W) bool masks (decoded when held as RLE)."""
        if self.dense:
            return self.masks
        if not len(self):
            return np.zeros((0, *self.image_size), bool)
        return np.stack([decode_rle(r) for r in self.masks])

    def rles(self) -> list[dict]:
        """COCO compressed RLE of each mask (encoded once when held dense)."""
        if not self.dense:
            return list(self.masks)
        if self._rles is None:
            self._rles = [encode_rle(m) for m in self.masks]
        return list(self._rles)

    @property
    def areas(self) -> np.ndarray:
        """(N,) int64 mask pixel counts."""
        if self.dense:
            return self.masks.sum(axis=(1, 2), dtype=np.int64)
        return np.array([rle_area(r) for r in self.masks], dtype=np.int64)

    @property
    def labelled(self) -> np.ndarray:
        """(N,) bool: a classifier or a person named the instance."""
        return np.array([c != UNLABELLED for c in self.class_names], dtype=bool)

    def score_or_none(self, i: int) -> float | None:
        """``scores[i]`` as a float, ``None`` when there is none."""
        s = float(self.scores[i])
        return None if np.isnan(s) else s

    def predicted_iou_or_none(self, i: int) -> float | None:
        """``predicted_iou[i]`` as a float, ``None`` when not predicted."""
        s = float(self.predicted_iou[i])
        return None if np.isnan(s) else s

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Instances:
        """The instances at ``index`` (an int, a slice, an index array or a bool mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        masks = self.masks[idx] if self.dense else [self.masks[i] for i in idx]
        out = Instances(
            masks=masks,
            image_size=self.image_size,
            boxes=None if self._boxes is None else self._boxes[idx],
            scores=self.scores[idx],
            predicted_iou=self.predicted_iou[idx],
            class_names=self.class_names[idx],
            class_ids=self.class_ids[idx],
            isthing=self.isthing[idx],
            source=self.source[idx],
            data={k: _take(v, idx) for k, v in self.data.items()},
        )
        if self._rles is not None:
            out._rles = [self._rles[i] for i in idx]
        return out

    def sorted_by_score(self) -> Instances:
        """The same instances, highest score first (stable; no score counts as lowest)."""
        key = np.where(np.isnan(self.scores), -np.inf, self.scores)
        return self[np.argsort(-key, kind="stable")]

    # ----------------------------------------------------------------- making
    @classmethod
    def empty(cls, image_size: tuple[int, int], source: Source = Source.IMPORTED) -> Instances:
        """No instance, for an image of (H, W)."""
        return cls(np.zeros((0, *image_size), bool), image_size=image_size, source=[])

    @classmethod
    def concat(cls, parts: Sequence[Instances]) -> Instances:
        """Instances of one image, one after another (RLE when any part holds RLE).

        Raises:
            ValueError: no parts, parts of different images, or different ``data`` keys.
        """
        if not parts:
            raise ValueError("nothing to concatenate")
        size = parts[0].image_size
        if any(p.image_size != size for p in parts):
            raise ValueError("instances of different image sizes")
        keys = set(parts[0].data)
        if any(set(p.data) != keys for p in parts):
            raise ValueError("instances with different data keys")
        if all(p.dense for p in parts):
            masks: np.ndarray | list[dict] = np.concatenate([p.masks for p in parts])
        else:
            masks = [r for p in parts for r in p.rles()]
        return cls(
            masks=masks,
            image_size=size,
            boxes=None if any(p._boxes is None for p in parts) else np.concatenate([p._boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            predicted_iou=np.concatenate([p.predicted_iou for p in parts]),
            class_names=np.concatenate([p.class_names for p in parts]),
            class_ids=np.concatenate([p.class_ids for p in parts]),
            isthing=np.concatenate([p.isthing for p in parts]),
            source=np.concatenate([p.source for p in parts]),
            data={k: _concat([p.data[k] for p in parts]) for k in keys},
        )

    # ----------------------------------------------------------------- formats
    def to_coco_results(self, image_id: int, category_ids: dict[str, int] | None = None) -> list[dict]:
        """COCO results (``loadRes`` / COCOeval input): ``{"image_id", "category_id",
        "segmentation" (RLE), "score"}`` per instance.

        Args:
            category_ids: category of each class name; ``None`` = class-agnostic (category 1).
                Instances whose name is not in it are left out.
        """
        out = []
        for i, rle in enumerate(self.rles()):
            name = self.class_names[i]
            if category_ids is not None and name not in category_ids:
                continue
            score = self.score_or_none(i)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": 1 if category_ids is None else int(category_ids[name]),
                    "segmentation": rle,
                    "score": 1.0 if score is None else score,
                }
            )
        return out

    def to_supervision(self) -> Any:
        """A ``supervision.Detections``: ``xyxy``, ``mask`` (N, H, W) bool, ``confidence``
        (NaN where there is no score), ``class_id`` and, in ``data``, ``class_name``,
        ``predicted_iou``, ``isthing``, ``source`` (the :class:`Source` values) and our ``data``.
        """
        import supervision as sv

        return sv.Detections(
            xyxy=self.boxes.astype(np.float32),
            mask=self.dense_masks(),
            confidence=self.scores.astype(np.float32),
            class_id=self.class_ids.astype(int),
            data={
                "class_name": self.class_names.astype(str),
                "predicted_iou": self.predicted_iou,
                "isthing": self.isthing,
                "source": np.array([s.value for s in self.source]),
                **self.data,
            },
        )

    @classmethod
    def from_supervision(cls, detections: Any, image_size: tuple[int, int] | None = None) -> Instances:
        """Instances from a ``supervision.Detections`` (ours, or any model's).

        Masks come from ``detections.mask``; detections without masks become box-shaped masks
        over ``image_size``. Class names from ``data["class_name"]`` (else :data:`UNLABELLED`),
        provenance from ``data["source"]`` (else :attr:`Source.IMPORTED`).

        Raises:
            ValueError: no masks and no ``image_size``.
        """
        n = len(detections)
        data = dict(detections.data)
        if detections.mask is not None:
            masks = np.asarray(detections.mask, dtype=bool)
        else:
            if image_size is None:
                raise ValueError("detections without masks need image_size")
            masks = np.zeros((n, *image_size), bool)
            for i, (x0, y0, x1, y1) in enumerate(np.round(detections.xyxy).astype(int)):
                masks[i, max(y0, 0) : y1, max(x0, 0) : x1] = True
        names = data.pop("class_name", None)
        return cls(
            masks=masks,
            image_size=image_size,
            boxes=np.asarray(detections.xyxy, dtype=np.float32),
            scores=detections.confidence,
            predicted_iou=data.pop("predicted_iou", None),
            class_names=None if names is None else [str(c) for c in names],
            class_ids=None if detections.class_id is None else detections.class_id,
            isthing=data.pop("isthing", None),
            source=data.pop("source", Source.IMPORTED),
            data={k: np.asarray(v) for k, v in data.items()},
        )


def _take(values: Any, idx: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[idx]
    return [values[i] for i in idx]


def _concat(parts: list[Any]) -> Any:
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return [v for p in parts for v in p]


__all__ = ["UNLABELLED", "Instances", "Source"]
