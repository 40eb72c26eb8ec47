"""CVAT for images 1.1 XML (``annotations.xml``), written and read.

Written (:func:`to_cvat_xml`): ``<version>1.1</version>``; ``<meta><task>`` with the classes
(``<labels>``, in category id order, each declaring the ``annotation_id`` number attribute);
one ``<image id name width height>`` per image (every image, those without annotations too,
ids 0, 1, ... in key order; ``name`` the key) and in it one ``<mask>`` per instance, exact:
``rle`` CVAT's own run lengths over the mask's bounding-box crop (``left``, ``top``, ``width``,
``height``), row-major, starting with a run of background (0 when the crop's first pixel is
set), as CVAT's ``dump_as_cvat_annotation`` writes them; ``source`` ``file`` for imported
instances, ``auto`` for the everything mode's, ``manual`` for a person's; ``occluded`` 0,
``z_order`` 0; and ``<attribute name="annotation_id">`` (``data["annotation_id"]``, else 1, 2,
...), so export → read → export gives the same file.  Instances with empty masks are not
written.  Lost: scores, predicted IoU, category ids (the reader numbers the labels 1, 2, ... in
the file's order), provenance.

Read (:func:`read_cvat`): ``<mask>`` (exact), ``<polygon>`` (filled by pycocotools, as CVAT's
own COCO export turns its points into COCO polygons), ``<box>`` (a rectangle mask, pixels
``[xtl, xbr) × [ytl, ybr)`` rounded, turned by ``rotation`` degrees about its centre) and
``<ellipse>`` of ``<image>`` elements; ``polyline``, ``points``, ``cuboid``, ``skeleton`` and
``tag`` are no regions and are skipped.  The classes are ``meta``'s labels (a project's or a
task's) in their order, then those only the shapes name, ids 1, 2, ...; the ``annotation_id``
attribute (when every instance has a distinct one) becomes ``data["annotation_id"]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree import ElementTree as ET

import cv2
import numpy as np

from ..fileio import atomic_write_bytes
from ..instances import Instances, Source
from ..masks import encode_rle, polygons_to_mask
from .dataset import Dataset, ImageEntry, InMemoryDataset, annotation_ids
from .errors import Problems
from .format import Format
from .labelme import class_list

ID_ATTRIBUTE = "annotation_id"
REGION_TAGS = ("mask", "polygon", "box", "ellipse")
SKIPPED_TAGS = ("polyline", "points", "cuboid", "skeleton", "tag")


def mask_to_cvat_rle(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]] | None:
    """(H, W) bool → (CVAT run lengths, (left, top, width, height) of the crop), ``None`` for an
    empty mask.  Runs alternate background / foreground over the crop, row-major, the first
    being background (0 when the crop starts with a set pixel)."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    left, top, right, bottom = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    flat = np.ascontiguousarray(mask[top : bottom + 1, left : right + 1]).reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [len(flat)]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs], (left, top, right - left + 1, bottom - top + 1)


def cvat_rle_to_mask(
    runs: list[int], left: int, top: int, width: int, height: int, size: tuple[int, int]
) -> np.ndarray:
    """CVAT run lengths over a crop → (H, W) bool at the image's ``size`` (H, W).

    Raises:
        ValueError: runs that do not cover the crop exactly, a negative run, or a crop outside
            the image.
    """
    img_h, img_w = size
    if width <= 0 or height <= 0 or left < 0 or top < 0 or left + width > img_w or top + height > img_h:
        raise ValueError(f"mask crop {left},{top} {width}x{height} is not inside the {img_w}x{img_h} image")
    runs_arr = np.asarray(runs, dtype=np.int64)
    if (runs_arr < 0).any():
        raise ValueError("rle has a negative run")
    if int(runs_arr.sum()) != width * height:
        raise ValueError(f"rle covers {int(runs_arr.sum())} pixels, the {width}x{height} crop has {width * height}")
    values = np.arange(len(runs_arr)) % 2 == 1
    crop = np.repeat(values, runs_arr).reshape(height, width)
    mask = np.zeros(size, dtype=bool)
    mask[top : top + height, left : left + width] = crop
    return mask


def _source(value: object) -> str:
    source = Source(value)
    if source is Source.IMPORTED:
        return "file"
    return "auto" if source.automatic else "manual"


