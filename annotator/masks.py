"""Binary-mask encodings of the COCO format: compressed RLE (pycocotools) and polygons (opencv).

COCO polygons of one annotation are filled and unioned, so a hole cannot be a polygon of its
own.  :func:`mask_to_polygons` keeps holes by joining each hole to its outer contour with a
zero-width cut ("keyhole" polygon): pycocotools' even-odd rasterisation then leaves the hole
empty.  Every part of a multi-part mask becomes its own polygon.
"""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) bool → COCO compressed RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _pycoco(rle: dict) -> dict:
    """Our JSON RLE (counts as str) → the form pycocotools takes (counts as bytes)."""
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO compressed RLE (counts as str or bytes) → (H, W) bool."""
    return mask_utils.decode(_pycoco(rle)).astype(bool)


def rle_area(rle: dict) -> int:
    """Pixel count of an RLE mask."""
    return int(mask_utils.area(_pycoco(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """Tight box of an RLE mask, COCO ``[x, y, width, height]`` in pixels."""
    return [float(v) for v in mask_utils.toBbox(_pycoco(rle))]


def rle_iou(a: list[dict], b: list[dict]) -> np.ndarray:
    """Mask IoU of every RLE in ``a`` with every RLE in ``b`` (pycocotools ``iou``, no crowd).

    Returns:
        (len(a), len(b)) float64 in [0, 1].
    """
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou([_pycoco(r) for r in a], [_pycoco(r) for r in b], [0] * len(b))).reshape(
        len(a), len(b)
    )


def masks_to_boxes(masks):
    """Tight boxes of masks, XYXY pixels with exclusive max (a one-pixel mask at (x, y) gives
    ``[x, y, x + 1, y + 1]``); ``[0, 0, 0, 0]`` for an empty mask. The project's one
    box-from-mask.

    Args:
        masks: (N, H, W) bool as a numpy array or a torch tensor (boxes by segment-anything's
            ``amg.batched_mask_to_box``), or N COCO RLEs (by pycocotools' ``toBbox``).
    Returns:
        (N, 4) float32, numpy (a tensor on the masks' device for a tensor).
    """
    import torch
    from segment_anything.utils.amg import batched_mask_to_box

    if isinstance(masks, torch.Tensor):
        if masks.shape[0] == 0:
            return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
        boxes = batched_mask_to_box(masks).float()
        boxes[:, 2:] += masks.flatten(1).any(1)[:, None].float()  # amg's max is inclusive
        return boxes
    if not isinstance(masks, np.ndarray):
        if not len(masks):
            return np.zeros((0, 4), np.float32)
        xywh = mask_utils.toBbox([_pycoco(r) for r in masks]).reshape(-1, 4)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    if masks.shape[0] == 0:
        return np.zeros((0, 4), np.float32)
    return masks_to_boxes(torch.from_numpy(np.ascontiguousarray(masks, dtype=bool))).numpy()


def _splice(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Join ``hole`` into ``outer`` at their closest vertices (a zero-width keyhole cut)."""
    d = ((outer[:, None, :].astype(np.float64) - hole[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(d.argmin()), d.shape)
    hole_loop = np.concatenate([hole[j:], hole[: j + 1]])
    return np.concatenate([outer[: i + 1], hole_loop, outer[i:]])


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest squared distance between the vertices of ``a`` (N, 2) and ``b`` (M, 2)."""
    a = a.astype(np.float64)
    best = np.inf
    for k in range(0, len(b), 512):  # bounded memory for long contours
        best = min(best, float(((a[:, None, :] - b[None, k : k + 512, :]) ** 2).sum(-1).min()))
    return best


def _splice_all(outer: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """Splice every hole into ``outer``, nearest first: each next hole is the one closest to
    the loop built so far, so a keyhole cut never runs across a hole not yet spliced (a cut
    that crossed one would make the filled polygon lose the pixels between them)."""
    if len(holes) == 1:  # nothing to order
        return _splice(outer, holes[0])
    dist = [_min_distance(h, outer) for h in holes]
    left = list(range(len(holes)))
    while left:
        k = min(left, key=lambda i: dist[i])
        left.remove(k)
        outer = _splice(outer, holes[k])
        for i in left:
            dist[i] = min(dist[i], _min_distance(holes[i], holes[k]))
    return outer


def join_loops(polygons: list[list[float]]) -> list[float]:
    """Flat ``[x1, y1, x2, y2, ...]`` polygons (the parts of one mask) joined into one by
    zero-width bridges: the part nearest to those joined so far is spliced in next, at the closest vertex of those joined so
    far, the bridge run there and back (as holes are, :func:`mask_to_polygons`), so a filled
    result has each part's pixels and, of the bridges, only their one-pixel lines.

    Returns:
        One flat polygon (``[]`` for none).
    """
    loops = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons if len(p)]
    if not loops:
        return []
    joined = _splice_all(loops[0], loops[1:])  # nearest first: no bridge across a part not yet joined
    return [float(v) for v in joined.reshape(-1)]


def _to_pixel_edges(poly: np.ndarray) -> np.ndarray:
    """Contour through boundary-pixel centres → polygon along the pixels' outer edges.

    COCO coordinates put pixel ``i`` on ``[i, i + 1]``: centres move by +0.5, then each vertex
    moves half a pixel along its outward normal (the filled side is the same for the outer
    loop and for spliced-in holes, so one rule serves both).
    """
    pts = poly.astype(np.float64) + 0.5
    tangent = np.roll(pts, -1, axis=0) - np.roll(pts, 1, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    signed_area = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    return pts + 0.5 * normal * (1.0 if signed_area > 0 else -1.0)


def simplify_contour(contour: np.ndarray, tolerance: float) -> np.ndarray:
    """A closed contour ``(K, 2)`` int simplified by ``cv2.approxPolyDP`` (Douglas-Peucker: no
    point of the original further than ``tolerance`` pixels from the result); the contour as it
    is where ``tolerance`` is 0 or the result would have fewer than 3 vertices (a small part or
    hole is kept, not dropped)."""
    if tolerance <= 0 or len(contour) <= 3:
        return contour
    simple = cv2.approxPolyDP(contour.reshape(-1, 1, 2).astype(np.int32), float(tolerance), True)[:, 0, :]
    return simple if len(simple) >= 3 else contour


def mask_to_polygons(
    mask: np.ndarray, min_area: float = 1.0, pixel_edges: bool = True, tolerance: float = 0.0
) -> list[list[float]]:
    """(H, W) bool → polygons ``[[x1, y1, x2, y2, ...], ...]`` with holes kept.

    Contours come from ``cv2.findContours`` (RETR_CCOMP: outer boundaries and their holes).
    With ``pixel_edges`` (COCO) they are moved onto the pixels' outer edges, so that pycocotools
    rasterises them back to the same pixels (mean IoU 0.999 on COCO instance masks); without,
    they run through the boundary pixels' centres, which is what readers that fill polygons
    with ``cv2.fillPoly`` (Ultralytics YOLO, supervision) turn back into the same pixels.
    Parts smaller than ``min_area`` pixels are dropped (the default, 1, drops none).

    Args:
        tolerance: in pixels; above 0 every outer contour and every hole is simplified on its
            own (:func:`simplify_contour`) before the holes are spliced in, so no part and no
            hole is lost, however small; 0 (default) keeps every boundary pixel step.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    polygons = []
    for idx, (_, _, first_child, parent) in enumerate(hierarchy):
        if parent != -1:
            continue  # holes are handled with their outer contour
        outer = contours[idx][:, 0, :]
        area = cv2.contourArea(contours[idx])
        if area + len(outer) < min_area:
            continue
        if area == 0:  # a one-pixel-wide line: no inside
            if not pixel_edges:  # cv2.fillPoly paints the line itself
                polygons.append([float(v) for v in outer.reshape(-1)])
                continue
            for x, y in np.unique(outer, axis=0):  # one square per pixel
                polygons.append([float(x), float(y), x + 1.0, float(y), x + 1.0, y + 1.0, float(x), y + 1.0])
            continue
        outer = simplify_contour(outer, tolerance)
        holes, child = [], first_child
        while child != -1:
            holes.append(simplify_contour(contours[child][:, 0, :], tolerance))
            child = hierarchy[child][0]
        outer = _splice_all(outer, holes)
        loop = _to_pixel_edges(outer) if pixel_edges else outer.astype(np.float64)
        polygons.append([round(float(v), 2) for v in loop.reshape(-1)])
    return polygons


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons → (H, W) bool, rasterised by pycocotools exactly as COCO tools read them."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
