"""Evaluation against COCO-format ground truth: prompted masks and everything mode.

For every ground-truth instance the engine is prompted with its box (``prompt-box``) or with
the interior point farthest from the mask boundary (``prompt-point``, the protocol of
Open-Vocabulary SAM), and the IoU of the predicted mask with the ground-truth mask is recorded.
Ground-truth masks are decoded by pycocotools (polygons and RLE, crowd regions included). With a
:class:`ReferencePredictor`, segment-anything's plain ``SamPredictor`` on the same SAM weights is
prompted with the same box or point, so both are scored on the same instances in the same run.

Everything mode is scored class-agnostically with pycocotools' COCOeval (``useCats=0``,
segmentation IoU): AR@10, AR@100 and AP of its instances; with labels also mask AP and, against
COCO panoptic ground truth, PQ / SQ / RQ.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from .engine import Engine
from .everything.panoptic import PanopticResult
from .everything.pipeline import EverythingConfig
from .fileio import atomic_write_json
from .formats.coco_panoptic import from_result, load_panoptic_json, write_coco_panoptic
from .images import ImageLoadError, load_image

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
    reference_iou: float | None = None
    """The plain ``SamPredictor``'s IoU on the same prompt (``None`` without a reference)."""


class ReferencePredictor:
    """segment-anything's plain ``SamPredictor`` on a SAM module: what SAM's own API gives.

    SAM's advice, as its README and notebooks apply it: one mask for a box
    (``multimask_output=False``); three for a lone point, keeping the best predicted IoU.

    Args:
        sam_model: a loaded SAM (e.g. the engine's own, ``engine.decoder.model``).
    """

    def __init__(self, sam_model) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam_model)

    def set_image(self, image: np.ndarray) -> None:
        """Run the image encoder (eager torch) on an (H, W, 3) uint8 RGB image."""
        self.predictor.set_image(image)

    def predict(self, point: tuple[float, float] | None = None, box: np.ndarray | None = None) -> np.ndarray:
        """(H, W) bool mask for one positive point (X, Y) or one XYXY box, in original pixels."""
        if box is not None:
            masks, _, _ = self.predictor.predict(box=np.asarray(box, dtype=np.float64), multimask_output=False)
            return masks[0]
        masks, scores, _ = self.predictor.predict(
            point_coords=np.array([point], dtype=np.float64), point_labels=np.array([1]), multimask_output=True
        )
        return masks[int(np.argmax(scores))]


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
    reference: ReferencePredictor | None = None,
    flip_tta: bool = False,
) -> Iterator[tuple[str, InstanceResult]]:
    """Prompt the engine with every ground-truth instance; yields ``(task, result)``.

    Each image is embedded once for all tasks.  Unreadable images are logged and skipped;
    instances with an empty mask are skipped. With ``reference``, each prompt also goes to it
    and ``reference_iou`` is filled in. ``flip_tta``: box prompts go through
    :meth:`~annotator.engine.Engine.predict_boxes` with flip test-time augmentation, as
    ``annotate --boxes --flip-tta`` runs them.

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
        emb = engine.embed(image)
        flipped = engine.flipped(emb) if flip_tta and "prompt-box" in tasks else None
        if reference is not None:
            reference.set_image(image)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None)):
            gt = coco.annToMask(ann).astype(bool)
            if not gt.any():
                continue
            for task in tasks:
                point, box = None, None
                if task == "prompt-box":
                    x, y, w, h = ann["bbox"]
                    box = np.array([x, y, x + w, y + h])
                    if flipped is None:
                        result = engine.predict(emb, box=box)
                        mask, label = result.mask, result.labels[0].name if result.labels else None
                    else:
                        found = engine.predict_boxes(emb, box[None], flipped=flipped)
                        mask, label = found.masks[0], found.class_names[0]
                else:
                    point = farthest_interior_point(gt)
                    result = engine.predict(emb, point_coords=np.array([point]), point_labels=np.array([1]))
                    mask, label = result.mask, result.labels[0].name if result.labels else None
                cat = names[ann["category_id"]]
                correct = None
                if engine.has_labels and vocab is not None and cat in vocab.names:
                    correct = label == cat
                ref_iou = None if reference is None else mask_iou(reference.predict(point, box), gt)
                yield task, InstanceResult(img_id, ann["id"], cat, mask_iou(mask, gt), correct, ref_iou)


def summarise(results: list[InstanceResult]) -> dict:
    """``{"instances", "mIoU" (percent), "label_accuracy" (percent or None)}``; with reference
    IoUs also ``reference_mIoU``, ``gain`` (mIoU − reference, points) and the instances where
    ours is ``better`` / ``worse`` by more than 0.01 IoU."""
    ious = np.array([r.iou for r in results])
    judged = [r.label_correct for r in results if r.label_correct is not None]
    out = {
        "instances": len(results),
        "mIoU": 100.0 * float(ious.mean()) if len(ious) else float("nan"),
        "label_accuracy": 100.0 * float(np.mean(judged)) if judged else None,
    }
    if results and all(r.reference_iou is not None for r in results):
        ref = np.array([r.reference_iou for r in results])
        out["reference_mIoU"] = 100.0 * float(ref.mean())
        out["gain"] = out["mIoU"] - out["reference_mIoU"]
        out["better"] = int((ious > ref + 0.01).sum())
        out["worse"] = int((ious < ref - 0.01).sum())
    return out


def evaluate_prompts(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    tasks: tuple[str, ...] = PROMPT_TASKS,
    limit: int | None = None,
    progress: bool = True,
    reference: ReferencePredictor | None = None,
    flip_tta: bool = False,
) -> dict[str, dict]:
    """Run :func:`iter_prompted` and summarise per task (see :func:`summarise`), with seconds
    per image (the reference's time included when there is one)."""
    start = time.perf_counter()
    per_task: dict[str, list[InstanceResult]] = {t: [] for t in tasks}
    for task, res in iter_prompted(engine, images_dir, gt_json, tasks, limit, progress, reference, flip_tta):
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
        ``{"AP", "AR@10", "AR@100", "AR@1000"}`` in percent (0 when there are no detections);
        AP at 100 detections per image, as COCO's.
    """
    if not detections:
        return {"AP": 0.0, "AR@10": 0.0, "AR@100": 0.0, "AR@1000": 0.0}
    dets = [{**d, "category_id": d.get("category_id", 1)} for d in detections]
    ev = COCOeval(gt, gt.loadRes(dets), "segm")
    ev.params.imgIds = list(img_ids)
    ev.params.useCats = 0
    ev.params.maxDets = [10, 100, 1000]
    ev.evaluate()
    ev.accumulate()
    recall = ev.eval["recall"]  # (IoU thresholds, categories, area ranges, maxDets); -1 = no GT

    def mean(x: np.ndarray) -> float:
        x = x[x > -1]
        return 100.0 * float(x.mean()) if x.size else 0.0

    precision = ev.eval["precision"][:, :, :, 0, 1]  # all areas, 100 detections
    ar = {f"AR@{m}": mean(recall[:, :, 0, i]) for i, m in enumerate(ev.params.maxDets)}
    return {"AP": mean(precision), **ar}


def panoptic_quality(
    gt_json: str | Path,
    pred_json: str | Path,
    gt_dir: str | Path | None = None,
    pred_dir: str | Path | None = None,
) -> dict:
    """PQ / SQ / RQ (Kirillov et al., 2019) of COCO panoptic predictions, by ``hotcoco``'s
    panopticapi-compatible evaluator (IoU > 0.5 matching, void and crowd regions handled as
    panopticapi does).

    Args:
        gt_json, pred_json: COCO panoptic JSON files; ``*_dir``: their PNG folders (default: the
            JSON path without ``.json``).
    Returns:
        ``{"All" | "Things" | "Stuff": {"PQ", "SQ", "RQ" (percent), "n" (categories)}}``.
    """
    from hotcoco.panoptic import PanopticEval

    ev = PanopticEval(
        str(gt_json),
        str(pred_json),
        gt_folder=str(gt_dir) if gt_dir is not None else None,
        pred_folder=str(pred_dir) if pred_dir is not None else None,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        ev.run()
    results = ev.results()
    return {
        group: {
            "PQ": 100.0 * results[group]["pq"],
            "SQ": 100.0 * results[group]["sq"],
            "RQ": 100.0 * results[group]["rq"],
            "n": int(results[group]["n"]),
        }
        for group in ("All", "Things", "Stuff")
    }


def _category_ids(coco: COCO) -> dict[str, int]:
    return {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}


@dataclass
class _EverythingRun:
    """What the everything mode produced over the ground-truth images."""

    img_ids: list[int] = field(default_factory=list)
    agnostic: list[dict] = field(default_factory=list)  # COCO results, category 1
    labelled: list[dict] = field(default_factory=list)  # COCO results with the ground truth's categories
    panoptic: list = field(default_factory=list)  # PanopticImage per image, for PQ
    seconds: list[float] = field(default_factory=list)
    patches: int = 0
    is_labelled: bool = False
    note: str | None = None


def _run_everything(
    engine: Engine,
    coco: COCO,
    images_dir: str | Path,
    limit: int | None,
    config: EverythingConfig | None,
    progress: bool,
    with_panoptic: bool,
) -> _EverythingRun:
    """Run the everything mode on each ground-truth image and collect its instances in COCO
    terms (results for COCOeval, panoptic images restricted to the ground truth's categories)."""
    gt_cats = _category_ids(coco)
    run = _EverythingRun()
    for img_id, image in _gt_images(coco, images_dir, limit, progress):
        start = time.perf_counter()
        result = engine.everything(engine.embed(image), config)
        run.seconds.append(time.perf_counter() - start)
        run.img_ids.append(img_id)
        run.patches += len(result.patches)
        run.is_labelled, run.note = result.labelled, result.note
        run.agnostic += result.instances.to_coco_results(img_id)
        if result.labelled:
            run.labelled += result.instances.to_coco_results(img_id, gt_cats)
        if with_panoptic and result.labelled:
            segments = [seg for seg in result.panoptic.segments if seg.label in gt_cats]
            seg_map = np.where(
                np.isin(result.panoptic.segment_map, [seg.id for seg in segments]), result.panoptic.segment_map, 0
            )
            keep = PanopticResult(seg_map.astype(np.int32), segments)
            run.panoptic.append(from_result(img_id, coco.loadImgs(img_id)[0]["file_name"], keep, gt_cats))
    return run


def _mask_ap(coco: COCO, detections: list[dict], img_ids: list[int]) -> float:
    """COCO mask AP (``useCats=1``), percent."""
    ev = COCOeval(coco, coco.loadRes(detections), "segm")
    ev.params.imgIds = img_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return 100.0 * ev.stats[0]


def evaluate_everything(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    limit: int | None = None,
    config: EverythingConfig | None = None,
    progress: bool = True,
    panoptic_gt: str | Path | None = None,
    panoptic_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> dict:
    """Score the everything mode against COCO ground truth.

    Always: class-agnostic AR@10 / AR@100 / AP of the instances (COCOeval, ``useCats=0``) and
    seconds per image.  With labels whose names are ``gt_json``'s categories: mask AP
    (``useCats=1``).  With ``panoptic_gt`` and labels: PQ / SQ / RQ of the assembled panoptic
    output (see :func:`panoptic_quality`); the predictions are written under ``work_dir``
    (default: a temporary folder).  Unreadable images are logged and skipped.

    Args:
        config: method and thresholds; ``None`` = the engine's default (SAM-CP).
        panoptic_gt: COCO panoptic JSON of the same images (matched by ``file_name`` stem);
            ``panoptic_dir``: its PNG folder.
    Returns:
        ``{"images", "patches", "instances", "seconds_per_image", "AP", "AR@10", "AR@100", "labelled",
        "note", "mask_AP" (or None), "PQ" (``{"All", "Things", "Stuff"}`` or None)}``.
    """
    coco = COCO(str(gt_json))
    run = _run_everything(engine, coco, images_dir, limit, config, progress, panoptic_gt is not None)
    out = class_agnostic_scores(coco, run.agnostic, run.img_ids)
    out.update(
        images=len(run.img_ids),
        patches=run.patches,
        instances=len(run.agnostic),
        seconds_per_image=float(np.mean(run.seconds)) if run.seconds else 0.0,
        labelled=run.is_labelled,
        note=run.note,
        mask_AP=_mask_ap(coco, run.labelled, run.img_ids) if run.labelled else None,
        PQ=_panoptic_against(run.panoptic, panoptic_gt, panoptic_dir, work_dir) if run.panoptic else None,
    )
    return out


def _panoptic_against(pred: list, gt_json: str | Path, gt_dir: str | Path | None, work_dir: str | Path | None) -> dict:
    """Write predictions as COCO panoptic with the ground truth's image ids and categories, then
    :func:`panoptic_quality`."""
    gt = load_panoptic_json(gt_json)
    by_stem = {Path(im["file_name"]).stem: im for im in gt["images"]}
    for p in pred:  # the panoptic ground truth numbers images its own way: match by file name
        p.image_id = by_stem[Path(p.file_name).stem]["id"]
    wanted = {p.image_id for p in pred}
    gt_sub = {**gt, "annotations": [a for a in gt["annotations"] if a["image_id"] in wanted]}
    gt_sub["images"] = [im for im in gt["images"] if im["id"] in wanted]
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        gt_path = Path(tmp) / "gt.json"
        atomic_write_json(gt_path, gt_sub)
        pred_path = write_coco_panoptic(pred, gt["categories"], Path(tmp) / "pred.json")
        gt_dir = Path(gt_dir) if gt_dir is not None else Path(gt_json).with_suffix("")
        return panoptic_quality(gt_path, pred_path, gt_dir, pred_path.with_suffix(""))


def per_class_ap(coco: COCO, detections: list[dict], img_ids: list[int], cat_ids: list[int]) -> dict[int, float | None]:
    """COCO mask AP (IoU 0.50:0.95, area all, 100 detections) of each category, percent.

    Args:
        detections: COCO results (``loadRes`` input) with those categories' ids.
        img_ids: the images evaluated; cat_ids: the categories evaluated.
    Returns:
        category id → AP, ``None`` for a category with no ground-truth instance in ``img_ids``.
    """
    if not detections:
        has_gt = {c: bool(coco.getAnnIds(imgIds=img_ids, catIds=[c], iscrowd=False)) for c in cat_ids}
        return {c: 0.0 if has_gt[c] else None for c in cat_ids}
    ev = COCOeval(coco, coco.loadRes(detections), "segm")
    ev.params.imgIds, ev.params.catIds = img_ids, list(cat_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (T IoUs, R recalls, K categories), area all, 100 dets
    out = {}
    for k, cid in enumerate(ev.params.catIds):
        p = precision[:, :, k]
        out[cid] = float(100.0 * p[p > -1].mean()) if (p > -1).any() else None
    return out


def evaluate_find_all(
    engine: Engine,
    images_dir: str | Path,
    gt_json: str | Path,
    classes: list[str],
    limit: int | None = None,
    threshold: float | None = None,
    config: EverythingConfig | None = None,
    progress: bool = True,
) -> dict:
    """Score find-all (:meth:`~annotator.engine.Engine.find_all`) against COCO ground truth
    restricted to the named classes: per-class mask AP and their mean (COCOeval, ``useCats=1``).

    Args:
        classes: names of ground-truth categories (as the engine's vocabulary names them).
        threshold, config: as for :meth:`~annotator.engine.Engine.find_all`.
    Returns:
        ``{"images", "instances", "seconds_per_image", "AP" (mean over the classes with ground
        truth), "AP <class>" per class (None: no ground truth in these images), "note"}``.
    Raises:
        ValueError: a class that is not a ground-truth category.
        annotator.text_prompts.LabelsUnavailable: no CLIP.
    """
    coco = COCO(str(gt_json))
    gt_cats = _category_ids(coco)
    named = [c.name for c in engine.text_query(classes, threshold).named]
    missing = [n for n in named if n not in gt_cats]
    if missing:
        raise ValueError(f"not categories of {gt_json}: {', '.join(missing)} (per-class AP needs ground truth)")
    detections, img_ids, seconds = [], [], []
    for img_id, image in _gt_images(coco, images_dir, limit, progress):
        start = time.perf_counter()
        found = engine.find_all(engine.embed(image), named, threshold, config)
        seconds.append(time.perf_counter() - start)
        img_ids.append(img_id)
        detections += found.to_coco_results(img_id, gt_cats)
    ap = per_class_ap(coco, detections, img_ids, [gt_cats[n] for n in named])
    scored = [v for v in ap.values() if v is not None]
    return {
        "images": len(img_ids),
        "instances": len(detections),
        "seconds_per_image": float(np.mean(seconds)) if seconds else 0.0,
        "AP": float(np.mean(scored)) if scored else None,
        **{f"AP {n}": ap[gt_cats[n]] for n in named},
        "note": engine.labels_unavailable,
    }