def to_cvat_xml(dataset: Dataset, name: str = "ovsam export") -> bytes:
    """The ``annotations.xml`` of a dataset (see the module doc), UTF-8 bytes.

    Args:
        name: the task's name in ``meta``.
    """
    images = dataset.images
    keys = sorted(images)
    per_image = {key: dataset.instances(key) for key in keys}
    ids = annotation_ids(per_image)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = name
    ET.SubElement(task, "size").text = str(len(keys))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for label in class_list(dataset):
        el = ET.SubElement(labels, "label")
        ET.SubElement(el, "name").text = label
        ET.SubElement(el, "type").text = "any"
        attr = ET.SubElement(ET.SubElement(el, "attributes"), "attribute")
        for tag, text in (("name", ID_ATTRIBUTE), ("mutable", "False"), ("input_type", "number")):
            ET.SubElement(attr, tag).text = text
        ET.SubElement(attr, "default_value").text = "0"
        ET.SubElement(attr, "values").text = f"0;{2**63 - 1};1"
    for image_id, key in enumerate(keys):
        image = images[key]
        el = ET.SubElement(
            root, "image", {"id": str(image_id), "name": key, "width": str(image.width), "height": str(image.height)}
        )
        found = per_image[key]
        for i in np.argsort(ids[key], kind="stable"):
            encoded = mask_to_cvat_rle(found.mask(int(i)))
            if encoded is None:
                continue
            runs, (left, top, width, height) = encoded
            shape = ET.SubElement(
                el,
                "mask",
                {
                    "label": str(found.class_names[i]),
                    "source": _source(found.source[i]),
                    "occluded": "0",
                    "rle": ", ".join(str(r) for r in runs),
                    "left": str(left),
                    "top": str(top),
                    "width": str(width),
                    "height": str(height),
                    "z_order": "0",
                },
            )
            ET.SubElement(shape, "attribute", {"name": ID_ATTRIBUTE}).text = str(int(ids[key][i]))
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def write(dataset: Dataset, out: str | Path) -> list[Path]:
    """The registry's writer: :func:`to_cvat_xml` to the file ``out``, atomically; returns
    ``[out]``."""
    return [atomic_write_bytes(out, to_cvat_xml(dataset))]


def _float(el: ET.Element, name: str) -> float:
    value = el.get(name)
    if value is None:
        raise ValueError(f"no {name}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} is {value}")
    return number


def _box_mask(el: ET.Element, size: tuple[int, int]) -> np.ndarray:
    xtl, ytl, xbr, ybr = (_float(el, n) for n in ("xtl", "ytl", "xbr", "ybr"))
    if xbr < xtl or ybr < ytl:
        raise ValueError(f"box corners {xtl},{ytl} {xbr},{ybr} are not top-left, bottom-right")
    rotation = float(el.get("rotation") or 0.0)
    mask = np.zeros(size, dtype=bool)
    if rotation == 0.0:
        x0, y0 = max(round(xtl), 0), max(round(ytl), 0)
        mask[y0 : max(round(ybr), y0), x0 : max(round(xbr), x0)] = True
        return mask
    cx, cy, t = (xtl + xbr) / 2, (ytl + ybr) / 2, math.radians(rotation)
    corners = []
    for x, y in ((xtl, ytl), (xbr, ytl), (xbr, ybr), (xtl, ybr)):
        dx, dy = x - cx, y - cy
        corners += [cx + dx * math.cos(t) - dy * math.sin(t), cy + dx * math.sin(t) + dy * math.cos(t)]
    return polygons_to_mask([corners], *size)


def _ellipse_mask(el: ET.Element, size: tuple[int, int]) -> np.ndarray:
    cx, cy, rx, ry = (_float(el, n) for n in ("cx", "cy", "rx", "ry"))
    out = np.zeros(size, dtype=np.uint8)
    angle = float(el.get("rotation") or 0.0)
    cv2.ellipse(out, (round(cx), round(cy)), (max(round(rx), 0), max(round(ry), 0)), angle, 0, 360, 1, -1)
    return out.astype(bool)


