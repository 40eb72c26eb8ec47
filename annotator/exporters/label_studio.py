"""Label Studio export: a labelling config and JSON tasks with our masks as predictions.

Each image becomes a task ``{"data": {"image": URL}, "predictions": [{"model_version", "score",
"result": [...]}]}`` (https://labelstud.io/guide/predictions).  Masks are either ``brushlabels``
regions with Label Studio's own brush RLE (exact; encoded by ``label_studio_sdk.converter.brush``)
or ``polygonlabels`` regions with vertices in percent of the image size (one region per part of
a multi-part mask; holes spliced in with zero-width cuts).  Image URLs are ``url_prefix`` + the
image's path in the folder: with Label Studio's local-files serving
(``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``, ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` =
the folder's parent) the prefix is ``/data/local-files/?d=<folder name>/``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from ..fileio import atomic_write_json
from ..instances import Instances
from ..masks import mask_to_polygons
from ..store import AnnotationStore

REGION_TYPES = ("brush", "polygon")
FROM_NAME, TO_NAME = "label", "image"
MODEL_VERSION = "ovsam-annotator"


def labeling_config(labels: list[str], region_type: str = "brush") -> str:
    """The labelling config XML for an image task with these classes.

    Raises:
        ValueError: unknown ``region_type``.
    """
    if region_type not in REGION_TYPES:
        raise ValueError(f"region_type must be one of {REGION_TYPES}")
    tag = "BrushLabels" if region_type == "brush" else "PolygonLabels"
    items = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in labels)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <{tag} name="{FROM_NAME}" toName="{TO_NAME}">\n{items}\n  </{tag}>\n</View>\n'
    )


def local_files_prefix(folder: str | Path, document_root: str | Path | None = None) -> str:
    """Image URL prefix for Label Studio's local-files serving of ``folder``:
    ``/data/local-files/?d=<folder relative to the document root>/``.

    Args:
        folder: the image folder, on the server's disk.
        document_root: the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; default the
            folder's parent.
    Raises:
        ValueError: ``folder`` is not inside ``document_root``.
    """
    folder = Path(folder).resolve()
    root = Path(document_root).resolve() if document_root is not None else folder.parent
    try:
        rel = folder.relative_to(root)
    except ValueError:
        raise ValueError(f"{folder} is not inside the local-files document root {root}") from None
    return f"/data/local-files/?d={quote(rel.as_posix())}/"


def _regions(found: Instances, i: int, region_type: str) -> list[dict]:
    from label_studio_sdk.converter.brush import mask2rle

    height, width = found.image_size
    mask, ann_id, label = found.mask(i), int(found.data["annotation_id"][i]), str(found.class_names[i])
    common = {
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
    }
    score = region_score(found, i)
    if score is not None:
        common["score"] = score
    if region_type == "brush":
        rle = mask2rle(mask.astype(np.uint8) * 255)
        value = {"format": "rle", "rle": [int(v) for v in rle], "brushlabels": [label]}
        return [{"id": f"a{ann_id}", "type": "brushlabels", "value": value, **common}]
    regions = []
    for k, poly in enumerate(mask_to_polygons(mask)):
        points = [[100.0 * x / width, 100.0 * y / height] for x, y in zip(poly[::2], poly[1::2], strict=True)]
        value = {"points": points, "closed": True, "polygonlabels": [label]}
        regions.append({"id": f"a{ann_id}p{k}", "type": "polygonlabels", "value": value, **common})
    return regions


def region_score(found: Instances, i: int) -> float | None:
    """A region's confidence in [0, 1]: the label score when the label was predicted, else
    SAM's predicted IoU (a given label: only the mask is uncertain), else ``None``."""
    score = found.score_or_none(i)
    return score if score is not None else found.predicted_iou_or_none(i)


def labels_of(store: AnnotationStore) -> list[str]:
    """The store's labels, sorted: the classes of the labelling config."""
    return sorted({a.label for a in store.annotations.values()})


def prediction_for(
    store: AnnotationStore, key: str, region_type: str = "brush", model_version: str = MODEL_VERSION
) -> dict:
    """One image's annotations as a Label Studio prediction ``{"model_version", "score"
    (mean of the region scores, if any), "result": [region, ...]}``; regions are in the
    original image's pixel frame (``original_width/height``), brush RLE or polygon percent.

    Raises:
        KeyError: ``key`` is not in the store.
    """
    found = store.instances(key)
    result = [r for i in range(len(found)) for r in _regions(found, i, region_type)]
    prediction = {"model_version": model_version, "result": result}
    scores = [score for i in range(len(found)) if (score := region_score(found, i)) is not None]
    if scores:
        prediction["score"] = float(np.mean(scores))
    return prediction


def to_label_studio(
    store: AnnotationStore, url_prefix: str, region_type: str = "brush", model_version: str = MODEL_VERSION
) -> tuple[list[dict], str]:
    """Tasks (one per image of the store) and the labelling config of a store.

    Args:
        url_prefix: prepended to each image key (URL-quoted) to form ``data.image``.
        region_type: ``brush`` (exact masks) or ``polygon``.
    Returns:
        ``(tasks, config XML)``.
    Raises:
        ValueError: unknown ``region_type``.
    """
    config = labeling_config(labels_of(store), region_type)
    tasks = [
        {
            "data": {TO_NAME: image_url(url_prefix, key)},
            "predictions": [prediction_for(store, key, region_type, model_version)],
        }
        for key in sorted(store.images)
    ]
    return tasks, config


def image_url(url_prefix: str, key: str) -> str:
    """``data.image`` of an image: the prefix + its folder-relative path, URL-quoted."""
    return url_prefix + quote(key)


def export_label_studio(
    store: AnnotationStore, out_json: str | Path, url_prefix: str, region_type: str = "brush"
) -> Path:
    """Write the tasks JSON (and the config beside it, ``.xml``), atomically; returns the JSON path."""
    from ..fileio import atomic_write_bytes

    tasks, config = to_label_studio(store, url_prefix, region_type)
    out_json = Path(out_json)
    atomic_write_bytes(out_json.with_suffix(".xml"), config.encode("utf-8"))
    return atomic_write_json(out_json, tasks)
