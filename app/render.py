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


def fit_to_display(mask: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of an image of ``original_size`` → the same mask at display resolution."""
    s = display_scale(*original_size)
    return _fit(mask, (max(1, round(original_size[0] * s)), max(1, round(original_size[1] * s))))


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def _blend(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    canvas[mask] = canvas[mask] * (1 - alpha) + colour * alpha
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, tuple(float(c) for c in colour), 2)


def render(
    image: np.ndarray,
    accepted: list[tuple[int, np.ndarray, str]],
    current: np.ndarray | None = None,
    points: list[list[float]] | None = None,
    point_labels: list[int] | None = None,
    box: list[float] | None = None,
    corner: list[float] | None = None,
) -> np.ndarray:
    """Compose the canvas at display resolution.

    Args:
        image: (H, W, 3) uint8 RGB original.
        accepted: (annotation id, bool mask, label) per accepted annotation; the mask at the
            original or the display resolution (see :func:`fit_to_display`).
        current: (H, W) bool mask of the pending prompt.
        points, point_labels: prompt points in original pixels, 1 positive / 0 negative.
        box: prompt box XYXY in original pixels; corner: first corner of a box being drawn.
    Returns:
        (h, w, 3) uint8 RGB with h, w = H, W × :func:`display_scale`.
    """
    h, w = image.shape[:2]
    s = display_scale(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    base = image if s == 1.0 else cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    canvas = base.astype(np.float32)
    for ann_id, mask, _ in accepted:
        _blend(canvas, _fit(mask, size), PALETTE[ann_id % len(PALETTE)], 0.45)
    if current is not None and current.any():
        _blend(canvas, _fit(current, size), CURRENT_COLOUR, 0.5)
    out = canvas.clip(0, 255).astype(np.uint8)
    for ann_id, mask, label in accepted:
        ys, xs = np.nonzero(_fit(mask, size))
        if len(ys):
            org = (int(xs.min()), max(12, int(ys.min()) - 4))
            cv2.putText(out, f"{ann_id}:{label}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, f"{ann_id}:{label}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
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