def _shape_mask(el: ET.Element, size: tuple[int, int]) -> np.ndarray:
    """One region element's (H, W) bool mask.

    Raises:
        ValueError: malformed attributes.
    """
    if el.tag == "mask":
        rle = el.get("rle")
        if rle is None:
            raise ValueError("no rle")
        runs = [int(v) for v in rle.replace(",", " ").split()]
        left, top, width, height = (int(_float(el, n)) for n in ("left", "top", "width", "height"))
        return cvat_rle_to_mask(runs, left, top, width, height, size)
    if el.tag == "polygon":
        pairs = [p.split(",") for p in (el.get("points") or "").split(";") if p.strip()]
        if len(pairs) < 3 or any(len(p) != 2 for p in pairs):
            raise ValueError("points must be 3 or more 'x,y' pairs separated by ';'")
        flat = [float(v) for p in pairs for v in p]
        if not all(math.isfinite(v) for v in flat):
            raise ValueError("points are not finite numbers")
        return polygons_to_mask([flat], *size)
    if el.tag == "box":
        return _box_mask(el, size)
    return _ellipse_mask(el, size)


def read_cvat(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a CVAT for images 1.1 XML (see the module doc).

    Args:
        path: ``annotations.xml`` (or a folder holding it).
        images_root: not needed (the XML has the images' names and sizes); ignored.
    Returns:
        Every ``<image>`` under its ``name``, its regions as RLE instances (source
        :attr:`~annotator.instances.Source.IMPORTED`) in the file's order.
    Raises:
        FormatReadError: every problem (file, image / shape, reason); nothing is returned.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.xml"
    with Problems() as problems:
        try:
            root = ET.parse(path).getroot()
            if root.tag != "annotations":
                raise ValueError(f"the root element is <{root.tag}>, not <annotations>")
        except (OSError, ET.ParseError, ValueError) as exc:
            problems.add(path, "", f"not a CVAT XML ({exc})")
            root = None
    assert root is not None
    names = [n.text.strip() for n in root.findall("./meta//labels/label/name") if n.text and n.text.strip()]
    names = list(dict.fromkeys(names))
    parsed = []
    with Problems() as problems:
        seen: set[str] = set()
        if root.find("track") is not None:
            problems.add(path, "track", "tracks are CVAT for video; export the task as CVAT for images")
        for n, image in enumerate(root.iter("image")):
            key = image.get("name")
            record = f"image {key or n}"
            try:
                width, height = int(image.get("width", "")), int(image.get("height", ""))
                if not key or width <= 0 or height <= 0:
                    raise ValueError("needs a name and a positive width and height")
            except ValueError as exc:
                problems.add(path, record, str(exc) if "needs" in str(exc) else "width / height are not integers")
                continue
            if key in seen:
                problems.add(path, record, "a second <image> of this name")
            seen.add(key)
            regions = []
            for k, el in enumerate(image):
                if el.tag not in REGION_TAGS:
                    continue
                where = f"{record}, <{el.tag}> {k}"
                try:
                    label = el.get("label")
                    if not label:
                        raise ValueError("no label")
                    ann_id = None
                    for attr in el.findall("attribute"):
                        if attr.get("name") == ID_ATTRIBUTE:
                            ann_id = int((attr.text or "").strip())
                    regions.append((label, ann_id, _shape_mask(el, (height, width))))
                except ValueError as exc:
                    problems.add(path, where, str(exc))
            parsed.append((ImageEntry(key, width, height), regions))
    for _, regions in parsed:
        names += [label for label, _, _ in regions if label not in names]
    categories = {name: i + 1 for i, name in enumerate(names)}
    all_ids = [a for _, regions in parsed for _, a, _ in regions]
    keep_ids = None not in all_ids and len(set(all_ids)) == len(all_ids)
    per_image = {}
    for image, regions in parsed:
        data = {"annotation_id": np.array([a for _, a, _ in regions], dtype=np.int64)} if keep_ids else {}
        per_image[image.key] = Instances(
            [encode_rle(m) for _, _, m in regions],
            image_size=(image.height, image.width),
            class_names=[label for label, _, _ in regions],
            class_ids=[categories[label] for label, _, _ in regions],
            source=Source.IMPORTED,
            data=data,
        )
    return InMemoryDataset([image for image, _ in parsed], per_image, categories)


FORMAT = Format(
    name="cvat",
    description="CVAT for images 1.1 XML (masks exact)",
    write=write,
    read=read_cvat,
    options=(),
    suffix="_cvat.xml",
    category_ids=False,
)

__all__ = ["FORMAT", "cvat_rle_to_mask", "mask_to_cvat_rle", "read_cvat", "to_cvat_xml", "write"]
