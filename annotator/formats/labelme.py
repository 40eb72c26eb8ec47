"""LabelMe JSON (labelme 5.x), written and read: one ``<stem>.json`` per image in a folder.

Each file: ``version``, ``flags`` ``{}``, ``shapes``, ``imagePath`` (the image relative to the
JSON: ``../photos/a.jpg`` when the image folder is known, else its file name, as when the JSON
sits beside the image), ``imageData`` ``null``, ``imageHeight``, ``imageWidth``.  A key
``sub/a.jpg`` is written to ``sub/a.json``; two images of one stem in a folder (``a.jpg``,
``a.png``) get ``a.json`` and ``a~2.json`` (:func:`annotator.formats.names.flat_names`).  The
folder also gets ``labels.txt`` (``__ignore__``, ``_background_``, then the classes in category
id order, as labelme's own examples have it), which the reader takes as the class list.

Written (``shape_type``):

- ``mask`` (default, exact): one ``mask`` shape per instance (labelme ≥ 5.3): ``mask`` is a
  base64 1-bit PNG of the mask's bounding-box crop, ``points`` the crop's corners
  ``[[x1, y1], [x2, y2]]``, inclusive pixels (labelme pastes it into ``[y1:y2+1, x1:x2+1]``).
- ``polygon``: each part of a mask is one ``polygon`` shape, the parts of one instance sharing
  its ``group_id`` (how LabelMe keeps a multi-part object); vertices run through the boundary
  pixels' centres, which labelme fills with PIL's ``ImageDraw.polygon`` (outline included).
  Holes are spliced into their part with zero-width cuts (:func:`annotator.masks.mask_to_polygons`),
  so they are kept except for the one-pixel line of each cut; a part of one or two pixels is a
  polygon of 3 points with the last repeated.  Masks come back close to (IoU > 0.95), not equal
  to, those written.

Every shape's ``group_id`` is the instance's annotation id (``data["annotation_id"]``, else 1,
2, ...), so ids survive a round trip and export → read → export gives the same files.
Instances with empty masks are not written.  Lost: scores, predicted IoU, category ids (the
reader numbers ``labels.txt``'s classes 1, 2, ...), provenance.

Read (:func:`read_labelme`): ``polygon``, ``rectangle``, ``circle`` and ``mask`` shapes, filled
as labelme's ``shape_to_mask`` fills them; shapes of one label and ``group_id`` are one
instance (their union), with the ``group_id`` as ``data["annotation_id"]`` when every instance
has a distinct one.  ``line``, ``linestrip`` and ``point`` shapes are no regions and are skipped.
Classes: ``labels.txt`` beside the files when there is one (line order, ``__ignore__`` and
``_background_`` left out), else in order of first use through the files (sorted by path).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import atomic_write_bytes, atomic_write_json
from ..instances import Instances, Source
from ..masks import encode_rle, mask_to_polygons
from .dataset import Dataset, ImageEntry, InMemoryDataset, annotation_ids
from .errors import Problems
from .format import Format
from .names import flat_names

VERSION = "5.5.0"
SHAPE_TYPES = ("mask", "polygon")
REGION_SHAPES = ("polygon", "rectangle", "circle", "mask")
SKIPPED_SHAPES = ("line", "linestrip", "point", "points")
LABELS_FILE = "labels.txt"
_SPECIAL_LABELS = ("__ignore__", "_background_")


def json_names(keys: list[str]) -> dict[str, str]:
    """Each image key → its JSON's path in the export folder: the key with ``.json``
    (``sub/a.jpg`` → ``sub/a.json``), ``~2``, ... where two images of a folder share a stem."""
    by_folder: dict[str, list[str]] = {}
    for key in keys:
        by_folder.setdefault(str(PurePosixPath(key).parent), []).append(key)
    out = {}
    for folder, members in by_folder.items():
        names = flat_names([PurePosixPath(k).name for k in members], suffix=".json")
        for key, name in zip(members, names, strict=True):
            out[key] = name if folder == "." else f"{folder}/{name}"
    return out


def mask_b64(crop: np.ndarray) -> str:
    """A bool crop as labelme's ``mask``: base64 of a 1-bit PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop, dtype=bool)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def b64_mask(text: str) -> np.ndarray:
    """labelme's ``mask`` (base64 PNG, any mode) → (h, w) bool (non-zero pixels).

    Raises:
        ValueError: not base64 of an image.
    """
    try:
        with Image.open(io.BytesIO(base64.b64decode(text, validate=True))) as img:
            arr = np.asarray(img)
    except Exception as exc:  # binascii.Error, PIL.UnidentifiedImageError, ...
        raise ValueError(f"mask is not a base64 PNG ({exc})") from exc
    return (arr.reshape(arr.shape[0], arr.shape[1], -1) != 0).any(axis=2)


