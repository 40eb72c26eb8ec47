"""Bulk auto-annotation of a folder, resumable, in this process or on Ray.

Each image is segmented (everything mode) or prompted with given boxes, and its result is
appended to a journal (JSON Lines, one line per finished image, flushed and fsynced) by this
process as soon as the image is finished, whether it ran here or on a Ray cluster
(:mod:`annotator.cluster`).  Running the same command again reads the journal and skips every image
already in it, so a killed or crashed run continues where it stopped: nothing lost, nothing done
twice.  A torn last line (a crash mid-write) is ignored and that image is redone.  Unreadable
images are journalled as skipped, with the reason, and never stop the run.  At the end the
journal is imported into the folder's annotation store (the one the UI edits) and exported as
COCO instances JSON, both written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from .engine import Engine, EngineConfig, ImageEmbedding, clip_box
from .everything.pipeline import EverythingConfig
from .fileio import append_jsonl, read_jsonl
from .images import list_images, load_image_record
from .instances import Instances, Source
from .outputs import FolderOutputs
from .store import AnnotationStore, source_of_prompt
from .text_prompts import resolve_classes
from .vocabulary import load_vocabulary

if TYPE_CHECKING:
    from .cluster import RayConfig

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
        status: ``done``, ``skipped`` (unreadable image: not retried) or ``failed`` (an error
            while annotating it: retried when the command runs again).
        reason: why it was skipped or failed.
        width, height: pixels (0 when skipped).
        annotations: ``{"label", "rle", "score", "predicted_iou", "prompt"}`` each; ``rle`` is
            COCO compressed RLE.
        seconds: wall time spent on the image.
    """

    key: str
    status: str
    reason: str | None = None
    width: int = 0
    height: int = 0
    annotations: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class Journal:
    """Append-only JSON Lines file of :class:`ImageOutcome`, durable line by line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict[str, ImageOutcome]:
        """Outcomes by key (the last line of a key wins); unreadable lines are skipped with a
        warning, so their images are redone."""
        out: dict[str, ImageOutcome] = {}
        for n, record in read_jsonl(self.path):
            try:
                item = ImageOutcome(**record)
            except TypeError as exc:
                log.warning("%s line %d unreadable (%s): that image will be redone", self.path, n, exc)
                continue
            out[item.key] = item
        return out

    def append(self, outcome: ImageOutcome) -> None:
        """Write one line and fsync it (see :func:`append_jsonl`)."""
        append_jsonl(self.path, asdict(outcome))


@dataclass
class BulkSummary:
    """What a run did.

    Attributes:
        done: images annotated (this run and earlier runs).
        skipped: key → reason for images that could not be read (or failed; those are retried
            by the next run).
        resumed: images found in the journal at start.
        instances_per_class: label → count over all done images.
        seconds: wall time of this run; images_per_minute: of the images processed this run.
        coco_path: the COCO export; store_path: the annotation store.
    """

    done: int
    skipped: dict[str, str]
    resumed: int
    instances_per_class: dict[str, int]
    seconds: float
    images_per_minute: float
    coco_path: Path
    store_path: Path


def load_boxes(path: str | Path) -> dict[str, list[dict]]:
    """Boxes to prompt with, from a COCO instances JSON (``bbox`` + category name per
    annotation, keyed by ``file_name``) or a folder of ``<image stem>.json`` files each holding
    ``[{"bbox": [x, y, w, h], "label": "cat"}, ...]``.

    Raises:
        ValueError: unreadable or malformed file.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return {p.stem: list(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(path.glob("*.json"))}
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in data.get("categories", [])}
        files = {im["id"]: im["file_name"] for im in data["images"]}
        out: dict[str, list[dict]] = {}
        for ann in data["annotations"]:
            out.setdefault(files[ann["image_id"]], []).append(
                {"bbox": ann["bbox"], "label": names.get(ann.get("category_id"))}
            )
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a COCO JSON or a folder of per-image box lists ({exc})") from exc


def boxes_for(boxes: dict[str, list[dict]], key: str) -> list[dict]:
    """The boxes of image ``key`` (a path relative to the folder), looked up by that path, then
    its file name, then its stem (the keys :func:`load_boxes` gives); ``[]`` when it has none."""
    return boxes.get(key) or boxes.get(Path(key).name) or boxes.get(Path(key).stem) or []


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


