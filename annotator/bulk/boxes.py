"""Prompt boxes for a bulk run: read from a COCO JSON or a folder of per-image lists, looked up by image.

Shape: ``{image key, file name or stem: [{"bbox": [x, y, w, h], "label": str | None,
"category_id": int | None}, ...]}``, the boxes in COCO XYWH pixels of the image; ``category_id``
is the COCO file's id of the label (absent or ``None`` in per-image lists), which the run's store
keeps (:func:`box_category_ids`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..formats.coco import CocoFormatError, read_coco_boxes

log = logging.getLogger(__name__)


def load_boxes(path: str | Path) -> dict[str, list[dict]]:
    """Boxes to prompt with, from a COCO instances JSON (``bbox`` + category name per
    annotation, keyed by ``file_name``; read by :func:`annotator.formats.coco.read_coco_boxes`) or a folder of ``<image stem>.json`` files each holding
    ``[{"bbox": [x, y, w, h], "label": "cat"}, ...]``.

    Raises:
        ValueError: unreadable or malformed file.
    """
    path = Path(path)
    try:
        if not path.is_dir():
            return read_coco_boxes(path)
        return {p.stem: list(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(path.glob("*.json"))}
    except CocoFormatError as exc:
        raise ValueError(f"{path}: not a COCO JSON or a folder of per-image box lists ({exc.reason})") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a COCO JSON or a folder of per-image box lists ({exc})") from exc


def boxes_for(boxes: dict[str, list[dict]], key: str) -> list[dict]:
    """The boxes of image ``key`` (a path relative to the folder), looked up by that path, then
    its file name, then its stem (the keys :func:`load_boxes` gives); ``[]`` when it has none."""
    return boxes.get(key) or boxes.get(Path(key).name) or boxes.get(Path(key).stem) or []


def box_category_ids(boxes: dict[str, list[dict]] | None) -> dict[str, int]:
    """The category ids the boxes carry, label → id (a COCO file's ``categories``, as
    :func:`load_boxes` reads them): the ids a bulk run prefers for those names, so that its
    store and exports keep the file's ids (person 1, dog 18 for COCO's own). Boxes without a
    label or an id add nothing. A label given two ids keeps the first, with a warning.
    """
    ids: dict[str, int] = {}
    warned: set[tuple[str, int]] = set()
    for items in (boxes or {}).values():
        for item in items:
            label, cid = item.get("label"), item.get("category_id")
            if not label or cid is None:
                continue
            label, cid = str(label), int(cid)
            first = ids.setdefault(label, cid)
            if first != cid and (label, cid) not in warned:
                warned.add((label, cid))
                log.warning(
                    "class %r has two ids in the --boxes file, %d and %d: it keeps %d", label, first, cid, first
                )
    return ids
