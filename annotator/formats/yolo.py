"""YOLO datasets (the Ultralytics format): segmentation and detection, written and read.

Written (:func:`export_yolo`):

- ``<out>/images/<name>``: the images, as symbolic links *relative* to the link's folder
  (``images="link"``, the default; copies where links are not possible) or copies
  (``images="copy"``), ``<name>`` being the image's path in the folder with ``/`` → ``__``,
  told apart by ``~2``, ``~3``, ... where two images would share a name or a stem (see
  :func:`annotator.formats.names.flat_names`: ``sub/a.jpg`` and ``sub__a.jpg`` →
  ``sub__a~2.jpg`` and ``sub__a.jpg``, ``a.jpg`` and ``a.png`` → ``a.jpg`` and ``a~2.png``);
- ``<out>/labels/<name with .txt>``: one line per instance, normalised to [0, 1] by the image
  width and height: ``class x1 y1 x2 y2 ...`` (``task="segment"``, the default) or ``class cx
  cy w h`` (``task="detect"``, the mask's tight box);
- with ``val_fraction`` > 0, a seeded split (``seed``; the same images and seed give the same
  split): ``images/train``, ``images/val``, ``labels/train``, ``labels/val``;
- ``<out>/data.yaml``: ``train`` / ``val`` (relative: ``images/train`` and ``images/val``, or
  both ``images`` without a split, which the file says in a comment), ``nc`` and ``names``
  (class index → name, in category id order), and no ``path``, which Ultralytics then takes
  to be the folder of ``data.yaml`` (a relative ``path``, even ``.``, would be resolved against
  its ``DATASETS_DIR`` or the working folder instead).  So the dataset is portable: copied
  (``images="copy"``) or moved together with the image folder (links), it still reads.  Files
  of an earlier export in ``images/`` and ``labels/`` that this one does not write are removed
  (Ultralytics reads ``images/`` recursively).

Polygons: vertices run through boundary-pixel centres, the convention of readers that fill with
``cv2.fillPoly``, simplified by ``cv2.approxPolyDP`` with ``tolerance`` pixels (default 0.5; 0
keeps every pixel step) per contour, outer boundaries and holes alike, so that no part and no
hole is lost however small (see :func:`annotator.masks.mask_to_polygons`).  The format has no
holes and one polygon per line: a mask with holes or several parts becomes one polygon, holes
spliced in with zero-width cuts and parts joined by zero-width bridges between closest vertices,
run there and back (:func:`annotator.masks.join_loops`; Ultralytics' own converter does the
same), so every line stays one instance and a reader filling it leaves the holes empty and
nothing between the parts (the cuts and bridges add only their one-pixel-wide lines).  On the 815 instances of the 80
COCO photos of ``coco_tiny_val`` (points and label bytes per photo, largest / mean; mask IoU of
the filled polygon against the mask, mean):

=========  ================  ==================  ========
tolerance  points / photo    bytes / photo       mean IoU
=========  ================  ==================  ========
0          11,285 / 3,431    203,216 / 61,785    0.998
0.5        2,443 / 725       44,026 / 13,065     0.991
1.0        844 / 199         15,244 / 3,605      0.963
=========  ================  ==================  ========

Read back (:func:`read_yolo`) as Ultralytics and supervision read it: a line of ``class cx cy
w h`` (5 values, 6 with a confidence) is a box, ``class x1 y1 ...`` (odd count of 7 or more, one
more with a confidence) a polygon filled with ``cv2.fillPoly`` at the image's size; classes from
``data.yaml``'s ``names``.  The format keeps less than a store: class index only (it becomes the
category id), no annotation id, polygons, not masks (masks come back close to, not equal to,
those written), boxes as rectangles.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from ..fileio import atomic_write_bytes
from ..images import list_images
from ..instances import Instances, Source
from ..masks import encode_rle, join_loops, mask_to_polygons
from .dataset import Dataset, ImageEntry, InMemoryDataset
from .errors import FormatReadError, Problems
from .format import Format
from .names import flat_name as flat_name  # re-exported: the plain name, as before
from .names import flat_names


def chain_polygons(polygons: list[list[float]]) -> list[float]:
    """Join flat ``[x1, y1, x2, y2, ...]`` polygons (a mask's parts) into one by zero-width
    bridges, each run there and back between closest vertices
    (:func:`annotator.masks.join_loops`), so that a reader filling the line gets every part and
    no area between them."""
    return join_loops(polygons)


def file_names(dataset: Dataset) -> dict[str, str]:
    """Each image key → its file name under ``images/`` (flat, since not every YOLO reader
    searches sub-folders, and collision-free: :func:`annotator.formats.names.flat_names`); its
    label file is the same stem with ``.txt`` under ``labels/``."""
    keys = sorted(dataset.images)
    return dict(zip(keys, flat_names(keys), strict=True))


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` → ``src`` as a relative symbolic link (from the real folder of ``dst`` to ``src``
    in its real folder, so it resolves wherever both are moved together); a copy where a link is
    not possible (no symlink permission, another drive on Windows)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        target = os.path.relpath(os.path.join(os.path.realpath(src.parent), src.name), os.path.realpath(dst.parent))
        os.symlink(target, dst)
    except (OSError, ValueError):
        shutil.copy2(src, dst)


IMAGE_MODES = ("link", "copy")
TASKS = ("segment", "detect")
NO_SPLIT_NOTE = "# no train/val split: val is the training images (export with a val fraction to hold some out)\n"


def split_keys(keys, val_fraction: float = 0.0, seed: int = 0) -> dict[str, str]:
    """Each image key → ``"train"`` or ``"val"``: ``round(val_fraction · N)`` images (at least
    one where ``val_fraction`` > 0, and one left to train where N > 1) drawn by a
    ``numpy`` generator of ``seed`` from the sorted keys, so the split depends only on the set
    of keys and the seed.

    Raises:
        ValueError: ``val_fraction`` outside [0, 1).
    """
    keys = sorted(keys)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction!r}")
    n_val = 0
    if val_fraction > 0 and keys:
        n_val = min(max(1, round(val_fraction * len(keys))), max(len(keys) - 1, 1) if len(keys) > 1 else 1)
    order = np.random.default_rng(int(seed)).permutation(len(keys))
    val = {keys[i] for i in order[:n_val]}
    return {k: "val" if k in val else "train" for k in keys}


def _layout(dataset: Dataset, out_dir: Path, val_fraction: float, seed: int) -> dict[str, tuple[Path, Path]]:
    """Image key → (its image path, its label path) in the export."""
    names = file_names(dataset)
    split = split_keys(names, val_fraction, seed) if val_fraction else {}
    out = {}
    for key, flat in names.items():
        sub = split.get(key, "")
        image = out_dir / "images" / sub / flat
        out[key] = (image, (out_dir / "labels" / sub / flat).with_suffix(".txt"))
    return out


def instance_lines(found: Instances, task: str = "segment", tolerance: float = 0.5) -> list[tuple[int, str]]:
    """The coordinates of one image's label lines, without the class index: ``x1 y1 ...``
    (a polygon, see the module doc) or ``cx cy w h`` (the box), normalised, 6 decimals.

    Returns:
        ``(i, coordinates text)`` per instance ``i`` of ``found`` that has pixels, in order.
    """
    height, width = found.image_size
    lines = []
    for i in range(len(found)):
        if task == "detect":
            x0, y0, x1, y1 = (float(v) for v in found.boxes[i])
            if x1 <= x0 or y1 <= y0:
                continue
            values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
        else:
            polys = mask_to_polygons(found.mask(i), pixel_edges=False, tolerance=tolerance)  # cv2.fillPoly readers
            if not polys:
                continue
            flat = chain_polygons(polys)
            values = [v / (width if j % 2 == 0 else height) for j, v in enumerate(flat)]
        lines.append((i, " ".join(f"{min(max(v, 0.0), 1.0):.6f}" for v in values)))
    return lines


def _categories(dataset: Dataset, per_image: dict) -> dict[str, int]:
    """Class name → YOLO class index (0, 1, ... in category id order), declared ones included."""
    cats = sorted(
        {(int(c), str(n)) for f in per_image.values() for c, n in zip(f.class_ids, f.class_names, strict=True)}
        | {(c, n) for n, c in dataset.declared_categories().items()}
    )
    return {label: i for i, (_, label) in enumerate(cats)}


def _remove_stale(out_dir: Path, keep: set[Path]) -> None:
    """Remove the files under ``out_dir/images`` and ``out_dir/labels`` not in ``keep`` (an
    earlier export's), then their empty folders."""
    for sub in ("images", "labels"):
        top = out_dir / sub
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_symlink() or path.is_file():
                if path not in keep:
                    path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def export_yolo(
    dataset: Dataset,
    images_root: str | Path,
    out_dir: str | Path,
    images: str = "link",
    val_fraction: float = 0.0,
    seed: int = 0,
    task: str = "segment",
    tolerance: float = 0.5,
) -> Path:
    """Write a dataset as a YOLO dataset (see the module doc).

    Args:
        images_root: the folder the dataset's image keys are relative to.
        out_dir: dataset folder (created).
        images: ``link`` (relative symbolic links, copies where links fail) or ``copy``.
        val_fraction: the share of images held out as ``val`` (0: no split).
        seed: the split's seed.
        task: ``segment`` (polygons) or ``detect`` (boxes).
        tolerance: polygon simplification in pixels (0: none).
    Returns:
        The ``data.yaml`` path.
    Raises:
        FileNotFoundError: an image is missing under ``images_root``.
        ValueError: an unknown ``images`` or ``task``, ``val_fraction`` outside [0, 1), a
            negative ``tolerance``.
    """
    return _export(dataset, images_root, out_dir, images, val_fraction, seed, task, tolerance)[0]


def _export(dataset, images_root, out_dir, images, val_fraction, seed, task, tolerance) -> list[Path]:
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, not {images!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if not float(tolerance) >= 0:
        raise ValueError(f"tolerance must be 0 or more pixels, not {tolerance!r}")
    images_root, out_dir = Path(images_root), Path(out_dir)
    layout = _layout(dataset, out_dir, float(val_fraction), int(seed))
    missing = [key for key in layout if not (images_root / key).is_file()]
    if missing:
        raise FileNotFoundError(f"{images_root / missing[0]}: annotated image not found under {images_root}")
    per_image = {key: dataset.instances(key) for key in layout}
    index = _categories(dataset, per_image)
    written = [out_dir / "data.yaml"]
    for key, (image_path, label_path) in layout.items():
        found = per_image[key]
        lines = [f"{index[found.class_names[i]]} {coords}\n" for i, coords in instance_lines(found, task, tolerance)]
        if images == "link":
            _link_or_copy(images_root / key, image_path)
        else:
            image_path.parent.mkdir(parents=True, exist_ok=True)
            if image_path.is_symlink():
                image_path.unlink()
            shutil.copy2(images_root / key, image_path)
        atomic_write_bytes(label_path, "".join(lines).encode())
        written += [image_path, label_path]
    _remove_stale(out_dir, set(written))
    split = bool(val_fraction)
    data = {  # no "path": Ultralytics takes the folder of data.yaml (see the module doc)
        "train": "images/train" if split else "images",
        "val": "images/val" if split else "images",
        "nc": len(index),
        "names": {i: label for label, i in index.items()},
    }
    text = ("" if split else NO_SPLIT_NOTE) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    atomic_write_bytes(out_dir / "data.yaml", text.encode("utf-8"))
    return written


def written_files(dataset: Dataset, out_dir: str | Path, val_fraction: float = 0.0, seed: int = 0) -> list[Path]:
    """The files :func:`export_yolo` writes for a dataset: ``data.yaml``, then per image (key
    order) its image and its label file."""
    files = [Path(out_dir) / "data.yaml"]
    for image_path, label_path in _layout(dataset, Path(out_dir), float(val_fraction), int(seed)).values():
        files += [image_path, label_path]
    return files


def write(
    dataset: Dataset,
    out: str | Path,
    images_root: str | Path,
    images: str = "link",
    val_fraction: float = 0.0,
    seed: int = 0,
    task: str = "segment",
    tolerance: float = 0.5,
) -> list[Path]:
    """The registry's writer: :func:`export_yolo` into the folder ``out``; returns ``data.yaml``,
    then each image (link or copy) and label file."""
    return _export(dataset, images_root, out, images, val_fraction, seed, task, tolerance)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, upright (EXIF orientation applied, as the annotator
    loads images), from its header."""
    with Image.open(path) as img:
        orientation = img.getexif().get(0x0112, 1)
        width, height = img.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def parse_label_line(line: str, width: int, height: int) -> tuple[int, np.ndarray]:
    """One polygon label line ``class x1 y1 x2 y2 ...`` (normalised) → (class index, (H, W)
    bool mask of the polygon filled by ``cv2.fillPoly``, vertices rounded to pixels).

    Raises:
        ValueError: not a class index and an even number (≥ 6) of coordinates.
    """
    fields = line.split()
    coords = np.asarray([float(v) for v in fields[1:]], dtype=np.float64)
    if len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"a polygon needs 3 or more x y pairs: {line[:60]!r}")
    return int(fields[0]), _polygon_mask(coords, width, height)


def _polygon_mask(coords: np.ndarray, width: int, height: int) -> np.ndarray:
    points = np.round(coords.reshape(-1, 2) * [width, height]).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def box_mask(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) bool rectangle of the pixels of an XYXY box (pixels, exclusive max), its edges
    rounded to whole pixels."""
    x0, y0, x1, y1 = (int(np.round(v)) for v in box)
    mask = np.zeros((height, width), bool)
    mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def parse_line(line: str, width: int, height: int) -> tuple[int, np.ndarray, np.ndarray | None, float | None]:
    """One label line of a segmentation or detection dataset.

    ``class cx cy w h`` (5 values) or with a confidence (6, Ultralytics' ``save_conf``) is a
    box; ``class x1 y1 x2 y2 x3 y3 ...`` (an odd count ≥ 7) or with a confidence (even ≥ 8) a
    polygon.  Coordinates are normalised to [0, 1].

    Returns:
        ``(class index, (H, W) bool mask, box XYXY pixels or None for a polygon, confidence or
        None)``; a box's mask is its rectangle (:func:`box_mask`), a polygon's filled by
        ``cv2.fillPoly``.
    Raises:
        ValueError: the reason, in words: not numbers, a class that is not a whole number ≥ 0,
            too few values, coordinates outside [0, 1], an empty box.
    """
    fields = line.split()
    try:
        values = [float(v) for v in fields]
    except ValueError:
        raise ValueError(f"not numbers: {line.strip()[:60]!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError("a value is not finite")
    if values[0] != int(values[0]) or values[0] < 0:
        raise ValueError(f"class {fields[0]!r} is not a whole number ≥ 0")
    cls, rest = int(values[0]), values[1:]
    conf = None
    if len(rest) in (4, 5):
        if len(rest) == 5:
            rest, conf = rest[:4], rest[4]
        cx, cy, w, h = rest
        if not all(0.0 <= v <= 1.0 + 1e-6 for v in rest):
            raise ValueError("box values outside [0, 1] (not normalised?)")
        if w <= 0 or h <= 0:
            raise ValueError("a box of no width or height")
        box = np.array([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
        return cls, box_mask(box, width, height), box.astype(np.float32), conf
    if len(rest) < 6:
        raise ValueError(f"{len(fields)} values: a box needs 5 (class cx cy w h), a polygon 7 or more")
    if len(rest) % 2:
        rest, conf = rest[:-1], rest[-1]
    coords = np.asarray(rest, dtype=np.float64)
    if coords.min() < -1e-6 or coords.max() > 1.0 + 1e-6:
        raise ValueError("polygon coordinates outside [0, 1] (not normalised?)")
    return cls, _polygon_mask(coords, width, height), None, conf


def _load_names(yaml_path: Path) -> tuple[dict, dict[int, str]]:
    """data.yaml's contents and its ``names`` (a list or index → name).

    Raises:
        FormatReadError: unreadable, not YAML, or no ``names``.
    """
    try:
        meta = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        names = meta["names"]
        if isinstance(names, list):
            names = dict(enumerate(names))
        names = {int(k): str(v) for k, v in names.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        reason = f"not a YOLO data.yaml naming its classes ({type(exc).__name__}: {exc})"
        raise FormatReadError.one(yaml_path, reason) from exc
    if len(set(names.values())) != len(names):
        raise FormatReadError.one(yaml_path, "two classes of names have one name", "names")
    return meta, names


def _image_files(root: Path, meta: dict) -> list[Path]:
    """The image files data.yaml's ``train`` / ``val`` / ``test`` name (folders, read
    recursively, or ``.txt`` lists of images), relative to its ``path`` (where that exists
    beside data.yaml) or its folder; ``images/`` when they name none that exists."""
    base = root
    if isinstance(meta.get("path"), str):
        p = Path(meta["path"])
        base = p if p.is_absolute() and p.is_dir() else (root / p if (root / p).is_dir() else root)
    entries = []
    for split in ("train", "val", "test"):
        value = meta.get(split)
        entries += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    files: dict[str, Path] = {}
    for entry in entries:
        where = Path(entry) if Path(entry).is_absolute() else base / entry
        if where.is_dir():
            found = list_images(where, recursive=True)
        elif where.is_file() and where.suffix == ".txt":
            lines = where.read_text(encoding="utf-8").splitlines()
            found = [Path(x) if Path(x).is_absolute() else base / x for x in (line.strip() for line in lines) if x]
        else:
            continue
        for f in found:
            files.setdefault(os.path.normpath(f), Path(os.path.normpath(f)))
    if not files and (root / "images").is_dir():
        files = {str(f): f for f in list_images(root / "images", recursive=True)}
    return list(files.values())


def label_path(image_path: Path) -> Path:
    """The label file of an image, as Ultralytics finds it: the last ``images`` folder of its
    path → ``labels``, the suffix → ``.txt``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a YOLO segmentation or detection dataset (ours or another's; see the module doc).

    Args:
        path: the dataset folder or its ``data.yaml``; images are those its ``train`` / ``val``
            / ``test`` name (else ``images/``), each one's labels the ``labels`` file of the
            same path (:func:`label_path`; a missing label file = no instance).  A dataset of
            labels only (no image folder: a detector's output) takes its images from
            ``images_root``: every image of it, its labels those of its flat name's stem.
        images_root: the image folder the annotations are of: image keys are then its keys
            (a link into it is followed; else the flat names of
            :func:`annotator.formats.names.flat_names` are mapped back), not the flat names.
    Returns:
        Every image (keys: their flat file names, or the folder's keys) with its instances as
        RLE masks (source :attr:`~annotator.instances.Source.IMPORTED`), ``scores`` the
        confidences where given, ``data["from_box"]`` (bool: a box line, its mask the box's
        rectangle: SAM may turn it into a mask) and ``data["box"]`` ((N, 4) float32 XYXY
        pixels of a box line, NaN for a polygon); categories = ``names`` (index → name, the
        index as id).
    Raises:
        FormatReadError: every problem, one line each (file, ``line N``, reason): no
            ``data.yaml`` / ``names``, a malformed line, a class index not in ``names``, an
            unreadable image, a label file of no image, an image not in ``images_root``, two
            images of one key.
    """
    path = Path(path)
    yaml_path = path if path.is_file() else path / "data.yaml"
    root = yaml_path.parent
    if not yaml_path.is_file():
        raise FormatReadError.one(yaml_path, "no data.yaml (a YOLO dataset names its classes there)")
    meta, names = _load_names(yaml_path)
    problems = Problems()
    image_files = _image_files(root, meta)
    folder: dict[str, str] = {}
    if images_root is not None:
        images_root = Path(images_root)
        folder_keys = [p.relative_to(images_root).as_posix() for p in list_images(images_root, recursive=True)]
        folder = dict(zip(flat_names(folder_keys), folder_keys, strict=True))
    pairs: list[tuple[Path, Path]] = [(f, label_path(f)) for f in image_files]
    if not image_files and images_root is not None:  # labels only: the images are the folder's
        by_stem = {label.stem: label for label in _label_files(root)}
        stems = {Path(flat).stem for flat in folder}
        for label in _label_files(root):
            if label.stem not in stems:
                problems.add(label, "", f"no image of this stem in {images_root}")
        for flat, key in folder.items():  # an image without a label file has no instance
            pairs.append((images_root / key, by_stem.get(Path(flat).stem, root / "labels" / f"{Path(flat).stem}.txt")))
    labels_read = {lp for _, lp in pairs}
    if image_files:
        for label in _label_files(root):
            if label not in labels_read:
                problems.add(label, "", "a label file of no image (its image is not in the dataset)")
    images, instances, keys = [], {}, {}
    for image_path, lbl in pairs:
        key = image_path.name
        if images_root is not None:
            key = _folder_key(image_path, images_root, folder)
            if key is None:
                problems.add(image_path, "", f"not an image of {images_root}")
                continue
        if key in keys:
            problems.add(image_path, "", f"the same image as {keys[key]} (key {key})")
            continue
        keys[key] = image_path
        try:
            width, height = image_size(image_path)
        except (OSError, ValueError) as exc:
            problems.add(image_path, "", f"unreadable image ({exc})")
            continue
        found = _read_labels(lbl, width, height, names, problems)
        images.append(ImageEntry(key, width, height))
        if found is not None:
            instances[key] = found
    problems.raise_if_any()
    return InMemoryDataset(images, instances, {name: i for i, name in names.items()})


def _label_files(root: Path) -> list[Path]:
    """Every ``.txt`` under ``root/labels``."""
    return sorted((root / "labels").rglob("*.txt")) if (root / "labels").is_dir() else []


def _folder_key(image_path: Path, images_root: Path, folder: dict[str, str]) -> str | None:
    """The image folder's key of an image of the dataset: where its link leads inside the
    folder, else the key whose flat name it has, else ``None``."""
    real_root = images_root.resolve()
    try:
        return image_path.resolve().relative_to(real_root).as_posix()
    except ValueError:
        return folder.get(image_path.name)


def _read_labels(lbl: Path, width: int, height: int, names: dict[int, str], problems: Problems) -> Instances | None:
    """An image's instances from its label file (none where there is no file); ``None`` where
    a line has a problem (added to ``problems``)."""
    lines = lbl.read_text(encoding="utf-8").splitlines() if lbl.is_file() else []
    rows, bad = [], False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            cls, mask, box, conf = parse_line(line, width, height)
        except ValueError as exc:
            problems.add(lbl, f"line {n}", str(exc))
            bad = True
            continue
        if cls not in names:
            problems.add(lbl, f"line {n}", f"class {cls} is not in data.yaml's names (0..{max(names, default=-1)})")
            bad = True
            continue
        if not mask.any():
            problems.add(lbl, f"line {n}", "covers no pixel of the image")
            bad = True
            continue
        rows.append((cls, mask, box, conf))
    if bad:
        return None
    return Instances(
        [encode_rle(m) for _, m, _, _ in rows],
        image_size=(height, width),
        scores=[c for *_, c in rows],
        class_names=[names[c] for c, *_ in rows],
        class_ids=[c for c, *_ in rows],
        source=Source.IMPORTED,
        data={
            "from_box": np.array([b is not None for _, _, b, _ in rows], dtype=bool),
            "box": np.array(
                [b if b is not None else np.full(4, np.nan, np.float32) for _, _, b, _ in rows], dtype=np.float32
            ).reshape(-1, 4),
        },
    )


def read(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """The registry's reader: :func:`read_yolo`."""
    return read_yolo(path, images_root)


FORMAT = Format(
    name="yolo",
    description="YOLO segmentation or detection dataset (Ultralytics: images/, labels/, data.yaml)",
    write=write,
    read=read,
    options=("images_root", "images", "val_fraction", "seed", "task", "tolerance"),
    suffix="_yolo",
    category_ids=False,
)
