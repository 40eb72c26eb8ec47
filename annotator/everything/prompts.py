"""Object-aware point prompts for everything mode: one point per image segment, skipping segments
that SAM's masks already explain.

A uniform grid spends most decoder passes on points inside objects it has already found and still
misses objects smaller than its spacing. Instead (training-free, no detector weights):

1. The image, resized to :data:`WORK_SIDE` pixels on its longest side, is over-segmented by
   Felzenszwalb and Huttenlocher's graph segmentation (IJCV 2004, scikit-image's ``felzenszwalb``):
   regions of uniform colour and texture, small where the image has detail.
2. Each segment proposes its most interior pixel (the maximum of the distance to any segment
   border), so the point lands inside the segment rather than on an edge, where SAM is unsure.
3. Segments are visited largest first. Before a segment is prompted, the pixels already
   *explained* are checked: the union, over the prompts decoded so far, of each prompt's smallest
   confident mask (SAM's own default thresholds, :data:`EXPLAIN_IOU` / :data:`EXPLAIN_STABILITY`).
   A segment lying mostly inside that union (at least ``explained_fraction`` of its pixels) would
   give those masks again and is skipped.

On 20 ``coco_tiny_val`` photos this reaches the class-agnostic AR@100 of SAM's automatic mask
generator at 32×32 with ~110 decoder passes instead of 1024 (see ``benchmarks/everything.py``
and docs/benchmarks.md, "Everything mode"). Skipping from half explained rather than 90 % cut the passes by a fifth
at the same AR@100 (within ±0.5 on each half of those photos).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.ndimage as ndi
from skimage.segmentation import felzenszwalb

WORK_SIDE = 640
"""Longest side, in pixels, of the image the segments are computed on (COCO's photo size: the
segmentation's ``scale`` and ``min_size`` mean the same at any input resolution)."""
EXPLAIN_IOU = 0.88
"""Predicted IoU from which a mask explains its pixels (SamAutomaticMaskGenerator's default)."""
EXPLAIN_STABILITY = 0.95
"""Stability score from which a mask explains its pixels (SamAutomaticMaskGenerator's default)."""


@dataclass(frozen=True)
class SegmentPromptConfig:
    """Settings of the segment prompts.

    Attributes:
        scale: Felzenszwalb's ``scale`` (larger: fewer, larger segments), on the
            :data:`WORK_SIDE` image.
        sigma: Gaussian smoothing (pixels) before segmenting.
        min_size: smallest segment, in pixels of the :data:`WORK_SIDE` image.
        explained_fraction: a segment whose explained share of pixels reaches this is skipped.
        max_points: at most this many prompts per image (bounds the time on very busy photos).
    """

    scale: float = 300.0
    sigma: float = 0.8
    min_size: int = 50
    explained_fraction: float = 0.5
    max_points: int = 256


@dataclass
class ImageSegments:
    """An over-segmentation of an image and one prompt point per segment.

    Attributes:
        labels: (h, w) int64 segment id per pixel of the working image (ids 0..S-1).
        areas: (S,) int64 pixels per segment (working image).
        points: (S, 2) float64 (X, Y) prompt of each segment in pixels of the *original* image.
        scale: original pixels per working pixel (same on both axes).
    """

    labels: np.ndarray
    areas: np.ndarray
    points: np.ndarray
    scale: float


def segment_image(image: np.ndarray, config: SegmentPromptConfig = SegmentPromptConfig()) -> ImageSegments:
    """Over-segment an image and pick each segment's most interior pixel.

    Args:
        image: (H, W, 3) uint8 RGB.
        config: segmentation settings.
    Returns:
        :class:`ImageSegments`.
    Raises:
        ValueError: not an (H, W, 3) uint8 array.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = max(height, width) / WORK_SIDE
    work = image
    if scale != 1.0:
        size = (max(1, round(width / scale)), max(1, round(height / scale)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR)
    labels = felzenszwalb(work, scale=config.scale, sigma=config.sigma, min_size=config.min_size)
    labels = labels.astype(np.int64)
    n = int(labels.max()) + 1
    # distance of each pixel to the nearest segment border or image edge
    interior = np.ones((labels.shape[0] + 2, labels.shape[1] + 2), np.uint8)
    interior[0, :] = interior[-1, :] = interior[:, 0] = interior[:, -1] = 0
    inner = interior[1:-1, 1:-1]
    inner[:, 1:][labels[:, 1:] != labels[:, :-1]] = 0
    inner[1:, :][labels[1:, :] != labels[:-1, :]] = 0
    dist = cv2.distanceTransform(interior, cv2.DIST_L2, 3)[1:-1, 1:-1]
    rows_cols = np.array(ndi.maximum_position(dist, labels, np.arange(n)), dtype=np.float64).reshape(n, 2)
    points = (rows_cols[:, ::-1] + 0.5) * scale
    points[:, 0] = points[:, 0].clip(0, width - 1e-3)
    points[:, 1] = points[:, 1].clip(0, height - 1e-3)
    return ImageSegments(labels, np.bincount(labels.ravel(), minlength=n), points, scale)


class SegmentPrompts:
    """Yields batches of prompt points, largest segment first, skipping explained segments.

    Use: ``for batch in prompts.batches(k): ...decode...; prompts.explain(mask)`` for each
    prompt's smallest confident mask.

    Args:
        segments: from :func:`segment_image`.
        config: ``explained_fraction`` and ``max_points``.
    """

    def __init__(self, segments: ImageSegments, config: SegmentPromptConfig = SegmentPromptConfig()):
        self.segments = segments
        self.config = config
        self.explained = np.zeros(segments.labels.shape, bool)
        self._order = np.argsort(-segments.areas, kind="stable")
        self._next = 0
        self.prompted = 0
        """Prompts handed out so far."""

    @property
    def work_size(self) -> tuple[int, int]:
        """(h, w) of the working image, the frame of :meth:`explain`'s masks."""
        return self.segments.labels.shape  # type: ignore[return-value]

    @property
    def fraction_visited(self) -> float:
        """Share of the segments visited so far (prompted or skipped), in [0, 1]."""
        return self._next / max(len(self._order), 1)

    def explain(self, mask: np.ndarray) -> None:
        """Mark pixels as explained.

        Args:
            mask: (h, w) bool in the working image's frame (:attr:`work_size`).
        Raises:
            ValueError: wrong shape.
        """
        if mask.shape != self.explained.shape:
            raise ValueError(f"mask of shape {mask.shape}, expected {self.explained.shape}")
        self.explained |= mask

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """(k ≤ size, 2) float64 (X, Y) original-image pixels per batch, until every segment
        is visited or ``max_points`` prompts were given; the explained map is re-read before
        each batch."""
        labels, areas = self.segments.labels, self.segments.areas
        while self._next < len(self._order) and self.prompted < self.config.max_points:
            share = np.bincount(labels.ravel(), weights=self.explained.ravel(), minlength=len(areas))
            share /= np.maximum(areas, 1)
            batch = []
            while self._next < len(self._order) and len(batch) < min(size, self.config.max_points - self.prompted):
                seg = self._order[self._next]
                self._next += 1
                if share[seg] < self.config.explained_fraction:
                    batch.append(seg)
            if batch:
                self.prompted += len(batch)
                yield self.segments.points[batch]


__all__ = [
    "EXPLAIN_IOU",
    "EXPLAIN_STABILITY",
    "WORK_SIDE",
    "ImageSegments",
    "SegmentPromptConfig",
    "SegmentPrompts",
    "segment_image",
]
