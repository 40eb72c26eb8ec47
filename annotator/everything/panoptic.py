"""Instances and panoptic segmentation of one image (Kirillov et al., 2019).

An everything pass yields :class:`Instance` s (masks may overlap); :func:`assemble_panoptic`
turns them into a :class:`PanopticResult`: a segment map where every pixel belongs to at most
one segment, as in the COCO panoptic format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNLABELLED = "object"  # label of masks when no CLIP can name them


@dataclass
class Instance:
    """One segmented and (maybe) labelled region.

    Attributes:
        mask: (H, W) bool at the original resolution.
        label: class name, or :data:`UNLABELLED`.
        category_id: the vocabulary's id of ``label``; ``None`` when unlabelled.
        isthing: countable object (``True``) or amorphous stuff (sky, road, wall: ``False``).
        score: confidence in [0, 1]: label probability (× mask quality for PosSAM), or SAM's
            predicted IoU when unlabelled.
        predicted_iou: SAM's predicted IoU (the best of the merged patches).
        patches: indices of the SAM patches it is made of.
    """

    mask: np.ndarray
    label: str
    category_id: int | None
    isthing: bool
    score: float
    predicted_iou: float
    patches: tuple[int, ...] = ()

    @property
    def area(self) -> int:
        """Pixel count."""
        return int(self.mask.sum())


@dataclass
class PanopticSegment:
    """One segment of a panoptic segmentation (a ``segments_info`` entry of COCO panoptic).

    Attributes:
        id: segment id (> 0) in the segment map.
        label: class name; category_id: vocabulary id or ``None`` when unlabelled.
        isthing: thing or stuff; score: from the instance(s) it came from.
        area: pixel count in the segment map; bbox: ``[x, y, width, height]`` pixels.
        instances: indices of the :class:`Instance` s painted into it (several for merged stuff).
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
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def assemble_panoptic(
    instances: list[Instance],
    overlap_threshold: float = 0.5,
    min_area: int = 16,
) -> PanopticResult:
    """Paint instances into a non-overlapping segment map (Mask2Former-style inference).

    Things are painted first, best score first, each taking only pixels no earlier segment took;
    an instance that keeps less than ``overlap_threshold`` of its area (or fewer than
    ``min_area`` pixels) is dropped. Stuff comes last: all instances of one stuff category form
    one segment.

    Args:
        instances: masks all of the same (H, W) image.
        overlap_threshold: fraction of its own area an instance must keep.
        min_area: smallest segment kept, in pixels.
    Returns:
        :class:`PanopticResult`.
    Raises:
        ValueError: no instances and so no image size, or masks of different sizes.
    """
    if not instances:
        raise ValueError("no instances: the image size is unknown (use an empty segment map instead)")
    shape = instances[0].mask.shape
    if any(inst.mask.shape != shape for inst in instances):
        raise ValueError("instances of different image sizes")
    seg_map = np.zeros(shape, np.int32)
    segments: list[PanopticSegment] = []
    things = sorted((i for i, inst in enumerate(instances) if inst.isthing), key=lambda i: -instances[i].score)
    stuff: dict[object, list[int]] = {}
    for i, inst in enumerate(instances):
        if not inst.isthing:
            stuff.setdefault(inst.category_id if inst.category_id is not None else inst.label, []).append(i)
    groups = [[i] for i in things] + sorted(stuff.values(), key=lambda g: -max(instances[i].score for i in g))
    for group in groups:
        mask = np.logical_or.reduce([instances[i].mask for i in group])
        area = int(mask.sum())
        free = mask & (seg_map == 0)
        kept = int(free.sum())
        if area == 0 or kept < min_area or kept < overlap_threshold * area:
            continue
        first = instances[group[0]]
        seg_id = len(segments) + 1
        seg_map[free] = seg_id
        areas = np.array([instances[i].area for i in group], np.float64)
        score = float(np.average([instances[i].score for i in group], weights=areas))
        segments.append(
            PanopticSegment(
                seg_id, first.label, first.category_id, first.isthing, score, kept, _bbox(free), tuple(group)
            )
        )
    return PanopticResult(seg_map, segments)


def empty_panoptic(height: int, width: int) -> PanopticResult:
    """A segmentation with no segments (all void)."""
    return PanopticResult(np.zeros((height, width), np.int32), [])