def _shapes(found: Instances, i: int, ann_id: int, shape_type: str) -> list[dict]:
    mask = found.mask(i)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return []
    common = {"label": str(found.class_names[i]), "group_id": int(ann_id), "description": "", "flags": {}}
    if shape_type == "mask":
        x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
        crop = mask[y1 : y2 + 1, x1 : x2 + 1]
        return [
            {
                **common,
                "points": [[float(x1), float(y1)], [float(x2), float(y2)]],
                "shape_type": "mask",
                "mask": mask_b64(crop),
            }
        ]
    shapes = []
    for poly in mask_to_polygons(mask, pixel_edges=False):
        points = [[x, y] for x, y in zip(poly[::2], poly[1::2], strict=True)]
        points += [points[-1]] * (3 - len(points))  # a 1- or 2-pixel part: PIL paints the degenerate outline
        shapes.append({**common, "points": points, "shape_type": "polygon", "mask": None})
    return shapes


def to_labelme(
    dataset: Dataset, images_root: str | Path | None = None, out: str | Path | None = None, shape_type: str = "mask"
) -> dict[str, dict]:
    """The LabelMe JSON of every image of a dataset.

    Args:
        images_root, out: the image folder and the export folder; with both, ``imagePath`` is
            the image relative to its JSON, else the image's file name.
        shape_type: ``mask`` (exact) or ``polygon`` (see the module doc).
    Returns:
        JSON path in the export folder (see :func:`json_names`) → its dict.
    Raises:
        ValueError: unknown ``shape_type``.
    """
    if shape_type not in SHAPE_TYPES:
        raise ValueError(f"shape_type must be one of {SHAPE_TYPES}, not {shape_type!r}")
    images = dataset.images
    keys = sorted(images)
    per_image = {key: dataset.instances(key) for key in keys}
    ids = annotation_ids(per_image)
    out_files = {}
    for key, name in json_names(keys).items():
        found = per_image[key]
        order = np.argsort(ids[key], kind="stable")
        shapes = [s for i in order for s in _shapes(found, int(i), int(ids[key][i]), shape_type)]
        if images_root is not None and out is not None:
            json_dir = (Path(out) / name).parent
            image_path = Path(os.path.relpath(Path(images_root).resolve() / key, json_dir.resolve())).as_posix()
        else:
            image_path = PurePosixPath(key).name
        out_files[name] = {
            "version": VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": image_path,
            "imageData": None,
            "imageHeight": int(images[key].height),
            "imageWidth": int(images[key].width),
        }
    return out_files


def class_list(dataset: Dataset) -> list[str]:
    """The class names of a dataset in category id order (those declared included)."""
    cats = dict(dataset.declared_categories())
    for key in dataset.images:
        found = dataset.instances(key)
        cats.update(zip((str(n) for n in found.class_names), (int(c) for c in found.class_ids), strict=True))
    return [name for name, _ in sorted(cats.items(), key=lambda x: (x[1], x[0]))]


def write(
    dataset: Dataset, out: str | Path, images_root: str | Path | None = None, shape_type: str = "mask"
) -> list[Path]:
    """The registry's writer: a LabelMe JSON per image into the folder ``out`` (see the module
    doc), each atomically, and ``labels.txt``; returns ``labels.txt``, then the JSONs (key order).

    Raises:
        ValueError: unknown ``shape_type``.
    """
    out = Path(out)
    files = to_labelme(dataset, images_root, out, shape_type)
    labels = "".join(f"{n}\n" for n in (*_SPECIAL_LABELS, *class_list(dataset)))
    written = [atomic_write_bytes(out / LABELS_FILE, labels.encode("utf-8"))]
    for name, data in files.items():
        written.append(atomic_write_json(out / name, data, indent=2))
    return written


def _fill(shape_type: str, points: np.ndarray, height: int, width: int) -> np.ndarray:
    """A shape's pixels as labelme's ``shape_to_mask`` fills them (PIL, outline included)."""
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    xy = [tuple(map(float, p)) for p in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif shape_type == "rectangle":
        (x1, y1), (x2, y2) = xy
        draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=1, fill=1)
    else:
        draw.polygon(xy, outline=1, fill=1)
    return np.asarray(img, dtype=bool)


