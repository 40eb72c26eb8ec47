"""Label Studio JSON, read: a project's JSON export (or our tasks, :mod:`.export`) as a dataset.

The file is a list of tasks ``{"data": {"image": URL}, "annotations": [{"result": [...]}],
"predictions": [{"result": [...]}]}`` (https://labelstud.io/guide/export#Label-Studio-JSON-format-of-annotated-tasks).
Of each task the last annotation not cancelled (``was_cancelled``) is read, else, where a
person made none, its last prediction (our export writes predictions).  Its regions:

- ``brushlabels``: Label Studio's brush RLE (``value.rle``), decoded by
  ``label_studio_sdk.converter.brush.decode_rle`` (the alpha channel), exact;
- ``polygonlabels``: ``value.points`` in percent of ``original_width`` / ``original_height``,
  filled by pycocotools (as Label Studio's own COCO export turns them into COCO polygons);
- ``rectanglelabels`` (``x``, ``y``, ``width``, ``height`` in percent, ``rotation`` degrees
  about the top-left corner) and ``ellipselabels`` (centre ``x``, ``y``, ``radiusX``,
  ``radiusY``, ``rotation``), as masks of their pixels;
- others (keypoints, choices, text, relations) are no regions and are skipped.

A region id ``a<N>`` or ``a<N>p<k>`` (ours: annotation N, part k of a polygon) gives
``data["annotation_id"]`` N, and the parts of N are one instance (their union); other ids are
one instance each.  ``score`` is kept as the instance's score.  Image keys: for local-files
URLs (``/data/local-files/?d=folder/sub/a.jpg``) the path after ``?d=`` without its first
folder (the served folder, as :func:`~.config.local_files_prefix` writes it), or, with
``images_root``, the shortest tail of that path that is a file under it; other URLs: the file
name.  Sizes: the regions' ``original_width`` / ``original_height``; a task without regions
takes its image's size from ``images_root``, and without ``images_root`` is left out (nothing
of it to read).  Classes: the labelling config beside the file (``<stem>.xml``, as our export
writes it) in its order, then those only the regions name, ids 1, 2, ...  Lost: category ids
(Label Studio has none), the provenance note, which of an annotation's several versions.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import cv2
import numpy as np

from ...instances import Instances, Source
from ...masks import encode_rle, polygons_to_mask
from ..dataset import ImageEntry, InMemoryDataset
from ..errors import Problems

REGION_TYPES = ("brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels")
_OUR_ID = re.compile(r"^a(\d+)(?:p\d+)?$")


def image_key(url: str, images_root: str | Path | None = None) -> str:
    """The image key of a task's ``data.image`` (see the module doc)."""
    if "?d=" in url:
        parts = [p for p in unquote(url.split("?d=", 1)[1]).split("/") if p]
        if images_root is not None:
            for k in range(len(parts)):
                if (Path(images_root).joinpath(*parts[k:])).is_file():
                    return "/".join(parts[k:])
        return "/".join(parts[1:] if len(parts) > 1 else parts)
    return PurePosixPath(unquote(url.split("?", 1)[0])).name