def to_records(instances: Instances) -> list[dict]:
    """Instances as journal records ``{"label", "rle", "area", "score", "predicted_iou",
    "prompt", "source"}`` (JSON-ready; ``score`` / ``predicted_iou`` ``None`` when absent)."""
    prompts = instances.data.get("prompt")
    if prompts is None:
        prompts = [{} for _ in range(len(instances))]
    areas = instances.areas
    return [
        {
            "label": str(instances.class_names[i]),
            "rle": rle,
            "area": int(areas[i]),
            "score": instances.score_or_none(i),
            "predicted_iou": instances.predicted_iou_or_none(i),
            "prompt": prompts[i],
            "source": Source(instances.source[i]).value,
        }
        for i, rle in enumerate(instances.rles())
    ]


def from_records(records: list[dict], width: int, height: int) -> Instances:
    """Journal records (see :func:`to_records`; older journals have no ``source``) → Instances."""
    return Instances(
        [r["rle"] for r in records],
        image_size=(height, width),
        scores=[r.get("score") for r in records],
        predicted_iou=[r.get("predicted_iou") for r in records],
        class_names=[r["label"] for r in records],
        source=[r.get("source") or source_of_prompt(r.get("prompt") or {}) for r in records],
        data={"prompt": [r.get("prompt") or {} for r in records]},
    )


