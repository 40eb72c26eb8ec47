"""COCO panoptic format (https://cocodataset.org/#format-data, "Panoptic Segmentation").

One PNG per image whose RGB colour encodes the segment id (``id = R + 256·G + 256²·B``, 0 =
void), and one JSON with ``images``, ``categories`` (with ``isthing``) and ``annotations``: per
image ``file_name`` (the PNG), ``image_id`` and ``segments_info`` (``id``, ``category_id``,
``iscrowd``, ``area``, ``bbox`` XYWH).  Written atomically (PNGs first, the JSON last, so a JSON
never names a PNG that is not there); read back by :func:`read_coco_panoptic`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ..everything.panoptic import PanopticResult, assemble_panoptic
from ..fileio import atomic_write_bytes, atomic_write_json
from ..instances import Instances, Source
from ..store import AnnotationStore


class PanopticFormatError(ValueError):
    """A COCO panoptic JSON / PNG pair is malformed or inconsistent."""


@dataclass
class PanopticImage:
    """One image's panoptic annotation in COCO terms.

    Attributes:
        image_id: COCO image id; file_name: the image's path relative to the dataset root.
        segment_map: (H, W) int32 segment ids, 0 = void.
        segments_info: ``{"id", "category_id", "iscrowd", "area", "bbox"}`` per segment (plus
            ``score`` for predictions).
    """

    image_id: int
    file_name: str
    segment_map: np.ndarray
    segments_info: list[dict]

    @property
    def png_name(self) -> str:
        """The PNG's file name: the image's path with ``/`` → ``__`` and a ``.png`` suffix."""
        return str(PurePosixPath(self.file_name).with_suffix(".png")).replace("/", "__")


def id_to_rgb(segment_map: np.ndarray) -> np.ndarray:
    """(H, W) int segment ids → (H, W, 3) uint8 RGB (``R = id % 256``, ...)."""
    ids = segment_map.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W) int32 segment ids."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def from_result(image_id: int, file_name: str, result: PanopticResult, category_ids: dict[str, int]) -> PanopticImage:
    """A :class:`PanopticResult` in COCO terms.

    Args:
        category_ids: category id of each label (unlabelled segments are named ``object``).
    Raises:
        KeyError: a segment's label has no category id.
    """
    infos = [
        {
            "id": s.id,
            "category_id": category_ids[s.label],
            "iscrowd": 0,
            "area": s.area,
            "bbox": s.bbox,
            "score": s.score,
        }
        for s in result.segments
    ]
    return PanopticImage(image_id, file_name, result.segment_map, infos)


def write_coco_panoptic(
    images: list[PanopticImage],
    categories: list[dict],
    out_json: str | Path,
    png_dir: str | Path | None = None,
    image_sizes: dict[int, tuple[int, int]] | None = None,
) -> Path:
    """Write a COCO panoptic dataset.

    Args:
        images: the annotated images.
        categories: ``{"id", "name", "isthing", ...}`` each; ``isthing`` 0/1.
        out_json: the JSON path; ``png_dir`` defaults to it without ``.json`` (panopticapi's
            convention).
        image_sizes: (height, width) per image id, default from the segment maps.
    Returns:
        The JSON path.
    Raises:
        PanopticFormatError: a segment uses an unknown category or is absent from its map.
    """
    out_json = Path(out_json)
    png_dir = Path(png_dir) if png_dir is not None else out_json.with_suffix("")
    known = {c["id"] for c in categories}
    annotations, image_entries = [], []
    for im in images:
        ids_in_map = set(np.unique(im.segment_map).tolist()) - {0}
        ids_in_json = {s["id"] for s in im.segments_info}
        if ids_in_map != ids_in_json:
            raise PanopticFormatError(f"{im.file_name}: segment ids in the map and in segments_info differ")
        unknown = {s["category_id"] for s in im.segments_info} - known
        if unknown:
            raise PanopticFormatError(f"{im.file_name}: unknown category ids {sorted(unknown)}")
        ok, png = cv2.imencode(".png", cv2.cvtColor(id_to_rgb(im.segment_map), cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode the PNG of {im.file_name}")
        atomic_write_bytes(png_dir / im.png_name, png.tobytes())
        annotations.append({"image_id": im.image_id, "file_name": im.png_name, "segments_info": im.segments_info})
        h, w = (image_sizes or {}).get(im.image_id, im.segment_map.shape)
        image_entries.append({"id": im.image_id, "file_name": im.file_name, "height": int(h), "width": int(w)})
    now = _dt.datetime.now(_dt.timezone.utc)
    data = {
        "info": {"description": "exported by ovsam-annotator", "date_created": now.isoformat(timespec="seconds")},
        "licenses": [],
        "images": image_entries,
        "categories": categories,
        "annotations": annotations,
    }
    return atomic_write_json(out_json, data)


def read_coco_panoptic(json_path: str | Path, png_dir: str | Path | None = None) -> tuple[list[PanopticImage], dict]:
    """Read a COCO panoptic dataset (ours or COCO's own).

    Args:
        json_path: the JSON; ``png_dir`` defaults to it without ``.json``.
    Returns:
        ``(images, data)``: one :class:`PanopticImage` per annotation (``file_name`` = the
        image's, from ``images``), and the parsed JSON.
    Raises:
        PanopticFormatError: unreadable JSON or PNG, or ids in a PNG and its ``segments_info`` differ.
    """
    json_path = Path(json_path)
    png_dir = Path(png_dir) if png_dir is not None else json_path.with_suffix("")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        names = {im["id"]: im["file_name"] for im in data["images"]}
        entries = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PanopticFormatError(f"{json_path}: not a COCO panoptic JSON ({exc})") from exc
    out = []
    for ann in entries:
        png = cv2.imread(str(png_dir / ann["file_name"]), cv2.IMREAD_COLOR)
        if png is None:
            raise PanopticFormatError(f"cannot read {png_dir / ann['file_name']}")
        seg_map = rgb_to_id(cv2.cvtColor(png, cv2.COLOR_BGR2RGB))
        infos = ann["segments_info"]
        if set(np.unique(seg_map).tolist()) - {0} != {s["id"] for s in infos}:
            raise PanopticFormatError(f"{ann['file_name']}: segment ids in the PNG and in segments_info differ")
        out.append(PanopticImage(ann["image_id"], names.get(ann["image_id"], ann["file_name"]), seg_map, infos))
    return out, data


def paint_priority(instances: Instances) -> np.ndarray:
    """(N,) paint order of stored annotations, higher first: a predicted label's score; the
    everything mode's unlabelled masks by predicted IoU; a person's own (clicked, boxed,
    merged, given a label) above every prediction, by predicted IoU."""
    iou = np.nan_to_num(instances.predicted_iou, nan=0.0)
    automatic = np.array([Source(s).automatic for s in instances.source], dtype=bool)
    own = np.where(automatic, iou, 1.0 + iou)
    return np.where(np.isnan(instances.scores), own, instances.scores)


def store_panoptic(
    store: AnnotationStore, isthing: dict[str, bool] | None = None, overlap_threshold: float = 0.5
) -> tuple[list[PanopticImage], list[dict]]:
    """Panoptic segmentations of a store's annotations (see :func:`assemble_panoptic`), painted
    in :func:`paint_priority` order.

    Args:
        isthing: per label; labels not in it are things.
    Returns:
        ``(images, categories)`` for :func:`write_coco_panoptic`; image ids as in
        :func:`annotator.exporters.coco.to_coco`.
    """
    isthing = isthing or {}
    category_ids = dict(store.categories)
    images, used = [], {}
    for image_id, key in enumerate(sorted(store.images), start=1):  # images without annotations too: all void
        found = store.instances(key)
        found.isthing[:] = [isthing.get(c, True) for c in found.class_names]
        found.scores[:] = paint_priority(found)
        result = assemble_panoptic(found, overlap_threshold, min_area=1)
        images.append(from_result(image_id, key, result, category_ids))
        for seg in result.segments:
            used[seg.label] = (seg.category_id, seg.isthing)
    categories = [
        {"id": cid, "name": name, "isthing": int(thing), "supercategory": ""}
        for name, (cid, thing) in sorted(used.items(), key=lambda x: x[1][0])
    ]
    return images, categories


def export_coco_panoptic(store: AnnotationStore, out_json: str | Path, isthing: dict[str, bool] | None = None) -> Path:
    """Write a store as COCO panoptic (PNG folder beside the JSON); returns the JSON path."""
    images, categories = store_panoptic(store, isthing)
    return write_coco_panoptic(images, categories, out_json)
