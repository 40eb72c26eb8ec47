"""Drawing the annotation canvas: accepted masks, the current mask and the prompt."""

from __future__ import annotations

import cv2
import numpy as np

MAX_DISPLAY_SIDE = 1600  # larger photos are shown downscaled; clicks are mapped back

PALETTE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
        [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
        [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128],
    ],
    dtype=np.float32,
)  # fmt: skip
CURRENT_COLOUR = np.array([30, 144, 255], dtype=np.float32)


def display_scale(height: int, width: int) -> float:
    """Factor from original to display pixels (≤ 1)."""
    return min(1.0, MAX_DISPLAY_SIDE / max(height, width))


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def _blend(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    canvas[mask] = canvas[mask] * (1 - alpha) + colour * alpha
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, tuple(float(c) for c in colour), 2)


def _display_size(height: int, width: int) -> tuple[int, int]:
    s = display_scale(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def render_accepted(image: np.ndarray, accepted: list[tuple[int, np.ndarray, str]]) -> np.ndarray:
    """The layer that changes only when annotations do: the image with accepted masks and labels.

    Args:
        image: (H, W, 3) uint8 RGB original.
        accepted: (annotation id, (H, W) bool mask, label) per accepted annotation.
    Returns:
        (h, w, 3) uint8 RGB at display resolution (H, W × :func:`display_scale`).
    """
    size = _display_size(*image.shape[:2])
    base = image if size == image.shape[:2] else cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    canvas = base.astype(np.float32)
    fitted = [(ann_id, _fit(mask, size), label) for ann_id, mask, label in accepted]
    for ann_id, mask, _ in fitted:
        _blend(canvas, mask, PALETTE[ann_id % len(PALETTE)], 0.45)
    out = canvas.clip(0, 255).astype(np.uint8)
    for ann_id, mask, label in fitted:
        ys, xs = np.nonzero(mask)
        if len(ys):
            org = (int(xs.min()), max(12, int(ys.min()) - 4))
            cv2.putText(out, f"{ann_id}:{label}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, f"{ann_id}:{label}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_prompt(
    base: np.ndarray,
    original_size: tuple[int, int],
    current: np.ndarray | None = None,
    points: list[list[float]] | None = None,
    point_labels: list[int] | None = None,
    box: list[float] | None = None,
    corner: list[float] | None = None,
) -> np.ndarray:
    """Draw the pending prompt over a :func:`render_accepted` layer (the per-click work).

    Args:
        base: (h, w, 3) uint8 display layer; original_size: (H, W) of the original image.
        current: (H, W) bool mask of the pending prompt.
        points, point_labels: prompt points in original pixels, 1 positive / 0 negative.
        box: prompt box XYXY in original pixels; corner: first corner of a box being drawn.
    Returns:
        A new (h, w, 3) uint8 RGB canvas; ``base`` is not modified.
    """
    s = display_scale(*original_size)
    if current is not None and current.any():
        canvas = base.astype(np.float32)
        _blend(canvas, _fit(current, base.shape[:2]), CURRENT_COLOUR, 0.5)
        out = canvas.clip(0, 255).astype(np.uint8)
    else:
        out = base.copy()
    if box is not None:
        x0, y0, x1, y1 = (round(v * s) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 0), 2)
    if corner is not None:
        cv2.drawMarker(out, (int(corner[0] * s), int(corner[1] * s)), (255, 255, 0), cv2.MARKER_CROSS, 16, 2)
    for (x, y), lab in zip(points or [], point_labels or [], strict=False):
        colour = (0, 220, 0) if lab == 1 else (230, 0, 0)
        centre = (round(x * s), round(y * s))
        cv2.circle(out, centre, 6, colour, -1)
        cv2.circle(out, centre, 6, (255, 255, 255), 1)
    return out
