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
from .format import Format

SEGMENTATION_FORMATS = ("rle", "polygon")


class CocoFormatError(ValueError):
    """A COCO JSON is unreadable or malformed.

    Attributes:
        path: the file; reason: what is wrong with it (the underlying error's text).
    """

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: not a COCO instances JSON ({reason})")
        self.path, self.reason = Path(path), reason


def to_coco(dataset: Dataset, segmentation: str = "rle", description: str = "") -> dict:
    """Build the COCO instances dict of a dataset (an annotation store, an :class:`InMemoryDataset`).

    Args:
        segmentation: ``rle`` (compressed RLE, exact) or ``polygon``.
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
                    if segmentation == "rle"
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
        TypeError, ValueError: not a COCO segmentation.
    """
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


def from_coco(data: dict) -> InMemoryDataset:
    """A COCO instances dict as a dataset.

    Every image (those without annotations too) under its ``file_name``; its annotations (none
    included) in the
    file's order as :class:`~annotator.instances.Instances` with RLE masks (see
    :func:`segmentation_rle`), ``class_names`` / ``class_ids`` from ``categories``, ``scores`` and
    ``predicted_iou`` where given (else NaN), source :attr:`~annotator.instances.Source.IMPORTED`,
    and ``data["annotation_id"]`` (int64) and ``data["iscrowd"]`` (bool).  Boxes are derived from
    the masks.

    Raises:
        KeyError, TypeError, ValueError: malformed (a missing field, an annotation without
            ``segmentation``, an unknown image or category id, two categories of one name).
    """
    names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    if len(set(names.values())) != len(names):
        raise ValueError("two categories have the same name")
    images = {
        int(im["id"]): ImageEntry(str(im["file_name"]), int(im["width"]), int(im["height"])) for im in data["images"]
    }
    per_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if int(ann["image_id"]) not in images:
            raise KeyError(f"annotation {ann.get('id')} of unknown image {ann['image_id']}")
        per_image.setdefault(int(ann["image_id"]), []).append(ann)
    instances = {}
    for image_id, image in images.items():
        anns = per_image.get(image_id, [])
        instances[image.key] = Instances(
            [segmentation_rle(a["segmentation"], image.height, image.width) for a in anns],
            image_size=(image.height, image.width),
            scores=[a.get("score") for a in anns],
            predicted_iou=[a.get("predicted_iou") for a in anns],
            class_names=[names[int(a["category_id"])] for a in anns],
            class_ids=[int(a["category_id"]) for a in anns],
            source=Source.IMPORTED,
            data={
                "annotation_id": np.array([int(a["id"]) for a in anns], dtype=np.int64),
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


def read_coco(path: str | Path) -> InMemoryDataset:
    """Read a COCO instances JSON as a dataset (see :func:`from_coco`).

    Raises:
        CocoFormatError: unreadable or malformed.
    """
    data = load_coco_json(path)
    try:
        return from_coco(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise CocoFormatError(path, str(exc)) from exc


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
)

__all__ = [
    "FORMAT",
    "SEGMENTATION_FORMATS",
    "CocoFormatError",
    "export_coco",
    "from_coco",
    "load_coco_json",
    "read_coco",
    "read_coco_boxes",
    "segmentation_rle",
    "to_coco",
    "write",
]
