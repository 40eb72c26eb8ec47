"""YOLO segmentation dataset export (the Ultralytics format).

``<out>/images/<name>``: the images, as symbolic links *relative* to the link's folder (copies
where links are not possible), ``<name>`` being the image's path in the folder with ``/`` →
``__``, told apart by ``~2``, ``~3``, ... where two images would share a name or a stem (see
:func:`annotator.formats.names.flat_names`: ``sub/a.jpg`` and ``sub__a.jpg`` →
``sub__a~2.jpg`` and ``sub__a.jpg``, ``a.jpg`` and ``a.png`` → ``a.jpg`` and ``a~2.png``);
``<out>/labels/<name with .txt>``: one line per instance, ``class x1 y1 x2 y2 ...`` with
coordinates normalised to [0, 1] by the image width and height; ``<out>/data.yaml``: ``train`` /
``val`` (both ``images``), ``nc`` and ``names`` (class index → name, in category id order), and
no ``path``, which Ultralytics then takes to be the folder of ``data.yaml`` (a relative ``path``
would be resolved against its ``DATASETS_DIR`` instead).  So the dataset is portable: moved or
copied together with the image folder (the same relative placement), it still reads.  Vertices
run through boundary-pixel centres, the convention of readers that fill with
``cv2.fillPoly``.  A mask with holes or several parts becomes one polygon: holes are spliced in
with zero-width cuts (see :func:`annotator.masks.mask_to_polygons`) and parts are chained by
zero-width bridges, as Ultralytics' own converter does, so every line stays one instance.

Read back (:func:`read_yolo`) as Ultralytics and supervision read it: each line's polygon
filled with ``cv2.fillPoly`` at the image's size, classes from ``data.yaml``'s ``names``.  The
format keeps less than a store: class index only (it becomes the category id), no score, no
annotation id, and polygons, not masks: a filled polygon also paints its outline pixels and the
zero-width cuts and bridges, so masks come back close to (mean IoU > 0.95 on COCO photos), not
equal to, those written.  Image keys are the flat file names under ``images/`` (see
:func:`file_names`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import yaml
from PIL import Image

from ..fileio import atomic_write_bytes
from ..images import list_images
from ..instances import Instances, Source
from ..masks import encode_rle, mask_to_polygons
from .dataset import Dataset, ImageEntry, InMemoryDataset
from .format import Format
from .names import flat_name as flat_name  # re-exported: the plain name, as before
from .names import flat_names


def chain_polygons(polygons: list[list[float]]) -> list[float]:
    """Join flat ``[x1, y1, x2, y2, ...]`` polygons into one by zero-width bridges between
    their first vertices (each part is closed before the bridge to the next)."""
    out: list[float] = []
    for poly in polygons:
        out += [*poly, poly[0], poly[1]]
    return out


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


def export_yolo(dataset: Dataset, images_root: str | Path, out_dir: str | Path) -> Path:
    """Write a dataset as a YOLO segmentation dataset.

    Args:
        images_root: the folder the dataset's image keys are relative to.
        out_dir: dataset folder (created).
    Returns:
        The ``data.yaml`` path.
    Raises:
        FileNotFoundError: an annotated image is missing under ``images_root``.
    """
    images_root, out_dir = Path(images_root), Path(out_dir)
    per_image = {key: dataset.instances(key) for key in sorted(dataset.images)}
    cats = sorted(
        {(int(c), str(n)) for f in per_image.values() for c, n in zip(f.class_ids, f.class_names, strict=True)}
        | {(c, n) for n, c in dataset.declared_categories().items()}
    )
    index = {label: i for i, (_, label) in enumerate(cats)}
    by_image: dict[str, list[str]] = {}
    for key, found in per_image.items():
        height, width = found.image_size
        for i in range(len(found)):
            polys = mask_to_polygons(found.mask(i), pixel_edges=False)  # readers fill with cv2.fillPoly
            if not polys:
                continue
            flat = chain_polygons(polys)
            coords = [f"{min(max(v / (width if j % 2 == 0 else height), 0.0), 1.0):.6f}" for j, v in enumerate(flat)]
            by_image.setdefault(key, []).append(" ".join([str(index[found.class_names[i]]), *coords]))
    for key, flat in file_names(dataset).items():
        src = images_root / key
        if not src.is_file():
            raise FileNotFoundError(f"{src}: annotated image not found under {images_root}")
        _link_or_copy(src, out_dir / "images" / flat)
        label_path = out_dir / "labels" / PurePosixPath(flat).with_suffix(".txt")
        atomic_write_bytes(label_path, "".join(line + "\n" for line in by_image.get(key, [])).encode())
    data = {  # no "path": Ultralytics takes the folder of data.yaml (see the module doc)
        "train": "images",
        "val": "images",
        "nc": len(index),
        "names": {i: label for label, i in index.items()},
    }
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return atomic_write_bytes(out_dir / "data.yaml", text.encode("utf-8"))


def written_files(dataset: Dataset, out_dir: str | Path) -> list[Path]:
    """The files :func:`export_yolo` writes for a dataset: ``data.yaml``, then per image (key
    order) its image and its label file."""
    out_dir = Path(out_dir)
    files = [out_dir / "data.yaml"]
    for flat in file_names(dataset).values():
        files += [out_dir / "images" / flat, out_dir / "labels" / PurePosixPath(flat).with_suffix(".txt")]
    return files


def write(dataset: Dataset, out: str | Path, images_root: str | Path) -> list[Path]:
    """The registry's writer: :func:`export_yolo` into the folder ``out``; returns ``data.yaml``,
    then each image (link or copy) and label file."""
    export_yolo(dataset, images_root, out)
    return written_files(dataset, out)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, upright (EXIF orientation applied, as the annotator
    loads images), from its header."""
    with Image.open(path) as img:
        orientation = img.getexif().get(0x0112, 1)
        width, height = img.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def parse_label_line(line: str, width: int, height: int) -> tuple[int, np.ndarray]:
    """One label line ``class x1 y1 x2 y2 ...`` (normalised) → (class index, (H, W) bool mask
    of the polygon filled by ``cv2.fillPoly``, vertices rounded to pixels).

    Raises:
        ValueError: not a class index and an even number (≥ 6) of coordinates.
    """
    fields = line.split()
    coords = np.asarray([float(v) for v in fields[1:]], dtype=np.float64)
    if len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"a polygon needs 3 or more x y pairs: {line[:60]!r}")
    points = np.round(coords.reshape(-1, 2) * [width, height]).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return int(fields[0]), mask.astype(bool)


