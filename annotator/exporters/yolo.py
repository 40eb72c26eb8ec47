"""YOLO segmentation dataset export (the Ultralytics format).

``<out>/images/<name>``: the images (symbolic links, or copies where links are not possible),
``<name>`` being the image's path in the folder with ``/`` → ``__`` (see :func:`flat_name`);
``<out>/labels/<name with .txt>``: one line per instance, ``class x1 y1 x2 y2 ...`` with
coordinates normalised to [0, 1] by the image width and height; ``<out>/data.yaml``: ``path``,
``train`` / ``val`` (both ``images``), ``nc`` and ``names`` (class index → name, in category id
order).  Vertices run through boundary-pixel centres, the convention of readers that fill with
``cv2.fillPoly``.  A mask with holes or several parts becomes one polygon: holes are spliced in
with zero-width cuts (see :func:`annotator.masks.mask_to_polygons`) and parts are chained by
zero-width bridges, as Ultralytics' own converter does, so every line stays one instance.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import yaml

from ..fileio import atomic_write_bytes
from ..masks import mask_to_polygons
from ..store import AnnotationStore


def chain_polygons(polygons: list[list[float]]) -> list[float]:
    """Join flat ``[x1, y1, x2, y2, ...]`` polygons into one by zero-width bridges between
    their first vertices (each part is closed before the bridge to the next)."""
    out: list[float] = []
    for poly in polygons:
        out += [*poly, poly[0], poly[1]]
    return out


def flat_name(key: str) -> str:
    """An image key as one file name (``sub/a.jpg`` → ``sub__a.jpg``): not every YOLO reader
    searches sub-folders."""
    return key.replace("/", "__")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def export_yolo(store: AnnotationStore, images_root: str | Path, out_dir: str | Path) -> Path:
    """Write the store as a YOLO segmentation dataset.

    Args:
        images_root: the folder the store's image keys are relative to.
        out_dir: dataset folder (created).
    Returns:
        The ``data.yaml`` path.
    Raises:
        FileNotFoundError: an annotated image is missing under ``images_root``.
    """
    images_root, out_dir = Path(images_root), Path(out_dir)
    per_image = {key: store.instances(key) for key in sorted(store.images)}
    cats = sorted(
        {(int(c), str(n)) for f in per_image.values() for c, n in zip(f.class_ids, f.class_names, strict=True)}
        | {(c, n) for n, c in store.declared_categories().items()}
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
    for key in sorted(store.images):
        src = images_root / key
        if not src.is_file():
            raise FileNotFoundError(f"{src}: annotated image not found under {images_root}")
        flat = flat_name(key)
        _link_or_copy(src, out_dir / "images" / flat)
        label_path = out_dir / "labels" / PurePosixPath(flat).with_suffix(".txt")
        atomic_write_bytes(label_path, "".join(line + "\n" for line in by_image.get(key, [])).encode())
    data = {
        "path": str(out_dir.resolve()),
        "train": "images",
        "val": "images",
        "nc": len(index),
        "names": {i: label for label, i in index.items()},
    }
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return atomic_write_bytes(out_dir / "data.yaml", text.encode("utf-8"))
