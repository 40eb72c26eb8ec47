"""Instances and panoptic segmentation of one image (Kirillov et al., 2019).

An everything pass yields :class:`~annotator.instances.Instances` (masks may overlap);
:func:`assemble_panoptic` turns them into a :class:`PanopticResult`: a segment map where every
pixel belongs to at most one segment, and one :class:`PanopticSegment` (a COCO panoptic
``segments_info`` entry) per segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..instances import Instances
from ..masks import masks_to_boxes


@dataclass
class PanopticSegment:
    """One segment of a panoptic segmentation (a ``segments_info`` entry of COCO panoptic).

    Attributes:
        id: segment id (> 0) in the segment map.
        label: class name; category_id: vocabulary id or ``None`` when unlabelled.
        isthing: thing or stuff; score: from the instance(s) it came from.
        area: pixel count in the segment map; bbox: ``[x, y, width, height]`` pixels.
        instances: indices of the instances painted into it (several for merged stuff).
    """

    id: int
    label: str
    category_id: int | None
    isthing: bool
    score: float
    area: int
    bbox: list[int]
    instances: tuple[int, ...] = ()


@dataclass
class PanopticResult:
    """A panoptic segmentation.

    Attributes:
        segment_map: (H, W) int32, the segment id of each pixel; 0 = void (no segment).
        segments: one entry per id present in ``segment_map``, ids ascending.
    """

    segment_map: np.ndarray
    segments: list[PanopticSegment] = field(default_factory=list)

    def mask(self, segment_id: int) -> np.ndarray:
        """(H, W) bool pixels of one segment."""
        return self.segment_map == segment_id


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, width, height]`` of a non-empty mask (from the one box-from-mask)."""
    x0, y0, x1, y1 = (int(v) for v in masks_to_boxes(mask[None])[0])
    return [x0, y0, x1 - x0, y1 - y0]


def assemble_panoptic(
    instances: Instances,
    overlap_threshold: float = 0.5,
    min_area: int = 16,
) -> PanopticResult:
    """Paint instances into a non-overlapping segment map (Mask2Former-style inference).

    Things are painted first, best score first, each taking only pixels no earlier segment took;
    an instance that keeps less than ``overlap_threshold`` of its area (or fewer than
    ``min_area`` pixels) is dropped. Stuff comes last: all instances of one stuff category form
    one segment.

    Args:
        instances: of one image; their ``scores`` rank them (NaN ranks last).
        overlap_threshold: fraction of its own area an instance must keep.
        min_area: smallest segment kept, in pixels.
    Returns:
        :class:`PanopticResult`; all void when there is no instance.
    """
    seg_map = np.zeros(instances.image_size, np.int32)
    segments: list[PanopticSegment] = []
    scores = np.where(np.isnan(instances.scores), -np.inf, instances.scores)
    things = sorted((i for i in range(len(instances)) if instances.isthing[i]), key=lambda i: -scores[i])
    stuff: dict[object, list[int]] = {}
    for i in range(len(instances)):
        if not instances.isthing[i]:
            cid = int(instances.class_ids[i])
            stuff.setdefault(cid if cid >= 0 else instances.class_names[i], []).append(i)
    groups = [[i] for i in things] + sorted(stuff.values(), key=lambda g: -max(scores[i] for i in g))
    areas = instances.areas
    for group in groups:
        mask = np.logical_or.reduce([instances.mask(i) for i in group])
        area = int(mask.sum())
        free = mask & (seg_map == 0)
        kept = int(free.sum())
        if area == 0 or kept < min_area or kept < overlap_threshold * area:
            continue
        first = group[0]
        seg_id = len(segments) + 1
        seg_map[free] = seg_id
        score = float(np.average([instances.scores[i] for i in group], weights=areas[group].astype(np.float64)))
        cid = int(instances.class_ids[first])
        segments.append(
            PanopticSegment(
                seg_id,
                str(instances.class_names[first]),
                cid if cid >= 0 else None,
                bool(instances.isthing[first]),
                score,
                kept,
                _bbox(free),
                tuple(group),
            )
        )
    return PanopticResult(seg_map, segments)


def empty_panoptic(height: int, width: int) -> PanopticResult:
    """A segmentation with no segments (all void)."""
    return PanopticResult(np.zeros((height, width), np.int32), [])