def read_yolo(path: str | Path) -> InMemoryDataset:
    """Read a YOLO segmentation dataset (ours or another's; see the module doc).

    Args:
        path: the dataset folder or its ``data.yaml``; images are read from ``images/`` beside
            it, labels from ``labels/`` (same stem, ``.txt``; a missing label file = no instance).
    Returns:
        Every image of ``images/`` (keys: their paths under it) with its polygons as RLE
        instances (source :attr:`~annotator.instances.Source.IMPORTED`); categories = ``names``
        (index → name, the index as id).
    Raises:
        ValueError: no ``data.yaml`` / ``names``, a malformed label line, or a class index not
            in ``names``.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    try:
        meta = yaml.safe_load((root / "data.yaml").read_text(encoding="utf-8"))
        names = meta["names"]
        names = dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{root}: not a YOLO dataset with a data.yaml naming its classes ({exc})") from exc
    images, instances = [], {}
    for image_path in list_images(root / "images", recursive=True):
        key = image_path.relative_to(root / "images").as_posix()
        width, height = image_size(image_path)
        images.append(ImageEntry(key, width, height))
        label_path = (root / "labels" / key).with_suffix(".txt")
        lines = label_path.read_text(encoding="utf-8").splitlines() if label_path.is_file() else []
        parsed = [parse_label_line(line, width, height) for line in lines if line.strip()]
        unknown = {c for c, _ in parsed} - set(names)
        if unknown:
            raise ValueError(f"{label_path}: class indices {sorted(unknown)} not in data.yaml's names")
        instances[key] = Instances(
            [encode_rle(m) for _, m in parsed],
            image_size=(height, width),
            class_names=[names[c] for c, _ in parsed],
            class_ids=[c for c, _ in parsed],
            source=Source.IMPORTED,
        )
    return InMemoryDataset(images, instances, {name: i for i, name in names.items()})


FORMAT = Format(
    name="yolo",
    description="YOLO segmentation dataset (Ultralytics: images/, labels/, data.yaml)",
    write=write,
    read=read_yolo,
    options=("images_root",),
    suffix="_yolo",
)
