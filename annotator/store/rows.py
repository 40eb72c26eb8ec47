"""Annotation records ↔ rows of the ``annotations`` table."""

from __future__ import annotations

from typing import Any

from .model import Annotation


def annotation_of(row: Any) -> Annotation:
    """A row of ``annotations`` (a SQLAlchemy row) as an :class:`Annotation`."""
    return Annotation(
        id=int(row.id),
        image=row.image,
        label=row.label,
        category_id=int(row.category_id),
        rle={"size": [int(row.height), int(row.width)], "counts": row.counts},
        bbox=list(row.bbox),
        area=int(row.area),
        score=row.score,
        predicted_iou=row.predicted_iou,
        prompt=dict(row.prompt),
        created=float(row.created),
        source=row.source,
        author=row.author,
        state=row.state,
        data=dict(row.data or {}),
    )


def row_of(dataset_id: int, ann: Annotation) -> dict:
    """An :class:`Annotation` as the values of its ``annotations`` row in dataset ``dataset_id``."""
    h, w = ann.rle["size"]
    return {
        "dataset_id": dataset_id,
        "id": ann.id,
        "image": ann.image,
        "label": ann.label,
        "category_id": ann.category_id,
        "height": int(h),
        "width": int(w),
        "counts": ann.rle["counts"],
        "bbox": [float(v) for v in ann.bbox],
        "area": int(ann.area),
        "score": ann.score,
        "predicted_iou": ann.predicted_iou,
        "prompt": ann.prompt,
        "source": ann.source,
        "created": float(ann.created),
        "author": ann.author,
        "state": ann.state,
        "data": ann.data or None,
    }
