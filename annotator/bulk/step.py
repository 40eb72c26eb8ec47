"""The per-image step of a bulk run: one image record in, one :class:`ImageOutcome` out.

Every runner (:mod:`.local`, :mod:`.ray_runner`) applies this step, so a run gives the same
outcomes wherever its images are annotated.

- In: an image record as :func:`~annotator.images.load_image_record` makes it, ``{"key": path
  relative to the folder (POSIX), "image": (H, W, 3) uint8 RGB, "error": load error text or "",
  "seconds": decoding wall time}``, and the run's :class:`BulkConfig`.
- Out: an :class:`ImageOutcome`, ``done`` with the image's annotations as journal records
  (:mod:`.records`), ``skipped`` (unreadable image) or ``failed`` (an error while annotating:
  never raised, so one image cannot end a run).

The annotations are the given boxes decoded (``BulkConfig.boxes``), the named classes found
(``BulkConfig.classes``) or the everything pass, each filtered by area and score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..engine import Engine, ImageEmbedding, clip_box
from ..everything.pipeline import EverythingConfig
from ..images import load_image_record
from ..instances import Instances
from .boxes import boxes_for
from .records import to_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkConfig:
    """Options of a bulk run.

    Attributes:
        method: everything pass (``samcp``, ``possam``, ``patches``); ignored with ``boxes``.
        boxes: per image key, a list of ``{"bbox": [x, y, w, h] (COCO XYWH pixels), "label":
            str or None}`` to prompt SAM with instead of segmenting everything.
        score_threshold: annotations scoring below this are dropped.
        min_area: annotations smaller than this many pixels are dropped.
        flip_tta: with ``boxes``, decode each box on the image and on its mirror image and
            average the two (:meth:`~annotator.engine.Engine.predict_boxes`): one more image
            encoder pass per image and one more decode per box.
        classes: find all instances of these classes only (:meth:`~annotator.engine.Engine.find_all`:
            the named classes against the rest of the vocabulary as background); the store
            and the exports list exactly these categories. Needs CLIP; not with ``boxes``.
        class_threshold: with ``classes``, also keep a region whose named class loses to a
            background class when its probability reaches this; ``None`` = winners only.
    """

    method: str = "samcp"
    boxes: dict[str, list[dict]] | None = None
    score_threshold: float = 0.0
    min_area: int = 0
    flip_tta: bool = False
    classes: tuple[str, ...] | None = None
    class_threshold: float | None = None


@dataclass
class ImageOutcome:
    """One journal line: what became of one image.

    Attributes:
        key: image path relative to the folder (POSIX separators).
        status: ``done``, ``skipped`` (unreadable image: retried only once its file changed,
            or with ``retry_skipped``) or ``failed`` (an error while annotating it: retried
            when the command runs again).
        reason: why it was skipped or failed.
        width, height: pixels (0 when skipped).
        annotations: ``{"label", "rle", "area", "score", "predicted_iou", "prompt", "source"}``
            each (see :mod:`.records`); ``rle`` is COCO compressed RLE.
        seconds: wall time spent on the image.
        file: of a skipped image, its file as it was when skipped, ``{"size": bytes,
            "mtime_ns": int}`` (:func:`~.journal.file_stat`; ``None`` otherwise, and in
            journals written before it existed), so that a resumed run retries it once it
            changed.
    """

    key: str
    status: str
    reason: str | None = None
    width: int = 0
    height: int = 0
    annotations: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    file: dict | None = None


class Runner(Protocol):
    """Where a run's images are annotated: this process (:class:`~.local.LocalRunner`) or Ray
    (:class:`~.ray_runner.RayRunner`)."""

    def run(self, folder: Path, keys: Sequence[str], config: BulkConfig) -> Iterator[ImageOutcome]:
        """The outcome of each image ``folder / key`` (see :func:`annotate_record`), as each
        finishes (any order).

        Raises:
            RuntimeError: the run stopped; the outcomes yielded before are valid.
        """
        ...


def _box_instances(engine: Engine, emb: ImageEmbedding, key: str, boxes: list[dict], flip_tta: bool) -> Instances:
    """The given boxes decoded (batched); their labels where given, else the best suggestion."""
    h, w = emb.size
    items, prompts = [], []
    for i, item in enumerate(boxes):
        try:
            x, y, bw, bh = (float(v) for v in item["bbox"])
            prompts.append(clip_box([x, y, x + bw, y + bh], w, h))
        except (ValueError, TypeError, KeyError) as exc:  # e.g. a box outside the image: skip that box
            log.warning("%s: box %d skipped: %s", key, i, exc)
            continue
        items.append((i, item.get("label"), [x, y, x + bw, y + bh]))
    need_labels = any(not label for _, label, _ in items)
    flipped = engine.flipped(emb) if flip_tta and prompts else None
    found = engine.predict_boxes(emb, np.array(prompts).reshape(-1, 4), with_labels=need_labels, flipped=flipped)
    for j, (_, label, _) in enumerate(items):
        if label:  # a given label: the person's, no score
            found.class_names[j], found.class_ids[j], found.scores[j] = label, -1, np.nan
    found.data["prompt"] = [{"box": xyxy, "i": i} for i, _, xyxy in items]
    return found


def annotate_image(engine: Engine, image: np.ndarray, key: str, config: BulkConfig) -> Instances:
    """Annotations of one image: its boxes decoded (``config.boxes``), the named classes found
    (``config.classes``) or the everything pass, without empty masks, masks under ``min_area``
    and labelled ones under ``score_threshold``.

    Returns:
        :class:`~annotator.instances.Instances` with ``data["prompt"]`` (what the journal keeps).
    """
    emb = engine.embed(image)
    if config.boxes is not None:
        found = _box_instances(engine, emb, key, boxes_for(config.boxes, key), config.flip_tta)
    elif config.classes:
        found = engine.find_all(emb, list(config.classes), config.class_threshold, EverythingConfig(config.method))
    else:
        found = engine.everything(emb, EverythingConfig(method=config.method)).annotations()
        found.data["prompt"] = [{"everything": config.method} for _ in range(len(found))]
    scores = np.nan_to_num(found.scores, nan=np.inf)
    keep = (found.areas >= max(1, config.min_area)) & (scores >= config.score_threshold)
    return found[np.nonzero(keep)[0]]


def annotate_loaded(engine: Engine, key: str, image: np.ndarray, config: BulkConfig) -> ImageOutcome:
    """The outcome of an image already decoded: ``done`` with its annotations, or ``failed``
    with the error (never raised: one image must not end the run; it is retried next run).

    Args:
        image: ``(H, W, 3) uint8`` RGB, as :func:`~annotator.images.load_image` returns it.
    """
    try:
        anns = to_records(annotate_image(engine, image, key, config))
        return ImageOutcome(key, "done", None, image.shape[1], image.shape[0], anns)
    except Exception as exc:
        log.exception("failed on %s (will be retried when the command runs again)", key)
        return ImageOutcome(key, "failed", f"{type(exc).__name__}: {exc}")


def annotate_record(engine: Engine, record: dict, config: BulkConfig) -> ImageOutcome:
    """The outcome of an image record from :func:`~annotator.images.load_image_record`:
    ``skipped`` with its load error, else :func:`annotate_loaded`; ``seconds`` counts decoding
    and annotating. The one per-image step of every runner."""
    t0 = time.perf_counter()
    key = str(record["key"])
    if record["error"]:
        outcome = ImageOutcome(key, "skipped", str(record["error"]))
    else:
        outcome = annotate_loaded(engine, key, record["image"], config)
    outcome.seconds = float(record["seconds"]) + time.perf_counter() - t0
    return outcome


def process_image(engine: Engine, folder: Path, key: str, config: BulkConfig) -> ImageOutcome:
    """Load, annotate and time one image; an unreadable one becomes a ``skipped`` outcome."""
    return annotate_record(engine, load_image_record({"key": key}, folder), config)
