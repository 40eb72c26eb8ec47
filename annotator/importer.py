"""Annotations from elsewhere brought into a folder's store, as predictions to review.

``ovsam import IMAGES --from PATH --format F`` and the page's import call
:func:`import_annotations`: the file (or dataset folder) is read by its format's reader
(:data:`annotator.formats.FORMATS`), its images matched to the image folder's, its classes
checked against the store's, and then everything is written in one transaction, or nothing:

1. **Read.** A reader lists every problem of the file (file, record, reason) and returns
   nothing of it (:class:`~annotator.formats.errors.FormatReadError`).
2. **Match images.** An image of the file is the folder's image of the same relative path,
   else the only one of the same file name (COCO's ``file_name`` without the sub-folder,
   LabelMe's ``../images/a.jpg``). Its size must be the folder image's (upright, EXIF
   applied): annotations of another resolution would be misplaced. An image the folder lacks
   is a problem, unless ``missing="skip"`` (then it is named in the summary).
3. **Check classes.** Category names keep their ids where the format has ids (COCO, COCO
   panoptic, mask PNGs): a name the store has under another id, an id another name holds, or a
   name outside the project's class list is a problem. Where it has none (YOLO's class indices,
   the label lists of CVAT, LabelMe, VOC, Label Studio: ``Format.category_ids`` false) classes are
   matched by name: a name the store has keeps the store's id, a new one takes the file's number
   if it is free, else the next free id (:func:`store_category_ids`).
4. **Write.** Every annotation lands with source ``imported``, state ``predicted``, and in its
   ``data``: ``original_id`` (the file's annotation id, where it has one), ``imported_from``
   (the path read), ``format``, ``iscrowd`` (COCO crowd regions, exported back as crowd), and
   ``original_image`` where the file named the image otherwise. Importing the same file again
   adds nothing already imported from it (same ``imported_from`` and ``original_id``);
   ``replace=True`` first removes the annotations the images have.

Boxes (YOLO detection, CVAT and VOC boxes, Label Studio rectangles) come as rectangle masks;
with an engine given (``sam=engine``, ``--sam-boxes``) each is instead decoded by SAM as a box
prompt, the class kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .formats import get_format
from .formats.dataset import InMemoryDataset
from .formats.errors import FormatReadError, Problems
from .images import list_images
from .instances import Instances, Source
from .store import AnnotationStore, State

log = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "skip")


@dataclass
class ImportSummary:
    """What an import did.

    Attributes:
        path: what was read; format: its format's name.
        images: images of the folder that received annotations (or were listed without any).
        annotations: annotations written.
        already: annotations not written because an earlier import of the same file has them.
        categories: categories created in the store.
        skipped_images: images of the file the folder lacks (``missing="skip"``).
        replaced: annotations removed first (``replace=True``).
        sam_boxes: boxes decoded into masks by SAM.
        seconds: wall time, reading included.
    """

    path: Path
    format: str
    images: int = 0
    annotations: int = 0
    already: int = 0
    categories: int = 0
    skipped_images: list[str] = field(default_factory=list)
    replaced: int = 0
    sam_boxes: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        """One paragraph for the user."""
        parts = [f"imported {self.annotations} annotations on {self.images} images from {self.path} ({self.format})"]
        if self.categories:
            parts.append(f"{self.categories} new classes")
        if self.already:
            parts.append(f"{self.already} already imported from it before, not added again")
        if self.replaced:
            parts.append(f"{self.replaced} earlier annotations of those images replaced")
        if self.sam_boxes:
            parts.append(f"{self.sam_boxes} boxes turned into masks by SAM")
        if self.skipped_images:
            shown = ", ".join(self.skipped_images[:5]) + (" ..." if len(self.skipped_images) > 5 else "")
            parts.append(f"{len(self.skipped_images)} images of the file are not in the folder, skipped: {shown}")
        return "; ".join(parts) + f". They are predictions to review (state 'predicted'), in {self.seconds:.1f} s."


def match_images(dataset_keys: list[str], folder_keys: list[str]) -> dict[str, str | None]:
    """Each key of a file's images → the folder's image it is: the same relative path, else the
    only folder image of the same file name, else ``None``.

    Args:
        dataset_keys: image keys as the file names them (POSIX, maybe with ``../`` or folders).
        folder_keys: the image folder's keys (paths relative to it, POSIX).
    """
    exact = set(folder_keys)
    by_name: dict[str, list[str]] = {}
    for key in folder_keys:
        by_name.setdefault(PurePosixPath(key).name, []).append(key)
    out: dict[str, str | None] = {}
    for key in dataset_keys:
        clean = PurePosixPath(key.replace("\\", "/"))
        if str(clean) in exact:
            out[key] = str(clean)
            continue
        named = by_name.get(clean.name, [])
        out[key] = named[0] if len(named) == 1 else None
    return out


def store_category_ids(file_ids: dict[str, int], have: dict[str, int]) -> dict[str, int]:
    """The ids a store gives the classes of a file whose numbers are no ids (a YOLO class
    index, a position in a label list): the store's own for names it has, else the file's
    number where no class of the store or of the file has it yet, else the next free id.

    Args:
        file_ids: name → the file's number, in the file's order.
        have: the store's categories, name → id.
    Returns:
        name → id, for every name of ``file_ids``.
    """
    out = {name: have[name] for name in file_ids if name in have}
    taken = set(have.values()) | set(out.values())
    for name, number in file_ids.items():
        if name in out:
            continue
        cid = int(number) if int(number) not in taken and int(number) > 0 else max(taken | {0}) + 1
        out[name] = cid
        taken.add(cid)
    return out


def _image_size(path: Path) -> tuple[int, int]:
    from .formats.yolo import image_size

    return image_size(path)


def _sam_masks(engine, image_path: Path, found: Instances) -> tuple[Instances, int]:
    """``found`` with its box-only instances (``data["from_box"]``) decoded by SAM, box XYXY
    ``data["box"]`` as the prompt, their classes kept."""
    from .images import load_image

    from_box = np.asarray(found.data.get("from_box", np.zeros(len(found), bool)), dtype=bool)
    if not from_box.any():
        return found, 0
    boxes = np.asarray([found.data["box"][i] for i in np.nonzero(from_box)[0]], dtype=np.float32).reshape(-1, 4)
    emb = engine.embed(load_image(image_path))
    decoded = engine.predict_boxes(emb, boxes, with_labels=False)
    rles = found.rles()
    for j, i in enumerate(np.nonzero(from_box)[0]):
        if decoded.areas[j]:
            rles[i] = decoded.rles()[j]
    return (
        Instances(
            rles,
            image_size=found.image_size,
            scores=found.scores,
            predicted_iou=np.where(from_box, np.nan, found.predicted_iou),
            class_names=found.class_names,
            class_ids=found.class_ids,
            source=found.source,
            data=found.data,
        ),
        int(from_box.sum()),
    )


def import_annotations(
    store: AnnotationStore,
    images_root: str | Path,
    path: str | Path,
    fmt: str,
    missing: str = "error",
    replace: bool = False,
    sam=None,
    author: str | None = None,
) -> ImportSummary:
    """Import a file's (or dataset folder's) annotations into ``store`` (see the module
    docstring): all of them in one transaction, or none.

    Args:
        store: the image folder's store.
        images_root: the image folder the annotations are of.
        path: the file or folder the format reads (COCO JSON, YOLO folder or ``data.yaml``, ...).
        fmt: a readable format of :data:`annotator.formats.FORMATS`.
        missing: ``error`` (an image the folder lacks is a problem) or ``skip``.
        replace: first remove the annotations the imported images have.
        sam: an :class:`~annotator.engine.Engine` to decode box-only annotations with, or ``None``
            (they stay rectangles).
        author: who imports (default: the store's author).
    Returns:
        What was done.
    Raises:
        ValueError: unknown or unreadable format, unknown ``missing``.
        FileNotFoundError: ``path`` or ``images_root`` does not exist.
        FormatReadError: the file, its images or its classes have problems: every one listed
            (file, record, reason); nothing was written.
        StoreError: the store fails; nothing was written.
    """
    t0 = time.perf_counter()
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, not {missing!r}")
    form = get_format(fmt)
    if not form.readable:
        raise ValueError(f"the {form.name} format is written only, not read")
    path, root = Path(path), Path(images_root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    folder_keys = [p.relative_to(root).as_posix() for p in list_images(root, recursive=True)]
    dataset: InMemoryDataset = form.read(path, images_root=root)
    summary = ImportSummary(path=path, format=form.name)

    problems = Problems()
    matched = match_images(list(dataset.images), folder_keys)
    targets: dict[str, str] = {}
    for key, image in dataset.images.items():
        found = matched[key]
        if found is None:
            if missing == "skip":
                summary.skipped_images.append(key)
            else:
                problems.add(path, f"image {key}", f"not in the image folder {root} (by path or by file name)")
            continue
        if found in targets.values():
            problems.add(path, f"image {key}", f"is the folder's {found}, which another image of the file is too")
            continue
        try:
            width, height = _image_size(root / found)
        except OSError as exc:
            problems.add(path, f"image {key}", f"the folder's {found} cannot be read: {exc}")
            continue
        if (width, height) != (image.width, image.height):
            problems.add(
                path,
                f"image {key}",
                f"is {image.width}x{image.height} there, the folder's {found} is {width}x{height}",
            )
            continue
        targets[key] = found
    used = {}
    for key in targets:
        found = dataset.instances(key)
        used.update(zip((str(n) for n in found.class_names), (int(c) for c in found.class_ids), strict=True))
    wanted = {**dataset.declared_categories(), **used}
    if not form.category_ids:
        wanted = store_category_ids(wanted, store.categories)
    for reason in store.check_categories(wanted):
        problems.add(path, "categories", reason)
    problems.raise_if_any()

    already = {
        (a.data.get("imported_from"), a.data.get("original_id"))
        for a in store.annotations.values()
        if a.data.get("imported_from") is not None and a.data.get("original_id") is not None
    }
    source = str(path.resolve())
    before = set(store.categories)
    with store.batch():
        store.take_categories(wanted)
        for key, target in targets.items():
            found = dataset.instances(key)
            image = dataset.images[key]
            if replace:
                gone = [a.id for a in store.for_image(target)]
                if gone:
                    store.delete(gone)
                    summary.replaced += len(gone)
            if sam is not None and len(found):
                found, n = _sam_masks(sam, root / target, found)
                summary.sam_boxes += n
            ids = found.data.get("annotation_id")
            crowd = found.data.get("iscrowd")
            records, keep = [], []
            for i in range(len(found)):
                original = None if ids is None or int(ids[i]) < 0 else int(ids[i])
                if original is not None and (source, original) in already and not replace:
                    summary.already += 1
                    continue
                record = {"imported_from": source, "format": form.name}
                if original is not None:
                    record["original_id"] = original
                if crowd is not None and bool(crowd[i]):
                    record["iscrowd"] = True
                if key != target:
                    record["original_image"] = key
                records.append(record)
                keep.append(i)
            chosen = found[np.asarray(keep, dtype=np.int64)]
            chosen = Instances(
                chosen.rles(),
                image_size=(image.height, image.width),
                scores=chosen.scores,
                predicted_iou=chosen.predicted_iou,
                class_names=chosen.class_names,
                class_ids=[wanted[str(n)] for n in chosen.class_names],
                source=Source.IMPORTED,
                data={"annotation_data": records},
            )
            store.add_image(target, image.width, image.height)
            added = store.add_instances(target, chosen, author=author, history=False, state=State.PREDICTED)
            summary.annotations += len(added)
            summary.images += 1
    summary.categories = len(set(store.categories) - before)
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = [
    "MISSING_POLICIES",
    "FormatReadError",
    "ImportSummary",
    "import_annotations",
    "match_images",
    "store_category_ids",
]
