"""Label Studio export: a labelling config and JSON tasks with our masks as predictions.

Each image becomes a task ``{"data": {"image": URL}, "predictions": [{"model_version", "score",
"result": [...]}]}`` (https://labelstud.io/guide/predictions).  Masks are either ``brushlabels``
regions with Label Studio's own brush RLE (exact; encoded by ``label_studio_sdk.converter.brush``)
or ``polygonlabels`` regions with vertices in percent of the image size (one region per part of
a multi-part mask; holes spliced in with zero-width cuts).  Image URLs: see
:mod:`annotator.formats.label_studio.config`.

Read back by :func:`annotator.formats.label_studio.importer.read_label_studio` (the registry's
``read``), which also reads Label Studio's own JSON export of a project: brush masks come back
pixel-equal, polygons as pycocotools fills them, region ids ``a<N>`` as annotation ids, the
classes in the config's order.  Not kept: category ids (a label is a name in the config),
images without regions unless the image folder is given (only regions carry
``original_width`` / ``original_height``), and the difference between the label score and
SAM's predicted IoU (a region has one ``score``: the label score or, without one, the
predicted IoU, :func:`region_score`; it is read back as the score).  Each region's
``meta.text`` (the note Label Studio shows with the region) says who made the annotation and
when (:func:`provenance_note`), from the store; it is not read back.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from ...fileio import atomic_write_bytes, atomic_write_json
from ...instances import Instances
from ...masks import mask_to_polygons
from ..dataset import Dataset
from ..format import Format
from .config import FROM_NAME, MODEL_VERSION, TO_NAME, image_url, labeling_config, local_files_prefix
from .importer import read_label_studio


def _regions(found: Instances, i: int, ann_id: int, region_type: str) -> list[dict]:
    from label_studio_sdk.converter.brush import mask2rle

    height, width = found.image_size
    mask, label = found.mask(i), str(found.class_names[i])
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
    if (note := provenance_note(found, i)) is not None:
        common["meta"] = {"text": [note]}
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


def provenance_note(found: Instances, i: int) -> str | None:
    """Who made instance ``i`` and when, as the region's note (Label Studio shows a region's
    ``meta.text`` beside it): ``"by alice, 2026-12-03 09:41 UTC"``; ``None`` where the instances
    carry no ``data["author"]`` (those not read from a store)."""
    authors = found.data.get("author")
    if authors is None or not authors[i]:
        return None
    created = found.data.get("created")
    when = ""
    if created is not None and float(created[i]) > 0:
        stamp = _dt.datetime.fromtimestamp(float(created[i]), _dt.timezone.utc)
        when = f", {stamp:%Y-%m-%d %H:%M} UTC"
    return f"by {authors[i]}{when}"


def region_score(found: Instances, i: int) -> float | None:
    """A region's confidence in [0, 1]: the label score when the label was predicted, else
    SAM's predicted IoU (a given label: only the mask is uncertain), else ``None``."""
    score = found.score_or_none(i)
    return score if score is not None else found.predicted_iou_or_none(i)


def labels_of(dataset: Dataset) -> list[str]:
    """The class names of a dataset's instances, sorted: the classes of the labelling config."""
    return sorted({str(name) for key in dataset.images for name in dataset.instances(key).class_names})


def prediction_for(dataset: Dataset, key: str, region_type: str = "brush", model_version: str = MODEL_VERSION) -> dict:
    """One image's annotations as a Label Studio prediction ``{"model_version", "score"
    (mean of the region scores, if any), "result": [region, ...]}``; regions are in the
    original image's pixel frame (``original_width/height``), brush RLE or polygon percent;
    region ids ``a<annotation id>`` (``data["annotation_id"]``, else 1, 2, ... in the image).

    Raises:
        KeyError: ``key`` is not an image of the dataset.
    """
    found = dataset.instances(key)
    ids = found.data.get("annotation_id")
    ids = np.arange(1, len(found) + 1) if ids is None else ids
    result = [r for i in range(len(found)) for r in _regions(found, i, int(ids[i]), region_type)]
    prediction = {"model_version": model_version, "result": result}
    scores = [score for i in range(len(found)) if (score := region_score(found, i)) is not None]
    if scores:
        prediction["score"] = float(np.mean(scores))
    return prediction


def to_label_studio(
    dataset: Dataset, url_prefix: str, region_type: str = "brush", model_version: str = MODEL_VERSION
) -> tuple[list[dict], str]:
    """Tasks (one per image of the dataset) and the labelling config of a dataset.

    Args:
        url_prefix: prepended to each image key (URL-quoted) to form ``data.image``.
        region_type: ``brush`` (exact masks) or ``polygon``.
    Returns:
        ``(tasks, config XML)``.
    Raises:
        ValueError: unknown ``region_type``.
    """
    config = labeling_config(labels_of(dataset), region_type)
    tasks = [
        {
            "data": {TO_NAME: image_url(url_prefix, key)},
            "predictions": [prediction_for(dataset, key, region_type, model_version)],
        }
        for key in sorted(dataset.images)
    ]
    return tasks, config


def export_label_studio(dataset: Dataset, out_json: str | Path, url_prefix: str, region_type: str = "brush") -> Path:
    """Write the tasks JSON (and the config beside it, ``.xml``), atomically; returns the JSON path."""
    tasks, config = to_label_studio(dataset, url_prefix, region_type)
    out_json = Path(out_json)
    atomic_write_bytes(out_json.with_suffix(".xml"), config.encode("utf-8"))
    return atomic_write_json(out_json, tasks)


def write(
    dataset: Dataset,
    out: str | Path,
    url_prefix: str | None = None,
    region_type: str = "brush",
    images_root: str | Path | None = None,
) -> list[Path]:
    """The registry's writer: :func:`export_label_studio`; returns the tasks JSON and the config XML.

    Args:
        url_prefix: image URL prefix; default local-files serving of ``images_root`` (see
            :func:`~annotator.formats.label_studio.config.local_files_prefix`).
        images_root: the folder the image keys are relative to.
    Raises:
        ValueError: neither ``url_prefix`` nor ``images_root``; unknown ``region_type``.
    """
    if url_prefix is None:
        if images_root is None:
            raise ValueError("label-studio: give url_prefix, or images_root for local-files serving URLs")
        url_prefix = local_files_prefix(images_root)
    out_json = export_label_studio(dataset, out, url_prefix, region_type)
    return [out_json, out_json.with_suffix(".xml")]


FORMAT = Format(
    name="label-studio",
    description="Label Studio tasks with predictions + labelling config",
    write=write,
    read=read_label_studio,
    options=("url_prefix", "region_type", "images_root"),
    suffix="_label_studio.json",
    category_ids=False,
)

__all__ = [
    "FORMAT",
    "export_label_studio",
    "labels_of",
    "prediction_for",
    "provenance_note",
    "region_score",
    "to_label_studio",
    "write",
]
