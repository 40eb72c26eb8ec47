"""COCO panoptic format (https://cocodataset.org/#format-data, "Panoptic Segmentation").

One PNG per image whose RGB colour encodes the segment id (``id = R + 256·G + 256²·B``, 0 =
void), named by the image's path with ``/`` → ``__`` and ``.png`` (``~2``, ``~3``, ... where two
images would share a PNG: :func:`png_names`), and one JSON with ``images``, ``categories``
(with ``isthing``) and ``annotations``: per image ``file_name`` (the PNG), ``image_id`` and
``segments_info`` (``id``, ``category_id``, ``iscrowd``, ``area``, ``bbox`` XYWH).  Written
atomically (PNGs first, the JSON last, so a JSON never names a PNG that is not there); read back
by :func:`read_coco_panoptic`, and as a dataset by :func:`read` (one instance per segment).

A dataset's instances may overlap; a panoptic segmentation may not: :func:`dataset_panoptic`
paints them (:func:`annotator.everything.panoptic.assemble_panoptic`, :func:`paint_priority`
order), so what is read back is the painted segments, not the instances written where they
overlapped.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..everything.panoptic import PanopticResult, assemble_panoptic
from ..fileio import atomic_write_bytes, atomic_write_json
from ..instances import Instances, Source
from ..masks import encode_rle
from .coco import image_key
from .dataset import Dataset, ImageEntry, InMemoryDataset
from .errors import FormatReadError, Problem, Problems
from .format import Format
from .names import flat_names


class PanopticFormatError(FormatReadError):
    """A COCO panoptic JSON / PNG pair is malformed or inconsistent (a :class:`FormatReadError`:
    every problem as one line, file, record, reason).

    Args:
        problems: the problems, or one problem's text (``file`` then names its file).
    """

    def __init__(self, problems: list[Problem] | str, file: str | Path = "COCO panoptic"):
        super().__init__([Problem(str(file), "", problems)] if isinstance(problems, str) else problems)


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


def png_names(images: list[PanopticImage]) -> list[str]:
    """The PNG file names of the images, in their order: each image's path with ``/`` → ``__``
    and a ``.png`` suffix, told apart by ``~2``, ``~3``, ... where two would be the same file
    (``sub/a.jpg`` and ``sub__a.jpg``, ``a.jpg`` and ``a.png``; compared without case): see
    :func:`annotator.formats.names.flat_names`."""
    return flat_names([im.file_name for im in images], suffix=".png")


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
    for im, png_name in zip(images, png_names(images), strict=True):
        ids_in_map = set(np.unique(im.segment_map).tolist()) - {0}
        ids_in_json = {s["id"] for s in im.segments_info}
        if ids_in_map != ids_in_json:
            raise PanopticFormatError(
                f"image {im.file_name}: segment ids in the map and in segments_info differ", out_json
            )
        unknown = {s["category_id"] for s in im.segments_info} - known
        if unknown:
            raise PanopticFormatError(f"image {im.file_name}: unknown category ids {sorted(unknown)}", out_json)
        ok, png = cv2.imencode(".png", cv2.cvtColor(id_to_rgb(im.segment_map), cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode the PNG of {im.file_name}")
        atomic_write_bytes(png_dir / png_name, png.tobytes())
        annotations.append({"image_id": im.image_id, "file_name": png_name, "segments_info": im.segments_info})
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


def load_panoptic_json(json_path: str | Path) -> dict:
    """The parsed JSON of a COCO panoptic dataset, checked to have ``images`` and ``annotations``.

    Raises:
        PanopticFormatError: unreadable, not JSON, or not a COCO panoptic dict.
    """
    try:
        data = json.loads(Path(json_path).read_text(encoding="utf-8"))
        if not isinstance(data["images"], list) or not isinstance(data["annotations"], list):
            raise TypeError("images and annotations must be lists")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PanopticFormatError(f"not a COCO panoptic JSON ({exc})", json_path) from exc
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_coco_panoptic(json_path: str | Path, png_dir: str | Path | None = None) -> tuple[list[PanopticImage], dict]:
    """Read a COCO panoptic dataset (ours or COCO's own).

    Args:
        json_path: the JSON; ``png_dir`` defaults to it without ``.json``.
    Returns:
        ``(images, data)``: one :class:`PanopticImage` per annotation (``file_name`` = the
        image's, from ``images``), and the parsed JSON.
    Raises:
        PanopticFormatError: unreadable JSON, or every problem of its annotations, one line
            each (the JSON or PNG, ``annotation of image N``, reason): no ``image_id``,
            ``file_name`` or ``segments_info``, a PNG missing or unreadable, segment ids in a
            PNG and its ``segments_info`` that differ (both named), a repeated segment id.
    """
    json_path = Path(json_path)
    data = load_panoptic_json(json_path)
    with Problems() as problems:
        out = _read_annotations(json_path, data, png_dir, problems)
    return out, data


def _read_annotations(
    json_path: Path, data: dict, png_dir: str | Path | None, problems: Problems
) -> list[PanopticImage]:
    """The annotations of a parsed panoptic JSON with their PNGs, each problem added to
    ``problems`` (see :func:`read_coco_panoptic`)."""
    png_dir = Path(png_dir) if png_dir is not None else json_path.with_suffix("")
    names = {im["id"]: im["file_name"] for im in data["images"] if isinstance(im, dict) and "id" in im}
    out = []
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann:
            problems.add(json_path, f"annotation {k + 1} of the list", "no image_id")
            continue
        record = f"annotation of image {ann['image_id']}"
        infos = ann.get("segments_info")
        if not isinstance(ann.get("file_name"), str) or not isinstance(infos, list):
            problems.add(json_path, record, "a panoptic annotation needs a file_name and a segments_info list")
            continue
        if not all(isinstance(s, dict) and _is_int(s.get("id")) and s["id"] > 0 for s in infos):
            problems.add(json_path, record, "every segment needs a positive integer id")
            continue
        ids = [s["id"] for s in infos]
        if len(set(ids)) != len(ids):
            problems.add(json_path, record, "two segments have one id")
            continue
        png_path = png_dir / ann["file_name"]
        png = cv2.imread(str(png_path), cv2.IMREAD_COLOR) if png_path.is_file() else None
        if png is None:
            problems.add(png_path, record, "the PNG is missing or unreadable")
            continue
        seg_map = rgb_to_id(cv2.cvtColor(png, cv2.COLOR_BGR2RGB))
        in_map = set(np.unique(seg_map).tolist()) - {0}
        if in_map != set(ids):
            only_map, only_json = sorted(in_map - set(ids)), sorted(set(ids) - in_map)
            problems.add(
                png_path,
                record,
                f"segment ids in the PNG and in segments_info differ (only in the PNG: {only_map},"
                f" only in segments_info: {only_json})",
            )
            continue
        out.append(PanopticImage(ann["image_id"], names.get(ann["image_id"], ann["file_name"]), seg_map, infos))
    return out


def to_instances(image: PanopticImage, categories: dict[int, dict]) -> Instances:
    """One image's segments as instances, in ``segments_info`` order: mask = the segment's
    pixels, ``class_names`` / ``class_ids`` / ``isthing`` from its category, ``scores`` where
    given, ``data["segment_id"]`` (int64) and ``data["iscrowd"]`` (bool).

    Args:
        categories: category id → ``{"id", "name", "isthing", ...}``.
    Raises:
        KeyError: a segment of an unknown category.
    """
    infos = image.segments_info
    cats = [categories[int(s["category_id"])] for s in infos]
    return Instances(
        [encode_rle(image.segment_map == s["id"]) for s in infos],
        image_size=image.segment_map.shape,
        scores=[s.get("score") for s in infos],
        class_names=[str(c["name"]) for c in cats],
        class_ids=[int(c["id"]) for c in cats],
        isthing=[bool(c.get("isthing", 1)) for c in cats],
        source=Source.IMPORTED,
        data={
            "segment_id": np.array([int(s["id"]) for s in infos], dtype=np.int64),
            "iscrowd": np.array([bool(s.get("iscrowd", 0)) for s in infos], dtype=bool),
        },
    )


def read(json_path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a COCO panoptic dataset (PNG folder beside the JSON) as a dataset: every image of
    ``images`` under its ``file_name`` (an absolute one inside ``images_root`` made relative to
    it), one instance per segment (see :func:`to_instances`), every category of ``categories``.

    Raises:
        PanopticFormatError: (a :class:`~annotator.formats.errors.FormatReadError`) unreadable,
            or every problem, one line each: those of :func:`read_coco_panoptic`, a category
            without an integer id and a name (or two of one name), an image without id,
            file_name or size, an annotation of an unknown image, a segment of an unknown
            category, a PNG of another size than its image.
    """
    json_path = Path(json_path)
    data = load_panoptic_json(json_path)
    problems = Problems()
    images = _read_annotations(json_path, data, None, problems)
    categories: dict[int, dict] = {}
    for k, c in enumerate(data.get("categories") if isinstance(data.get("categories"), list) else []):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"]:
            problems.add(json_path, f"category {k + 1} of the list", "a category needs an integer id and a name")
        elif c["id"] in categories or c["name"] in {v["name"] for v in categories.values()}:
            problems.add(json_path, f"category {c['id']}", "two categories have this id or name")
        else:
            categories[c["id"]] = c
    if not isinstance(data.get("categories"), list):
        problems.add(json_path, "", "'categories' is not a list")
    entries: dict[int, ImageEntry] = {}
    for k, im in enumerate(data["images"]):
        ok = isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
        if not ok or not (_is_int(im.get("width")) and _is_int(im.get("height"))):
            problems.add(json_path, f"image {k + 1} of the list", "an image needs an id, a file_name, width and height")
        else:
            entries[im["id"]] = ImageEntry(image_key(im["file_name"], images_root), im["width"], im["height"])
    instances = {}
    for im in images:
        record = f"annotation of image {im.image_id}"
        entry = entries.get(im.image_id)
        if entry is None:
            problems.add(json_path, record, f"unknown image {im.image_id!r}")
            continue
        unknown = sorted({s.get("category_id") for s in im.segments_info} - set(categories), key=str)
        if unknown:
            problems.add(json_path, record, f"segments of unknown categories {unknown}")
            continue
        if im.segment_map.shape != (entry.height, entry.width):
            problems.add(
                json_path, record, f"PNG of {im.segment_map.shape} for an image of {(entry.height, entry.width)}"
            )
            continue
        instances[entry.key] = to_instances(im, categories)
    if problems:
        raise PanopticFormatError(problems.items)
    return InMemoryDataset(entries.values(), instances, {str(c["name"]): cid for cid, c in categories.items()})


def paint_priority(instances: Instances) -> np.ndarray:
    """(N,) paint order of stored annotations, higher first: a predicted label's score; the
    everything mode's unlabelled masks by predicted IoU; a person's own (clicked, boxed,
    merged, given a label) above every prediction, by predicted IoU."""
    iou = np.nan_to_num(instances.predicted_iou, nan=0.0)
    automatic = np.array([Source(s).automatic for s in instances.source], dtype=bool)
    own = np.where(automatic, iou, 1.0 + iou)
    return np.where(np.isnan(instances.scores), own, instances.scores)


def dataset_panoptic(
    dataset: Dataset, isthing: dict[str, bool] | None = None, overlap_threshold: float = 0.5
) -> tuple[list[PanopticImage], list[dict]]:
    """Panoptic segmentations of a dataset's instances (see :func:`assemble_panoptic`), painted
    in :func:`paint_priority` order.

    Args:
        isthing: per label; labels not in it are things.
    Returns:
        ``(images, categories)`` for :func:`write_coco_panoptic`; image ids as in
        :func:`annotator.formats.coco.to_coco`.
    """
    isthing = isthing or {}
    category_ids = dict(dataset.categories)
    images, used = [], {}
    for image_id, key in enumerate(sorted(dataset.images), start=1):  # images without annotations too: all void
        found = dataset.instances(key)
        found = found[np.arange(len(found))]  # its own columns: isthing and scores are rewritten here
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


def export_coco_panoptic(dataset: Dataset, out_json: str | Path, isthing: dict[str, bool] | None = None) -> Path:
    """Write a dataset as COCO panoptic (PNG folder beside the JSON); returns the JSON path."""
    images, categories = dataset_panoptic(dataset, isthing)
    return write_coco_panoptic(images, categories, out_json)


def write(dataset: Dataset, out: str | Path, isthing: dict[str, bool] | None = None) -> list[Path]:
    """The registry's writer: :func:`export_coco_panoptic`; returns the JSON, then the PNGs."""
    images, categories = dataset_panoptic(dataset, isthing)
    out_json = write_coco_panoptic(images, categories, out)
    return [out_json, *(out_json.with_suffix("") / name for name in png_names(images))]


FORMAT = Format(
    name="coco-panoptic",
    description="COCO panoptic JSON + PNG folder (instances painted without overlap)",
    write=write,
    read=read,
    options=("isthing",),
    suffix="_panoptic.json",
)