def config_labels(path: Path) -> list[str]:
    """The ``<Label value>`` names of a labelling config XML, in order; ``[]`` when it is
    missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    return list(dict.fromkeys(el.get("value") for el in root.iter("Label") if el.get("value")))


def _percent(value: dict, name: str) -> float:
    number = float(value[name])
    if not math.isfinite(number):
        raise ValueError(f"{name} is {number}")
    return number


def region_mask(region: dict, height: int, width: int) -> np.ndarray:
    """One region's (H, W) bool mask.

    Raises:
        ValueError, KeyError, TypeError: malformed value.
    """
    kind, value = region["type"], region["value"]
    if kind == "brushlabels":
        from label_studio_sdk.converter.brush import decode_rle

        if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
            raise ValueError("brush value needs format 'rle' and an rle list")
        flat = decode_rle(value["rle"])
        if flat.size != height * width * 4:
            raise ValueError(
                f"brush rle holds {flat.size // 4} pixels, the image {width}x{height} has {height * width}"
            )
        return flat.reshape(height, width, 4)[:, :, 3] > 0
    if kind == "polygonlabels":
        points = np.asarray(value["points"], dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
            raise ValueError("points must be 3 or more [x, y] percent pairs")
        flat = (points * [width / 100.0, height / 100.0]).reshape(-1).tolist()
        return polygons_to_mask([flat], height, width)
    if kind == "rectanglelabels":
        x, y = _percent(value, "x") * width / 100, _percent(value, "y") * height / 100
        w, h = _percent(value, "width") * width / 100, _percent(value, "height") * height / 100
        if w < 0 or h < 0:
            raise ValueError("negative width or height")
        rotation = float(value.get("rotation") or 0.0)
        if rotation == 0.0:
            mask = np.zeros((height, width), dtype=bool)
            x0, y0 = max(round(x), 0), max(round(y), 0)
            mask[y0 : max(round(y + h), y0), x0 : max(round(x + w), x0)] = True
            return mask
        t = math.radians(rotation)
        corners = []
        for dx, dy in ((0, 0), (w, 0), (w, h), (0, h)):
            corners += [x + dx * math.cos(t) - dy * math.sin(t), y + dx * math.sin(t) + dy * math.cos(t)]
        return polygons_to_mask([corners], height, width)
    cx, cy = _percent(value, "x") * width / 100, _percent(value, "y") * height / 100
    rx, ry = _percent(value, "radiusX") * width / 100, _percent(value, "radiusY") * height / 100
    out = np.zeros((height, width), dtype=np.uint8)
    axes = (max(round(rx), 0), max(round(ry), 0))
    cv2.ellipse(out, (round(cx), round(cy)), axes, float(value.get("rotation") or 0.0), 0, 360, 1, -1)
    return out.astype(bool)


def chosen_result(task: dict) -> list:
    """The result a task is read by: its last annotation not cancelled, else its last
    prediction (see the module doc); ``[]`` when it has neither."""
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if done:
        return done[-1].get("result") or []
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    return (predictions[-1].get("result") or []) if predictions else []


def read_label_studio(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a Label Studio JSON export (see the module doc).

    Args:
        path: the JSON file (a list of tasks).
        images_root: the image folder: the keys' tails are looked up there, and tasks without
            regions take their size from it.
    Returns:
        One image per task with an image (and a size), its regions as RLE instances (source
        :attr:`~annotator.instances.Source.IMPORTED`).
    Raises:
        FormatReadError: every problem (file, task / region, reason); nothing is returned.
    """
    from ..yolo import image_size

    path = Path(path)
    with Problems() as problems:
        try:
            tasks = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(tasks, dict):
                tasks = [tasks]
            if not isinstance(tasks, list):
                raise ValueError("not a list of tasks")
        except (OSError, ValueError) as exc:
            problems.add(path, "", f"not a Label Studio JSON export ({exc})")
    names = config_labels(path.with_suffix(".xml"))
    parsed = []
    with Problems() as problems:
        for t, task in enumerate(tasks):
            record = f"task {task.get('id', t) if isinstance(task, dict) else t}"
            try:
                url = task["data"]["image"]
                if not isinstance(url, str) or not url:
                    raise TypeError
            except (KeyError, TypeError):
                problems.add(path, record, "no data.image")
                continue
            key = image_key(url, images_root)
            regions, sizes = [], set()
            for r, region in enumerate(chosen_result(task)):
                if not isinstance(region, dict) or region.get("type") not in REGION_TYPES:
                    continue
                where = f"{record}, region {region.get('id', r)}"
                try:
                    height, width = int(region["original_height"]), int(region["original_width"])
                    if height <= 0 or width <= 0:
                        raise ValueError("original_width / original_height must be positive")
                    labels = region["value"][region["type"]]
                    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
                        raise ValueError(f"{region['type']} must hold one label, not {labels!r}")
                    score = region.get("score")
                    match = _OUR_ID.match(str(region.get("id", "")))
                    regions.append(
                        (
                            labels[0],
                            int(match.group(1)) if match else None,
                            None if score is None else float(score),
                            region_mask(region, height, width),
                        )
                    )
                    sizes.add((height, width))
                except (KeyError, ValueError, TypeError, AttributeError) as exc:
                    problems.add(path, where, f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc))
            if len(sizes) > 1:
                problems.add(path, record, f"regions of different image sizes {sorted(sizes)}")
                continue
            if not sizes:
                if images_root is None or not (Path(images_root) / key).is_file():
                    continue  # no region and no image to take a size from: nothing to read
                width, height = image_size(Path(images_root) / key)
                sizes.add((height, width))
            parsed.append((record, key, sizes.pop(), regions))
        seen: dict[str, str] = {}
        for record, key, _, _ in parsed:
            if key in seen:
                problems.add(path, record, f"image {key!r} is also {seen[key]}'s")
            seen[key] = record
    for _, _, _, regions in parsed:
        names += [label for label, _, _, _ in regions if label not in names]
    categories = {name: i + 1 for i, name in enumerate(names)}
    images, per_image, all_ids = [], {}, []
    for _, key, (height, width), regions in parsed:
        groups: dict[tuple, list] = {}
        for n, (label, ann_id, score, mask) in enumerate(regions):
            gkey = (label, ann_id) if ann_id is not None else (label, None, n)
            if gkey in groups:
                groups[gkey][1] |= mask
            else:
                groups[gkey] = [score, mask]
        ids = [g[1] if g[1] is not None else -1 for g in groups]
        all_ids += ids
        per_image[key] = Instances(
            [encode_rle(m) for _, m in groups.values()],
            image_size=(height, width),
            scores=[s for s, _ in groups.values()],
            class_names=[g[0] for g in groups],
            class_ids=[categories[g[0]] for g in groups],
            source=Source.IMPORTED,
            data={"annotation_id": np.array(ids, dtype=np.int64)},
        )
        images.append(ImageEntry(key, width, height))
    if -1 in all_ids or len(set(all_ids)) != len(all_ids):
        for found in per_image.values():
            del found.data["annotation_id"]
    return InMemoryDataset(images, per_image, categories)


__all__ = ["REGION_TYPES", "chosen_result", "config_labels", "image_key", "read_label_studio", "region_mask"]
