"""Prompt boxes for a bulk run: read from a COCO JSON or a folder of per-image lists, looked up by image.

Shape: ``{image key, file name or stem: [{"bbox": [x, y, w, h], "label": str | None}, ...]}``, the
boxes in COCO XYWH pixels of the image.
"""

from __future__ import annotations

import json
from pathlib import Path


def load_boxes(path: str | Path) -> dict[str, list[dict]]:
    """Boxes to prompt with, from a COCO instances JSON (``bbox`` + category name per
    annotation, keyed by ``file_name``) or a folder of ``<image stem>.json`` files each holding
    ``[{"bbox": [x, y, w, h], "label": "cat"}, ...]``.

    Raises:
        ValueError: unreadable or malformed file.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return {p.stem: list(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(path.glob("*.json"))}
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in data.get("categories", [])}
        files = {im["id"]: im["file_name"] for im in data["images"]}
        out: dict[str, list[dict]] = {}
        for ann in data["annotations"]:
            out.setdefault(files[ann["image_id"]], []).append(
                {"bbox": ann["bbox"], "label": names.get(ann.get("category_id"))}
            )
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a COCO JSON or a folder of per-image box lists ({exc})") from exc


def boxes_for(boxes: dict[str, list[dict]], key: str) -> list[dict]:
    """The boxes of image ``key`` (a path relative to the folder), looked up by that path, then
    its file name, then its stem (the keys :func:`load_boxes` gives); ``[]`` when it has none."""
    return boxes.get(key) or boxes.get(Path(key).name) or boxes.get(Path(key).stem) or []
