"""Prompt boxes for a bulk run: read from a COCO JSON or a folder of per-image lists, looked up by image.

Shape: ``{image key, file name or stem: [{"bbox": [x, y, w, h], "label": str | None}, ...]}``, the
boxes in COCO XYWH pixels of the image.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..formats.coco import CocoFormatError, read_coco_boxes


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
