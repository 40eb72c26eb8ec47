"""Annotations as the journal keeps them: :class:`~annotator.instances.Instances` ⇄ JSON records.

One record per annotation::

    {"label": str, "rle": {"size": [H, W], "counts": str},   # COCO compressed RLE
     "area": int (pixels), "score": float | None, "predicted_iou": float | None,
     "prompt": dict (what made it: {"box": [x0, y0, x1, y1], "i": n}, {"everything": method, ...}),
     "source": str (a :class:`~annotator.instances.Source` value)}

Journals written before ``source`` existed lack it; it is then derived from ``prompt``.
"""

from __future__ import annotations

from ..instances import Instances, Source
from ..store import source_of_prompt


def to_records(instances: Instances) -> list[dict]:
    """Instances as journal records ``{"label", "rle", "area", "score", "predicted_iou",
    "prompt", "source"}`` (JSON-ready; ``score`` / ``predicted_iou`` ``None`` when absent)."""
    prompts = instances.data.get("prompt")
    if prompts is None:
        prompts = [{} for _ in range(len(instances))]
    areas = instances.areas
    return [
        {
            "label": str(instances.class_names[i]),
            "rle": rle,
            "area": int(areas[i]),
            "score": instances.score_or_none(i),
            "predicted_iou": instances.predicted_iou_or_none(i),
            "prompt": prompts[i],
            "source": Source(instances.source[i]).value,
        }
        for i, rle in enumerate(instances.rles())
    ]


def from_records(records: list[dict], width: int, height: int) -> Instances:
    """Journal records (see :func:`to_records`; older journals have no ``source``) → Instances."""
    return Instances(
        [r["rle"] for r in records],
        image_size=(height, width),
        scores=[r.get("score") for r in records],
        predicted_iou=[r.get("predicted_iou") for r in records],
        class_names=[r["label"] for r in records],
        source=[r.get("source") or source_of_prompt(r.get("prompt") or {}) for r in records],
        data={"prompt": [r.get("prompt") or {} for r in records]},
    )