def _pending(keys: list[str], journal: dict[str, ImageOutcome]) -> Iterator[str]:
    """Keys not journalled yet, or journalled as ``failed`` (retried on every run)."""
    return (k for k in keys if k not in journal or journal[k].status == "failed")


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
    and annotating. The one per-image step of single-process and Ray runs."""
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


def run_pending(
    outcomes: Iterator[ImageOutcome], journal: Journal, total: int, progress: bool
) -> dict[str, ImageOutcome]:
    """Journal each outcome as it arrives (durable line by line), report the skipped and failed
    ones, and show a progress bar of ``total`` images with the rate."""
    finished: dict[str, ImageOutcome] = {}
    with tqdm(total=total, desc="annotating", unit="img", disable=not progress) as bar:
        for outcome in outcomes:
            journal.append(outcome)
            finished[outcome.key] = outcome
            if outcome.status != "done":
                log.warning("%s %s: %s", outcome.status, outcome.key, outcome.reason)
            bar.update(1)
            bar.set_postfix(instances=len(outcome.annotations))
    return finished


def import_journal(store: AnnotationStore, keys: list[str], seen: dict[str, ImageOutcome]) -> None:
    """Add every done image's annotations to the store, once (the images imported are listed in
    the store's ``meta["bulk_imported"]``); done images without annotations are kept as
    negatives. Saves the store once."""
    imported = set(store.meta.get("bulk_imported", []))
    for key in keys:
        outcome = seen.get(key)
        if outcome is None or outcome.status != "done":
            continue
        store.add_image(key, outcome.width, outcome.height, save=False)  # negatives too
        if key in imported:
            continue
        store.add_instances(key, from_records(outcome.annotations, outcome.width, outcome.height), save=False)
        imported.add(key)
    store.meta["bulk_imported"] = sorted(imported)
    store.save()


def _check_same_classes(journal: Journal, seen: dict[str, ImageOutcome], classes: list[str]) -> None:
    """Refuse to resume a journal of everything-pass results made with other ``--classes`` (or
    none): its images would be skipped and the folder would mix two questions. Read from the
    classes each journalled everything-pass annotation records in its prompt.

    Raises:
        ValueError: the journal holds results of other classes; the message says what to do.
    """
    made = {
        tuple(a["prompt"].get("classes") or ())
        for o in seen.values()
        if o.status == "done"
        for a in o.annotations
        if "everything" in (a.get("prompt") or {})
    }
    other = made - {tuple(classes)}
    if other:
        before = ", ".join(sorted(other)[0]) or "no --classes"
        raise ValueError(
            f"{journal.path} holds results of another question ({before}); to resume it, run with the "
            f"same classes; for {', '.join(classes) or 'no --classes'}, use another --out"
        )


def annotate_folder(
    engine: Engine | None,
    folder: str | Path,
    out_dir: str | Path,
    config: BulkConfig = BulkConfig(),
    progress: bool = True,
    max_images: int | None = None,
    *,
    ray: RayConfig | None = None,
    engine_config: EngineConfig | None = None,
) -> BulkSummary:
    """Annotate every image under ``folder`` (recursively), resumably (see module doc).

    Steps: list the images, read the journal, annotate what it lacks (journalling each as it
    finishes, in this process), import the journal into the folder's store, export COCO.

    Args:
        engine: the loaded models, kept for the whole run; ``None`` with ``ray`` (the models
            are then loaded by the Ray actors, not here).
        out_dir: the journal, the store and the COCO export go here (names:
            :class:`~annotator.outputs.FolderOutputs`).
        max_images: stop after processing this many new images (for tests and benchmarks).
        ray: run the images on Ray (see :mod:`annotator.cluster`): decoding in tasks, the
            models in actors built from ``engine_config``; outcomes arrive here in completion
            order and are journalled as in a single-process run.
        engine_config: how the actors build their models (required with ``ray``; its
            vocabulary also names the store's categories).
    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: it holds no image files, or ``ray`` without ``engine_config``, or neither
            ``engine`` nor ``ray``, or ``classes`` with ``boxes``, or a journal made with other
            ``classes``.
        annotator.text_prompts.LabelsUnavailable: ``classes`` without CLIP.
        RuntimeError: the Ray run stopped (e.g. the actors could not load the models); what
            was journalled is kept.
    """
    if ray is not None and engine_config is None:
        raise ValueError("a Ray run needs the engine_config its actors build their models from")
    if ray is None and engine is None:
        raise ValueError("give the engine, or a Ray config and the engine_config")
    if config.classes and config.boxes is not None:
        raise ValueError("classes and boxes do not combine: boxes already say what to segment")
    if config.classes and engine is not None:
        engine.text_query(list(config.classes), config.class_threshold)  # no CLIP, bad names: say so before any image
    start = time.perf_counter()
    vocab = engine.vocabulary if engine is not None else load_vocabulary(engine_config.vocab)  # cheap checks first
    outputs = FolderOutputs(folder, out_dir)
    keys = [p.relative_to(outputs.folder).as_posix() for p in list_images(outputs.folder, recursive=True)]
    if not keys:
        raise ValueError(f"{folder} contains no image files")
    journal = Journal(outputs.journal_path)
    seen = journal.read()
    named = resolve_classes(list(config.classes), vocab) if config.classes else []
    _check_same_classes(journal, seen, [c.name for c in named])
    resumed = sum(k in seen and seen[k].status != "failed" for k in keys)
    todo = list(_pending(keys, seen))[:max_images]
    if ray is None:
        outcomes = (process_image(engine, outputs.folder, key, config) for key in todo)
    else:
        from .cluster import ray_outcomes

        outcomes = ray_outcomes(engine_config, outputs.folder, todo, config, ray)
    finished = run_pending(outcomes, journal, len(todo), progress)
    seen.update(finished)

    category_ids = dict(zip(vocab.names, vocab.ids, strict=True)) if vocab else {}
    category_ids.update((c.name, c.category_id) for c in named)
    store = outputs.open_store(category_ids=category_ids)
    if config.classes:
        store.meta["classes"] = [c.name for c in named]  # listed by the exports even where none was found
    import_journal(store, keys, seen)
    coco_path = outputs.export(store, "coco")

    done = [seen[k] for k in keys if k in seen and seen[k].status == "done"]
    elapsed = time.perf_counter() - start
    return BulkSummary(
        done=len(done),
        skipped={k: seen[k].reason or "" for k in keys if k in seen and seen[k].status in ("skipped", "failed")},
        resumed=resumed,
        instances_per_class=dict(Counter(a["label"] for o in done for a in o.annotations).most_common()),
        seconds=elapsed,
        images_per_minute=60.0 * len(finished) / elapsed if finished else 0.0,
        coco_path=coco_path,
        store_path=store.path,
    )
