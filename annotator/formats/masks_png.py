"""Plain mask PNGs: one 16-bit instance-id PNG per image and a JSON sidecar, written and read.

The "label image" of microscopy and instance-segmentation tools (cellpose and StarDist write
them, Cityscapes' ``*_instanceIds.png`` is one, scikit-image's ``label`` makes them): a PNG
of the image's size whose pixel value is the instance it belongs to, 0 = background, 1..N the
instances, read by anything that reads PNGs (``cv2.imread(path, cv2.IMREAD_UNCHANGED)``,
``PIL.Image.open``, ``imageio``).  A PNG cannot say what each value is, so the sidecar
``instances.json`` does::

    {"format": "ovsam-masks", "version": 1,
     "categories": [{"id": 1, "name": "person"}, ...],
     "images": [{"file_name": "sub/a.jpg", "mask": "sub__a.png", "width": 640, "height": 480,
                 "instances": [{"value": 1, "category_id": 1, "category": "person",
                                "annotation_id": 17, "score": 0.9}, ...]}, ...]}

Written (:func:`export_masks`): ``<out>/<flat name>.png`` for every image (those without
instances too: all 0; flat names as YOLO's, :func:`annotator.formats.names.flat_names`), the
sidecar last (atomically, so it never names a PNG that is not there).  Values are given in
the image's instance order (annotation id order for a store).  A pixel holds one value, so
overlapping instances cannot all be kept: each pixel goes to the instance of highest
:func:`annotator.formats.coco_panoptic.paint_priority` (a person's own above predictions, then
by score), and an instance left with no pixel is not written (one value fewer).  So overlaps
are lost, holes and parts are kept exactly; ``score`` / ``predicted_iou`` are kept where set.

Read (:func:`read_masks`): each image of the sidecar with one instance per value (its pixels,
exactly), categories, annotation ids and scores from the sidecar.  Where nothing overlapped,
export → read → export is the same files (pixel-equal PNGs).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_json
from ..instances import Instances, Source
from ..masks import encode_rle
from .coco_panoptic import paint_priority
from .dataset import Dataset, ImageEntry, InMemoryDataset, annotation_ids
from .errors import FormatReadError, Problems
from .format import Format
from .names import flat_names

SIDECAR = "instances.json"
MAX_INSTANCES = 65535
"""The most instances a 16-bit PNG holds per image."""


def paint(found: Instances) -> tuple[np.ndarray, list[int]]:
    """One image's instances as an instance-id map.

    Returns:
        ``((H, W) uint16 map, kept)``: ``kept`` the indices into ``found`` of the instances
        written, in order, instance ``kept[v - 1]`` having value ``v``; pixels go to the
        instance of highest :func:`~annotator.formats.coco_panoptic.paint_priority`.
    Raises:
        ValueError: more than :data:`MAX_INSTANCES` instances.
    """
    if len(found) > MAX_INSTANCES:
        raise ValueError(f"{len(found)} instances: a 16-bit PNG holds {MAX_INSTANCES}")
    owner = np.zeros(found.image_size, np.int32)  # 1 + instance index, 0 = none
    order = np.argsort(paint_priority(found), kind="stable")  # lowest first: the highest paints last
    for i in order:
        owner[found.mask(int(i))] = int(i) + 1
    present = np.unique(owner)
    kept = [int(v) - 1 for v in present if v]
    lut = np.zeros(len(found) + 1, np.uint16)
    for value, i in enumerate(kept, start=1):
        lut[i + 1] = value
    return lut[owner], kept


def export_masks(dataset: Dataset, out_dir: str | Path) -> list[Path]:
    """Write a dataset as plain mask PNGs + sidecar (see the module doc).

    Args:
        out_dir: the folder (created).
    Returns:
        The sidecar, then the PNGs (image key order).
    Raises:
        ValueError: an image with more than :data:`MAX_INSTANCES` instances.
        OSError: a PNG could not be encoded or written.
    """
    out_dir = Path(out_dir)
    keys = sorted(dataset.images)
    images = dataset.images
    per_image = {key: dataset.instances(key) for key in keys}
    ids = annotation_ids(per_image)
    categories = dict(dataset.declared_categories())
    entries, pngs = [], []
    for key, png_name in zip(keys, flat_names(keys, suffix=".png"), strict=True):
        found = per_image[key]
        id_map, kept = paint(found)
        ok, data = cv2.imencode(".png", id_map)
        if not ok:
            raise OSError(f"could not encode the mask PNG of {key}")
        pngs.append(atomic_write_bytes(out_dir / png_name, data.tobytes()))
        rows = []
        for value, i in enumerate(kept, start=1):
            name, cid = str(found.class_names[i]), int(found.class_ids[i])
            categories[name] = cid
            row = {"value": value, "category_id": cid, "category": name, "annotation_id": int(ids[key][i])}
            if (score := found.score_or_none(i)) is not None:
                row["score"] = score
            if (iou := found.predicted_iou_or_none(i)) is not None:
                row["predicted_iou"] = iou
            rows.append(row)
        image = images[key]
        entries.append(
            {"file_name": key, "mask": png_name, "width": image.width, "height": image.height, "instances": rows}
        )
    sidecar = {
        "format": "ovsam-masks",
        "version": 1,
        "categories": [{"id": cid, "name": name} for name, cid in sorted(categories.items(), key=lambda x: x[1])],
        "images": entries,
    }
    return [atomic_write_json(out_dir / SIDECAR, sidecar, indent=1), *pngs]


def write(dataset: Dataset, out: str | Path) -> list[Path]:
    """The registry's writer: :func:`export_masks` into the folder ``out``."""
    return export_masks(dataset, out)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_masks(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read plain mask PNGs with their sidecar (see the module doc).

    Args:
        path: the folder, or its ``instances.json``.
        images_root: the image folder (not needed: the sidecar names each image by its key).
    Returns:
        Every image of the sidecar under its ``file_name``, one instance per value (RLE, exact
        pixels), ``data["annotation_id"]`` (int64), scores where given, source
        :attr:`~annotator.instances.Source.IMPORTED`.
    Raises:
        FormatReadError: every problem, one line each (file, ``image KEY`` / ``value N``,
            reason): no sidecar or not JSON, a category without id and name, an image without
            file_name / mask / size, a PNG missing, unreadable, not one channel or of another
            size, a value in the PNG the sidecar does not list or one it lists that has no
            pixel, an unknown category, a repeated value or annotation id.
    """
    path = Path(path)
    sidecar = path if path.is_file() else path / SIDECAR
    folder = sidecar.parent
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta.get("images"), list) or not isinstance(meta.get("categories"), list):
            raise TypeError("images and categories must be lists")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise FormatReadError.one(sidecar, f"not a mask PNG sidecar ({type(exc).__name__}: {exc})") from exc
    problems = Problems()
    names: dict[int, str] = {}
    for k, c in enumerate(meta["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"]:
            problems.add(sidecar, f"category {k + 1} of the list", "a category needs an integer id and a name")
        elif c["id"] in names or c["name"] in names.values():
            problems.add(sidecar, f"category {c['id']}", "two categories have this id or name")
        else:
            names[c["id"]] = c["name"]
    images, instances, seen_ids = [], {}, set()
    for k, im in enumerate(meta["images"]):
        ok = isinstance(im, dict) and isinstance(im.get("file_name"), str) and isinstance(im.get("mask"), str)
        if not ok or not (_is_int(im.get("width")) and _is_int(im.get("height"))):
            problems.add(sidecar, f"image {k + 1} of the list", "an image needs file_name, mask, width and height")
            continue
        key, record = im["file_name"], f"image {im['file_name']}"
        rows = im.get("instances", [])
        if not isinstance(rows, list):
            problems.add(sidecar, record, "instances is not a list")
            continue
        png_path = folder / im["mask"]
        id_map = cv2.imread(str(png_path), cv2.IMREAD_UNCHANGED) if png_path.is_file() else None
        if id_map is None:
            problems.add(png_path, record, "the mask PNG is missing or unreadable")
            continue
        if id_map.ndim != 2:
            problems.add(png_path, record, f"a mask PNG has one channel, this one {id_map.shape[2]}")
            continue
        if id_map.shape != (im["height"], im["width"]):
            problems.add(png_path, record, f"PNG of {id_map.shape} for an image of {(im['height'], im['width'])}")
            continue
        present = set(np.unique(id_map).tolist()) - {0}
        listed, bad = {}, False
        for row in rows:
            value = row.get("value") if isinstance(row, dict) else None
            if not _is_int(value) or value < 1:
                problems.add(sidecar, record, f"an instance without a value ≥ 1: {row!r}")
                bad = True
            elif value in listed:
                problems.add(sidecar, f"{record}, value {value}", "two instances have this value")
                bad = True
            elif not _is_int(row.get("category_id")) or row["category_id"] not in names:
                problems.add(sidecar, f"{record}, value {value}", f"unknown category {row.get('category_id')!r}")
                bad = True
            elif value not in present:
                problems.add(png_path, f"{record}, value {value}", "no pixel of the PNG has this value")
                bad = True
            elif _is_int(row.get("annotation_id")) and row["annotation_id"] in seen_ids:
                problems.add(sidecar, f"{record}, value {value}", f"annotation id {row['annotation_id']} repeated")
                bad = True
            else:
                listed[value] = row
                if _is_int(row.get("annotation_id")):
                    seen_ids.add(row["annotation_id"])
        unlisted = sorted(present - set(listed) - {r.get("value") for r in rows if isinstance(r, dict)})
        if unlisted:
            problems.add(png_path, record, f"values {unlisted[:10]} of the PNG are not in the sidecar")
            bad = True
        images.append(ImageEntry(key, im["width"], im["height"]))
        if bad:
            continue
        rows = list(listed.values())
        instances[key] = Instances(
            [encode_rle(id_map == r["value"]) for r in rows],
            image_size=id_map.shape,
            scores=[r.get("score") for r in rows],
            predicted_iou=[r.get("predicted_iou") for r in rows],
            class_names=[names[r["category_id"]] for r in rows],
            class_ids=[r["category_id"] for r in rows],
            source=Source.IMPORTED,
            data=(
                {"annotation_id": np.array([r["annotation_id"] for r in rows], dtype=np.int64)}
                if all(_is_int(r.get("annotation_id")) for r in rows)
                else {}
            ),
        )
    if len({im.key for im in images}) != len(images):
        problems.add(sidecar, "", "two images have one file_name")
    problems.raise_if_any()
    return InMemoryDataset(images, instances, {name: cid for cid, name in names.items()})


FORMAT = Format(
    name="masks",
    description="plain mask PNGs: a 16-bit instance-id PNG per image + instances.json (overlaps painted)",
    write=write,
    read=read_masks,
    options=(),
    suffix="_masks",
)

__all__ = ["FORMAT", "MAX_INSTANCES", "SIDECAR", "export_masks", "paint", "read_masks", "write"]
