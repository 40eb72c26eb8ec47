"""COCO instances JSON (https://cocodataset.org/#format-data), written and read.

Written (:func:`to_coco`, :func:`export_coco`): ``images`` (every image of the dataset, those
without annotations too, with file_name relative to the image folder, width, height),
``categories`` (those used and those declared, see
:meth:`~annotator.store.AnnotationStore.declared_categories`, with the dataset's stable ids),
``annotations`` with ``segmentation`` as compressed RLE (default) or polygons (holes and
multi-part masks kept, see :func:`annotator.masks.mask_to_polygons`), ``bbox`` XYWH, ``area`` =
mask pixel count, ``iscrowd`` 0 (or the instances' ``data["iscrowd"]``) and ``score`` /
``predicted_iou`` when predicted.

Read (:func:`from_coco`, :func:`read_coco`): any COCO instances JSON, ours or COCO's own;
polygons and uncompressed RLE are turned into compressed RLE by pycocotools (as
``COCO.annToRLE``), so the masks are exactly those pycocotools decodes.  Also the one reader of
COCO boxes (:func:`read_coco_boxes`, the prompts of ``annotate --boxes``).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..fileio import atomic_write_json
from ..instances import Instances, Source
from ..masks import mask_to_polygons, rle_bbox
from .dataset import Dataset, ImageEntry, InMemoryDataset, annotation_ids
from .errors import FormatReadError, Problem, Problems
from .format import Format

SEGMENTATION_FORMATS = ("rle", "polygon")


class CocoFormatError(FormatReadError):
    """A COCO JSON is unreadable or malformed (a :class:`FormatReadError`: every problem as one
    line, file, record, reason).

    Attributes:
        path: the file; reason: what is wrong with it (the underlying error's text, or the
            problems' reasons, one a line); problems: every problem.
    """

    def __init__(self, path: str | Path, reason: str | None = None, problems: list[Problem] | None = None):
        if problems is None:
            problems = [Problem(str(path), "", f"not a COCO instances JSON ({reason})")]
        super().__init__(problems)
        self.path = Path(path)
        self.reason = reason if reason is not None else "\n".join(p.reason for p in self.problems)


def to_coco(dataset: Dataset, segmentation: str = "rle", description: str = "") -> dict:
    """Build the COCO instances dict of a dataset (an annotation store, an :class:`InMemoryDataset`).

    Args:
        segmentation: ``rle`` (compressed RLE, exact) or ``polygon`` (crowd regions stay RLE,
            as in COCO's own files).
        description: ``info.description`` (default: ``exported by ovsam-annotator``).
    Raises:
        ValueError: unknown ``segmentation``.
    """
    if segmentation not in SEGMENTATION_FORMATS:
        raise ValueError(f"segmentation must be one of {SEGMENTATION_FORMATS}, not {segmentation!r}")
    images = dataset.images
    used_images = sorted(images)
    image_ids = {key: i + 1 for i, key in enumerate(used_images)}
    coco_anns, used_cats = [], dataset.declared_categories()
    per_image = {key: dataset.instances(key) for key in used_images}
    ann_ids = annotation_ids(per_image)
    for key, found in per_image.items():
        crowd = found.data.get("iscrowd")
        for i, rle in enumerate(found.rles()):
            entry = {
                "id": int(ann_ids[key][i]),
                "image_id": image_ids[key],
                "category_id": int(found.class_ids[i]),
                "segmentation": (
                    {"size": rle["size"], "counts": rle["counts"]}
                    if segmentation == "rle" or (crowd is not None and crowd[i])  # crowd: RLE, as COCO has it
                    else mask_to_polygons(found.mask(i))
                ),
                "bbox": rle_bbox(rle),
                "area": int(found.areas[i]),
                "iscrowd": 0 if crowd is None else int(crowd[i]),
            }
            if (score := found.score_or_none(i)) is not None:
                entry["score"] = score
            if (iou := found.predicted_iou_or_none(i)) is not None:
                entry["predicted_iou"] = iou
            coco_anns.append(entry)
            used_cats[str(found.class_names[i])] = int(found.class_ids[i])
    coco_anns.sort(key=lambda e: e["id"])  # acceptance order, as ids are given
    now = _dt.datetime.now(_dt.timezone.utc)
    return {
        "info": {
            "description": description or "exported by ovsam-annotator",
            "version": "1.0",
            "year": now.year,
            "date_created": now.isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": [
            {"id": image_ids[k], "file_name": k, "width": images[k].width, "height": images[k].height}
            for k in used_images
        ],
        "categories": [
            {"id": cid, "name": name, "supercategory": ""}
            for name, cid in sorted(used_cats.items(), key=lambda x: x[1])
        ],
        "annotations": coco_anns,
    }


def export_coco(dataset: Dataset, out_path: str | Path, segmentation: str = "rle") -> Path:
    """Write a dataset as a COCO instances JSON file, atomically; returns the path."""
    return atomic_write_json(out_path, to_coco(dataset, segmentation))


def write(dataset: Dataset, out: str | Path, segmentation: str = "rle") -> list[Path]:
    """The registry's writer: :func:`export_coco`; returns ``[out]``."""
    return [export_coco(dataset, out, segmentation)]


def segmentation_rle(segmentation: list | dict, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) as compressed RLE
    ``{"size": [H, W], "counts": str}``, as pycocotools' ``COCO.annToRLE`` makes it (polygons
    rasterised by pycocotools and unioned).

    Raises:
        TypeError, ValueError: not a COCO segmentation (see :func:`segmentation_problem`).
    """
    problem = segmentation_problem(segmentation, height, width)
    if problem:
        raise ValueError(problem)
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
    }


def rle_string_counts(counts: str) -> list[int] | None:
    """The run lengths of a compressed RLE string (pycocotools' ``rleFrString``), ``None``
    where the string is not one (a character out of ``0``..``o``, a number cut short)."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def segmentation_problem(segmentation, height: int, width: int) -> str:
    """What is wrong with a COCO ``segmentation`` for an image of ``height`` × ``width``, ``""``
    when nothing: polygons must be a non-empty list of lists of 6 or more numbers (an even
    count); an RLE a dict with ``size`` = [H, W] of the image and ``counts`` (a list of run
    lengths, or the compressed string) whose runs are not negative and add up to H·W (pycocotools
    would write past the mask otherwise)."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "empty segmentation (no polygon)"
        for k, poly in enumerate(segmentation):
            if not isinstance(poly, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly
            ):
                return f"polygon {k} is not a list of numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"polygon {k} has {len(poly)} coordinates (6 or more, an even count, are needed)"
            if not all(np.isfinite(poly)):
                return f"polygon {k} has a coordinate that is not finite"
        return ""
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        return "segmentation is neither polygons nor an RLE with size and counts"
    size = segmentation["size"]
    if not isinstance(size, list) or len(size) != 2 or [*size] != [height, width]:
        return f"RLE size {size} is not the image's [{height}, {width}]"
    counts = segmentation["counts"]
    if isinstance(counts, list):
        runs = counts
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in runs):
            return "RLE counts are not whole numbers"
    elif isinstance(counts, str):
        runs = rle_string_counts(counts)
        if runs is None:
            return "RLE counts are not a compressed RLE string"
    else:
        return "RLE counts are neither a list nor a string"
    if any(v < 0 for v in runs):
        return "RLE counts have a negative run"
    if sum(runs) != height * width:
        return f"RLE runs cover {sum(runs)} pixels, the image has {height * width}"
    return ""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def image_key(file_name: str, images_root: str | Path | None = None) -> str:
    """An image's key: its ``file_name``, made relative to ``images_root`` where it is an
    absolute path inside it."""
    path = Path(file_name)
    if images_root is not None and path.is_absolute():
        try:
            return path.relative_to(Path(images_root).resolve()).as_posix()
        except ValueError:
            pass
    return file_name


def from_coco(data: dict, images_root: str | Path | None = None, file: str | Path = "COCO JSON") -> InMemoryDataset:
    """A COCO instances dict as a dataset.

    Every image (those without annotations too) under its ``file_name`` (an absolute path
    inside ``images_root`` becomes relative to it); its annotations (none included) in the
    file's order as :class:`~annotator.instances.Instances` with RLE masks (see
    :func:`segmentation_rle`: exactly pycocotools' ``COCO.annToRLE``), ``class_names`` /
    ``class_ids`` from ``categories``, ``scores`` and ``predicted_iou`` where given (else NaN),
    source :attr:`~annotator.instances.Source.IMPORTED`, and ``data["annotation_id"]`` (int64)
    and ``data["iscrowd"]`` (bool).  Boxes are derived from the masks.

    Args:
        images_root: the image folder the file's names are relative to (optional).
        file: the file's name in the problems reported.
    Raises:
        CocoFormatError: (a :class:`~annotator.formats.errors.FormatReadError`) one line per
            problem, all of them: a category without an integer id or a name, two categories of
            one id or name, an image without id / file_name / size, two images of one id or
            file_name, and per annotation (by its id): no integer id or a repeated one, an
            unknown image or category, a missing or bad segmentation (see
            :func:`segmentation_problem`), a score that is not a number.
    """
    problems = Problems()
    for field in ("images", "annotations", "categories"):
        if not isinstance(data.get(field), list):
            problems.add(file, "", f"{field!r} is not a list")
    if problems:
        raise CocoFormatError(file, problems=problems.items)
    names: dict[int, str] = {}
    for k, c in enumerate(data["categories"]):
        record = f"category {k + 1} of the list"
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"]:
            problems.add(file, record, "a category needs an integer id and a name")
        elif c["id"] in names:
            problems.add(file, f"category {c['id']}", "two categories have this id")
        elif c["name"] in names.values():
            problems.add(file, f"category {c['id']}", f"two categories are named {c['name']!r}")
        else:
            names[c["id"]] = c["name"]
    images: dict[int, ImageEntry] = {}
    keys: set[str] = set()
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            problems.add(file, f"image {k + 1} of the list", "an image needs an integer id")
            continue
        record = f"image {im['id']}"
        w, h, name = im.get("width"), im.get("height"), im.get("file_name")
        if not isinstance(name, str) or not name:
            problems.add(file, record, "no file_name")
        elif not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
            problems.add(file, record, f"width and height must be positive integers, not {w!r} and {h!r}")
        elif im["id"] in images:
            problems.add(file, record, "two images have this id")
        elif image_key(name, images_root) in keys:
            problems.add(file, record, f"two images have the file_name {name!r}")
        else:
            images[im["id"]] = ImageEntry(image_key(name, images_root), w, h)
            keys.add(images[im["id"]].key)
    per_image: dict[int, list[dict]] = {}
    rles: dict[int, dict] = {}
    ann_ids: set[int] = set()
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            problems.add(file, f"annotation {k + 1} of the list", "an annotation needs an integer id")
            continue
        record = f"annotation {ann['id']}"
        if ann["id"] in ann_ids:
            problems.add(file, record, "two annotations have this id")
        ann_ids.add(ann["id"])
        image = images.get(ann.get("image_id")) if _is_int(ann.get("image_id")) else None
        if image is None:
            problems.add(file, record, f"unknown image {ann.get('image_id')!r}")
        if not _is_int(ann.get("category_id")) or ann["category_id"] not in names:
            problems.add(file, record, f"unknown category {ann.get('category_id')!r}")
        for field in ("score", "predicted_iou"):
            v = ann.get(field)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v)):
                problems.add(file, record, f"{field} {v!r} is not a number")
        if "segmentation" not in ann:
            problems.add(file, record, "no segmentation")
        elif image is not None:
            reason = segmentation_problem(ann["segmentation"], image.height, image.width)
            if reason:
                problems.add(file, record, f"bad segmentation: {reason}")
            else:
                rles[k] = segmentation_rle(ann["segmentation"], image.height, image.width)
        if image is not None:
            per_image.setdefault(ann["image_id"], []).append({**ann, "_index": k})
    if problems:
        raise CocoFormatError(file, problems=problems.items)
    instances = {}
    for image_id, image in images.items():
        anns = per_image.get(image_id, [])
        instances[image.key] = Instances(
            [rles[a["_index"]] for a in anns],
            image_size=(image.height, image.width),
            scores=[a.get("score") for a in anns],
            predicted_iou=[a.get("predicted_iou") for a in anns],
            class_names=[names[a["category_id"]] for a in anns],
            class_ids=[a["category_id"] for a in anns],
            source=Source.IMPORTED,
            data={
                "annotation_id": np.array([a["id"] for a in anns], dtype=np.int64),
                "iscrowd": np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
            },
        )
    return InMemoryDataset(images.values(), instances, {name: cid for cid, name in names.items()})


def load_coco_json(path: str | Path) -> dict:
    """The parsed JSON of a COCO file, checked to have ``images`` and ``annotations`` lists.

    Raises:
        CocoFormatError: unreadable, not JSON, or not a COCO dict.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data["images"], list) or not isinstance(data["annotations"], list):
            raise TypeError("images and annotations must be lists")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CocoFormatError(path, str(exc)) from exc
    return data


def read_coco(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a COCO instances JSON as a dataset (see :func:`from_coco`).

    Args:
        images_root: the image folder its ``file_name`` are relative to (optional: absolute
            names inside it become relative).
    Raises:
        CocoFormatError: (a :class:`~annotator.formats.errors.FormatReadError`) unreadable, or
            every problem of the file, one line each (file, record, reason).
    """
    return from_coco(load_coco_json(path), images_root, file=path)


def read_coco_boxes(path: str | Path) -> dict[str, list[dict]]:
    """The boxes of a COCO JSON, as prompts: ``file_name`` → ``[{"bbox": [x, y, w, h] (as in the
    file), "label": category name or None, "category_id": the file's id of that category or
    None}, ...]`` in the file's order; images without annotations are absent. Segmentations are
    not read. A bulk run keeps the file's category ids (see
    :func:`annotator.bulk.boxes.box_category_ids`).

    Raises:
        CocoFormatError: unreadable or malformed (its ``reason`` is the underlying error's text).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in data.get("categories", [])}
        files = {im["id"]: im["file_name"] for im in data["images"]}
        out: dict[str, list[dict]] = {}
        for ann in data["annotations"]:
            cid = ann.get("category_id")
            label = names.get(cid)
            out.setdefault(files[ann["image_id"]], []).append(
                {"bbox": ann["bbox"], "label": label, "category_id": int(cid) if label is not None else None}
            )
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CocoFormatError(path, str(exc)) from exc


FORMAT = Format(
    name="coco",
    description="COCO instances JSON (RLE or polygons)",
    write=write,
    read=read_coco,
    options=("segmentation",),
    suffix="_coco.json",
    option_suffixes=(("segmentation", "polygon", "_coco_polygons.json"),),
)

__all__ = [
    "FORMAT",
    "SEGMENTATION_FORMATS",
    "CocoFormatError",
    "export_coco",
    "from_coco",
    "image_key",
    "load_coco_json",
    "read_coco",
    "read_coco_boxes",
    "rle_string_counts",
    "segmentation_problem",
    "segmentation_rle",
    "to_coco",
    "write",
]
