"""COCO instances JSON export (https://cocodataset.org/#format-data).

``images`` (every image of the store, those without annotations too, with file_name relative to
the image folder, width, height), ``categories`` (those used and those a run declared, see
:meth:`~annotator.store.AnnotationStore.declared_categories`, with the store's stable ids),
``annotations`` with ``segmentation`` as compressed RLE (default) or polygons (holes and
multi-part masks kept, see :func:`annotator.masks.mask_to_polygons`), ``bbox`` XYWH, ``area`` =
mask pixel count, ``iscrowd`` 0 and ``score`` when predicted.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..fileio import atomic_write_json
from ..masks import mask_to_polygons, rle_bbox
from ..store import AnnotationStore

SEGMENTATION_FORMATS = ("rle", "polygon")


def to_coco(store: AnnotationStore, segmentation: str = "rle", description: str = "") -> dict:
    """Build the COCO instances dict of a store.

    Args:
        segmentation: ``rle`` (compressed RLE, exact) or ``polygon``.
    Raises:
        ValueError: unknown ``segmentation``.
    """
    if segmentation not in SEGMENTATION_FORMATS:
        raise ValueError(f"segmentation must be one of {SEGMENTATION_FORMATS}, not {segmentation!r}")
    used_images = sorted(store.images)
    image_ids = {key: i + 1 for i, key in enumerate(used_images)}
    coco_anns, used_cats = [], store.declared_categories()
    for key in used_images:
        found = store.instances(key)
        for i, rle in enumerate(found.rles()):
            entry = {
                "id": int(found.data["annotation_id"][i]),
                "image_id": image_ids[key],
                "category_id": int(found.class_ids[i]),
                "segmentation": (
                    {"size": rle["size"], "counts": rle["counts"]}
                    if segmentation == "rle"
                    else mask_to_polygons(found.mask(i))
                ),
                "bbox": rle_bbox(rle),
                "area": int(found.areas[i]),
                "iscrowd": 0,
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
            {"id": image_ids[k], "file_name": k, "width": store.images[k].width, "height": store.images[k].height}
            for k in used_images
        ],
        "categories": [
            {"id": cid, "name": name, "supercategory": ""}
            for name, cid in sorted(used_cats.items(), key=lambda x: x[1])
        ],
        "annotations": coco_anns,
    }


def export_coco(store: AnnotationStore, out_path: str | Path, segmentation: str = "rle") -> Path:
    """Write the store as a COCO instances JSON file, atomically; returns the path."""
    return atomic_write_json(out_path, to_coco(store, segmentation))
