"""Evaluation against COCO-format ground truth: prompted masks and everything mode.

For every ground-truth instance the engine is prompted with its box (``prompt-box``) or with
the interior point farthest from the mask boundary (``prompt-point``, the protocol of
Open-Vocabulary SAM), and the IoU of the predicted mask with the ground-truth mask is recorded.
Ground-truth masks are decoded by pycocotools (polygons and RLE, crowd regions included).

Everything mode is scored class-agnostically with pycocotools' COCOeval (``useCats=0``,
segmentation IoU): AR@10, AR@100 and AP of the automatic patches, scored by predicted IoU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from .engine import Engine
from .everything.patches import PatchConfig
from .images import ImageLoadError, load_image
from .masks import encode_rle

log = logging.getLogger(__name__)

PROMPT_TASKS = ("prompt-box", "prompt-point")
TASKS = (*PROMPT_TASKS, "everything")


@dataclass(frozen=True)
class InstanceResult:
    """One prompted instance: ``iou`` of the predicted mask with the ground truth, in [0, 1];
    ``label_correct`` when labels were predicted and the category name is in the vocabulary."""

    image_id: int
    ann_id: int
    category: str
    iou: float
    label_correct: bool | None


def farthest_interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(X, Y) pixel of a (H, W) bool mask farthest from its boundary (distance transform).

    Raises:
        ValueError: empty mask.
    """
    if not mask.any():
        raise ValueError("empty mask has no interior point")
    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    return float(x), float(y)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _gt_images(
    coco: COCO, images_dir: str | Path, limit: int | None, progress: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """(image id, RGB image) of the first ``limit`` ground-truth images by id; unreadable ones are
    logged and skipped."""
    for img_id in tqdm(sorted(coco.getImgIds())[:limit], desc="images", disable=not progress):
        info = coco.loadImgs(img_id)[0]
        try:
            yield img_id, load_image(Path(images_dir) / info["file_name"])
        except ImageLoadError as exc:
            log.warning("skipped: %s", exc)


def iter_prompted(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    tasks: tuple[str, ...] = PROMPT_TASKS,
    limit: int | None = None,
    progress: bool = True,
) -> Iterator[tuple[str, InstanceResult]]:
    """Prompt the engine with every ground-truth instance; yields ``(task, result)``.

    Each image is embedded once for all tasks.  Unreadable images are logged and skipped;
    instances with an empty mask are skipped.

    Raises:
        ValueError: an unknown task.
    """
    bad = set(tasks) - set(PROMPT_TASKS)
    if bad:
        raise ValueError(f"unknown task(s) {sorted(bad)}; choose from {PROMPT_TASKS}")
    coco = COCO(str(gt_json))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    vocab = engine.vocabulary
    for img_id, image in _gt_images(coco, images_dir, limit, progress):
        engine.set_image(image)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None)):
            gt = coco.annToMask(ann).astype(bool)
            if not gt.any():
                continue
            for task in tasks:
                if task == "prompt-box":
                    x, y, w, h = ann["bbox"]
                    result = engine.predict(box=np.array([x, y, x + w, y + h]))
                else:
                    px, py = farthest_interior_point(gt)
                    result = engine.predict(point_coords=np.array([[px, py]]), point_labels=np.array([1]))
                cat = names[ann["category_id"]]
                correct = None
                if engine.has_labels and vocab is not None and cat in vocab.names:
                    correct = bool(result.labels) and result.labels[0].name == cat
                yield task, InstanceResult(img_id, ann["id"], cat, mask_iou(result.mask, gt), correct)


def summarise(results: list[InstanceResult]) -> dict:
    """``{"instances", "mIoU" (percent), "label_accuracy" (percent or None)}``."""
    ious = [r.iou for r in results]
    judged = [r.label_correct for r in results if r.label_correct is not None]
    return {
        "instances": len(results),
        "mIoU": 100.0 * float(np.mean(ious)) if ious else float("nan"),
        "label_accuracy": 100.0 * float(np.mean(judged)) if judged else None,
    }


def evaluate_prompts(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    tasks: tuple[str, ...] = PROMPT_TASKS,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Run :func:`iter_prompted` and summarise per task, with seconds per image."""
    start = time.perf_counter()
    per_task: dict[str, list[InstanceResult]] = {t: [] for t in tasks}
    for task, res in iter_prompted(engine, images_dir, gt_json, tasks, limit, progress):
        per_task[task].append(res)
    n_images = len({r.image_id for rs in per_task.values() for r in rs})
    elapsed = time.perf_counter() - start
    out = {t: summarise(rs) for t, rs in per_task.items()}
    for t in out:
        out[t]["images"] = n_images
        out[t]["seconds_per_image"] = elapsed / max(n_images, 1)
    return out


def class_agnostic_scores(gt: COCO, detections: list[dict], img_ids: list[int]) -> dict:
    """COCOeval (segm, ``useCats=0``) of detections ``{image_id, segmentation (RLE), score}``.

    Returns:
        ``{"AP", "AR@10", "AR@100"}`` in percent (0 when there are no detections).
    """
    if not detections:
        return {"AP": 0.0, "AR@10": 0.0, "AR@100": 0.0}
    dets = [{**d, "category_id": d.get("category_id", 1)} for d in detections]
    ev = COCOeval(gt, gt.loadRes(dets), "segm")
    ev.params.imgIds = list(img_ids)
    ev.params.useCats = 0
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {"AP": 100.0 * ev.stats[0], "AR@10": 100.0 * ev.stats[7], "AR@100": 100.0 * ev.stats[8]}


def evaluate_everything(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    limit: int | None = None,
    config: PatchConfig | None = None,
    progress: bool = True,
) -> dict:
    """Class-agnostic AR@10 / AR@100 / AP of the engine's automatic patches, and seconds per image.

    Unreadable images are logged and skipped.
    """
    coco = COCO(str(gt_json))
    img_ids, detections, seconds = [], [], []
    for img_id, image in _gt_images(coco, images_dir, limit, progress):
        start = time.perf_counter()
        engine.set_image(image)
        patches = engine.segment_everything(config)
        seconds.append(time.perf_counter() - start)
        img_ids.append(img_id)
        for mask, score in zip(patches.masks, patches.predicted_iou, strict=True):
            detections.append({"image_id": img_id, "segmentation": encode_rle(mask), "score": float(score)})
    out = class_agnostic_scores(coco, detections, img_ids)
    out.update(
        images=len(img_ids), patches=len(detections), seconds_per_image=float(np.mean(seconds)) if seconds else 0.0
    )
    return out
