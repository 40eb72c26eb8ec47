"""Hand edits of a binary mask: brush and eraser strokes, polygons added or cut out, and an
outline's vertices moved.

Coordinates are original image pixels in the continuous frame the page and SAM's prompts use:
pixel (column i, row j) covers [i, i + 1) × [j, j + 1), its centre is (i + 0.5, j + 0.5).

- A **stroke** covers the pixels whose centre lies within ``radius`` of its path (exact; the
  page previews a stroke by the same rule).
- A **polygon** covers the pixels whose centre lies inside it, as COCO rasterises polygons
  (pycocotools).
- An **outline edit** (:func:`move_outline`) changes only the pixels between the ring as it was
  and as it is now: the rest of the mask stays exactly as it was, holes and other parts included.
- :func:`outline_rings` gives the rings to edit: ``cv2.findContours`` (outer boundaries and
  holes, ``RETR_CCOMP``) simplified by ``cv2.approxPolyDP``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
from pycocotools import mask as mask_utils

MAX_RADIUS = 500
"""The largest brush radius, original pixels."""
MAX_POINTS = 4096
"""Points one stroke, polygon or ring may hold."""
OUTLINE_EPSILON = 1.0
"""How far (original pixels) a simplified outline ring may stray from the mask's boundary."""


class EditOp(str, Enum):
    """What a hand edit does to a mask."""

    BRUSH = "brush"  # the stroke's pixels are added
    ERASE = "erase"  # the stroke's pixels are removed
    POLYGON_ADD = "polygon_add"  # the polygon's pixels are added
    POLYGON_CUT = "polygon_cut"  # the polygon's pixels are removed (a hole, or a part cut off)


@dataclass(frozen=True)
class Ring:
    """One closed ring of a mask's outline: ``points`` (N, 2) float64 X, Y original pixels
    (continuous frame), ``hole``: it bounds a hole (inside it is background)."""

    points: np.ndarray
    hole: bool


def _checked(points) -> None:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(p) or len(p) > MAX_POINTS:
        raise ValueError(f"an edit takes 1 to {MAX_POINTS} points ({len(p)} given)")
    if not np.isfinite(p).all():
        raise ValueError("an edit's points must be finite numbers")


def stroke_mask(shape: tuple[int, int], points, radius: float) -> np.ndarray:
    """The pixels a brush of ``radius`` covers along ``points``: those whose centre lies within
    ``radius`` of the path (the polyline through the points; one point: a disc). Exact, and the
    rule the page's preview paints by (``app/static/js/tools/brush.js``).

    Args:
        shape: (H, W) of the mask.
        points: (N, 2) X, Y original pixels, N ≥ 1.
        radius: original pixels, in (0, :data:`MAX_RADIUS`].
    Returns:
        (H, W) bool.
    Raises:
        ValueError: no point, too many, not finite, or a radius out of range.
    """
    if not 0 < float(radius) <= MAX_RADIUS:
        raise ValueError(f"the brush radius is in (0, {MAX_RADIUS}] pixels ({radius} given)")
    _checked(points)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = shape
    r = float(radius)
    out = np.zeros(shape, bool)
    for a, b in itertools.pairwise(p) if len(p) > 1 else [(p[0], p[0])]:
        x0, x1 = int(max(0, np.floor(min(a[0], b[0]) - r))), int(min(w, np.ceil(max(a[0], b[0]) + r)))
        y0, y1 = int(max(0, np.floor(min(a[1], b[1]) - r))), int(min(h, np.ceil(max(a[1], b[1]) + r)))
        if x0 >= x1 or y0 >= y1:
            continue
        cx = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
        cy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
        d = b - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0 else np.clip(((cx - a[0]) * d[0] + (cy - a[1]) * d[1]) / length2, 0.0, 1.0)
        out[y0:y1, x0:x1] |= (cx - a[0] - t * d[0]) ** 2 + (cy - a[1] - t * d[1]) ** 2 <= r * r
    return out


def polygon_mask(shape: tuple[int, int], points) -> np.ndarray:
    """The pixels polygon ``points`` covers, as COCO rasterises a polygon segmentation
    (pycocotools' ``frPyObjects``: the pixels whose centre lies inside; a square from (10, 10)
    to (20, 20) covers columns and rows 10 to 19).

    Args:
        shape: (H, W); points: (N, 2) X, Y original pixels, N ≥ 3.
    Returns:
        (H, W) bool.
    Raises:
        ValueError: fewer than 3 points, too many, or not finite.
    """
    _checked(points)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        raise ValueError("a polygon has 3 or more vertices")
    h, w = shape
    rle = mask_utils.frPyObjects([p.ravel().tolist()], int(h), int(w))
    return mask_utils.decode(rle)[:, :, 0].astype(bool)


def apply_edit(mask: np.ndarray, op: EditOp | str, points, radius: float | None = None) -> np.ndarray:
    """``mask`` with a stroke or polygon added or removed (a new array; ``mask`` is unchanged).

    Args:
        mask: (H, W) bool at the image's resolution.
        op: an :class:`EditOp`; ``radius`` is needed by the strokes.
    Raises:
        ValueError: an unknown op, a stroke without radius, or bad points (see above).
    """
    op = EditOp(op)
    if op in (EditOp.BRUSH, EditOp.ERASE):
        if radius is None:
            raise ValueError("a brush stroke needs a radius")
        region = stroke_mask(mask.shape, points, radius)
    else:
        region = polygon_mask(mask.shape, points)
    return mask | region if op in (EditOp.BRUSH, EditOp.POLYGON_ADD) else mask & ~region


def move_outline(mask: np.ndarray, old, new, hole: bool) -> np.ndarray:
    """``mask`` with one outline ring moved from ``old`` to ``new`` (a vertex dragged, added or
    deleted): pixels inside ``new`` but not ``old`` are added (removed for a hole), pixels inside
    ``old`` but not ``new`` removed (added for a hole); every other pixel stays.

    Args:
        mask: (H, W) bool. old, new: (N, 2) and (M, 2) X, Y original pixels, ≥ 3 vertices each.
        hole: the ring bounds a hole (:attr:`Ring.hole`).
    Returns:
        (H, W) bool, a new array.
    Raises:
        ValueError: as :func:`polygon_mask`.
    """
    before, after = polygon_mask(mask.shape, old), polygon_mask(mask.shape, new)
    grown, shrunk = after & ~before, before & ~after
    if hole:
        grown, shrunk = shrunk, grown
    return (mask | grown) & ~shrunk


def outline_rings(mask: np.ndarray, epsilon: float = OUTLINE_EPSILON) -> list[Ring]:
    """The mask's outline as editable rings: each part's outer boundary and each hole's, through
    boundary pixel centres, simplified to within ``epsilon`` pixels (``cv2.approxPolyDP``).

    Args:
        mask: (H, W) bool.
    Returns:
        Rings with 3 or more vertices (smaller specks are left out), outer ones first of each part.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for i, c in enumerate(contours):
        ring = cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2)
        if len(ring) >= 3:
            rings.append(Ring(ring.astype(np.float64) + 0.5, bool(hierarchy[0][i][3] >= 0)))
    return rings


__all__ = [
    "MAX_POINTS",
    "MAX_RADIUS",
    "OUTLINE_EPSILON",
    "EditOp",
    "Ring",
    "apply_edit",
    "move_outline",
    "outline_rings",
    "polygon_mask",
    "stroke_mask",
]