def _shape_mask(shape: dict, height: int, width: int) -> np.ndarray:
    """One region shape's (H, W) bool mask.

    Raises:
        ValueError, TypeError, KeyError: malformed shape.
    """
    kind = shape.get("shape_type") or "polygon"
    points = np.asarray(shape["points"], dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise ValueError("points must be [[x, y], ...] numbers")
    need = {"polygon": 3, "rectangle": 2, "circle": 2, "mask": 2}[kind]
    if (kind == "polygon" and len(points) < need) or (kind != "polygon" and len(points) != need):
        raise ValueError(f"a {kind} needs {'3 or more' if kind == 'polygon' else need} points, has {len(points)}")
    if kind != "mask":
        return _fill(kind, points, height, width)
    crop = b64_mask(shape.get("mask") or "")
    (x1, y1), (x2, y2) = np.round(points).astype(int)
    if (y2 - y1 + 1, x2 - x1 + 1) != crop.shape:
        raise ValueError(f"mask of {crop.shape[1]}x{crop.shape[0]} for corners {x1},{y1} {x2},{y2}")
    if x1 < 0 or y1 < 0 or x2 >= width or y2 >= height:
        raise ValueError(f"mask corners {x1},{y1} {x2},{y2} outside the {width}x{height} image")
    mask = np.zeros((height, width), dtype=bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = crop
    return mask


def _key_of(json_path: Path, root: Path, image_path: str, images_root: Path | None) -> str:
    """The image key of a JSON: its image relative to ``images_root`` when it lies there, else
    the JSON's folder under ``root`` + the image's file name."""
    if images_root is not None:
        target = (json_path.parent / image_path).resolve()
        try:
            return target.relative_to(Path(images_root).resolve()).as_posix()
        except ValueError:
            pass
    folder = json_path.parent.relative_to(root).as_posix()
    name = PurePosixPath(image_path.replace("\\", "/")).name
    return name if folder == "." else f"{folder}/{name}"


def read_labelme(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a folder of LabelMe JSON files (ours or labelme's; see the module doc).

    Args:
        path: the folder (read recursively), its ``labels.txt``, or one JSON file.
        images_root: the image folder; keys are the images' paths under it where ``imagePath``
            points into it, else the JSON's folder + the image's file name.
    Returns:
        One image per JSON (size from ``imageHeight`` / ``imageWidth``), its regions as RLE
        instances (source :attr:`~annotator.instances.Source.IMPORTED`).
    Raises:
        FormatReadError: every problem of every file (file, shape, reason); nothing is returned.
    """
    path = Path(path)
    if path.name == LABELS_FILE and path.is_file():  # the export's main file: its folder
        path = path.parent
    root = path.parent if path.is_file() else path
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.json") if p.is_file())
    labels_file = root / LABELS_FILE
    names: list[str] = []
    with Problems() as problems:
        if not files:
            problems.add(path, "", "no LabelMe .json file found")
        if labels_file.is_file():
            names = [
                line.strip()
                for line in labels_file.read_text(encoding="utf-8").splitlines()
                if line.strip() and line.strip() not in _SPECIAL_LABELS
            ]
        parsed = []
        for file in files:
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
                height, width = int(data["imageHeight"]), int(data["imageWidth"])
                shapes = data["shapes"]
                image_path = str(data["imagePath"])
                if height <= 0 or width <= 0 or not isinstance(shapes, list):
                    raise ValueError("imageHeight / imageWidth must be positive and shapes a list")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.add(file, "", f"not a LabelMe JSON ({type(exc).__name__}: {exc})")
                continue
            regions = []
            for k, shape in enumerate(shapes):
                record = f"shape {k}"
                try:
                    kind = shape.get("shape_type") or "polygon"
                    if kind in SKIPPED_SHAPES:
                        continue
                    if kind not in REGION_SHAPES:
                        raise ValueError(f"unknown shape_type {kind!r}")
                    label = shape["label"]
                    if not isinstance(label, str) or not label:
                        raise ValueError("label must be a non-empty string")
                    group = shape.get("group_id")
                    if group is not None and not isinstance(group, int):
                        raise ValueError(f"group_id must be an integer or null, not {group!r}")
                    regions.append((label, group, _shape_mask(shape, height, width)))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    problems.add(file, record, str(exc))
            parsed.append((file, _key_of(file, root, image_path, images_root), height, width, regions))
        keys = [p[1] for p in parsed]
        for key in sorted(k for k, n in Counter(keys).items() if n > 1):
            problems.add(root, "", f"two files are of one image {key!r}")
    for _, _, _, _, regions in parsed:
        for label, _, _ in regions:
            if label not in names:
                names.append(label)
    categories = {name: i + 1 for i, name in enumerate(names)}
    images, per_image = [], {}
    for _, key, height, width, regions in parsed:
        groups: dict[tuple, np.ndarray] = {}
        for n, (label, group, mask) in enumerate(regions):
            gkey = (label, group if group is not None else ("single", n))
            groups[gkey] = groups[gkey] | mask if gkey in groups else mask
        labels = [g[0] for g in groups]
        per_image[key] = Instances(
            [encode_rle(m) for m in groups.values()],
            image_size=(height, width),
            class_names=labels,
            class_ids=[categories[n] for n in labels],
            source=Source.IMPORTED,
            data={"annotation_id": np.array([g[1] if isinstance(g[1], int) else -1 for g in groups], dtype=np.int64)},
        )
        images.append(ImageEntry(key, width, height))
    all_ids = np.concatenate([f.data["annotation_id"] for f in per_image.values()] or [np.zeros(0, np.int64)])
    if (all_ids < 0).any() or len(np.unique(all_ids)) != len(all_ids):
        for found in per_image.values():
            del found.data["annotation_id"]
    return InMemoryDataset(images, per_image, categories)


FORMAT = Format(
    name="labelme",
    description="LabelMe JSON, one per image (masks exact, or polygons)",
    write=write,
    read=read_labelme,
    options=("images_root", "shape_type"),
    suffix="_labelme",
    option_suffixes=(("shape_type", "polygon", "_labelme_polygons"),),
    category_ids=False,
)

__all__ = ["FORMAT", "b64_mask", "class_list", "json_names", "mask_b64", "read_labelme", "to_labelme", "write"]
