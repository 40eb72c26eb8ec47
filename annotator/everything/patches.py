"""SAM patches over a whole image: a point grid, decoded in small batches, filtered early.

Follows ``segment_anything.SamAutomaticMaskGenerator`` (Kirillov et al., 2023): grid point
prompts, three candidates each, predicted-IoU and stability-score filtering, box NMS. Faster:

- candidates under the predicted-IoU threshold are dropped before the mask upscaler runs;
- stability scores are computed on the low-res logits (the unpadded 256-grid), boxes for NMS
  on those logits upsampled to the input scale, and only the survivors of NMS are upsampled to
  the original resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.amg import remove_small_regions as sam_remove_small_regions
from torchvision.ops import nms

from ..sam import LOW_RES, PAD_LOGIT, SamImageEmbedding, SamPromptDecoder, upsample_logits


@dataclass(frozen=True)
class PatchConfig:
    """Automatic mask generation settings (names as in SamAutomaticMaskGenerator).

    Attributes:
        points_per_side: the grid is ``points_per_side``² points over the image.
        points_per_batch: prompts decoded together (small batches stay in the CPU caches).
        pred_iou_thresh: minimum SAM predicted IoU.
        stability_score_thresh: minimum IoU between the masks at logit ±``stability_score_offset``.
        stability_score_offset: logit offset for the stability score.
        box_nms_thresh: box IoU above which the lower-scored patch is dropped.
        min_mask_region_area: holes and islands smaller than this many pixels are removed from
            each kept patch, as SAM's ``remove_small_regions`` does (0 = off, the reference's
            default); patches left empty are dropped.
    """

    points_per_side: int = 32
    points_per_batch: int = 4
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0


@dataclass
class Patches:
    """SAM patches of one image, best first.

    Attributes:
        masks: (N, H, W) bool at the original resolution.
        predicted_iou: (N,) float32 SAM predicted IoU (the score).
        stability: (N,) float32 stability score.
        boxes: (N, 4) float32 XYXY pixels of the original image.
        points: (N, 2) float32 (X, Y) grid point that produced each patch.
    """

    masks: np.ndarray
    predicted_iou: np.ndarray
    stability: np.ndarray
    boxes: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.masks)


def grid_points(height: int, width: int, points_per_side: int) -> np.ndarray:
    """(n², 2) float (X, Y) points at the centres of an n×n grid over the image."""
    offset = 1.0 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.meshgrid(side * width, side * height)
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)


def stability_scores(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """(M, h, w) logits → (M,) IoU of the masks thresholded at +offset and -offset."""
    flat = logits.flatten(1)
    inter = (flat > offset).sum(1).float()
    union = (flat > -offset).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def _low_res_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(M, h, w) bool → (M, 4) XYXY in low-res cells (exclusive max); zeros for empty masks."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]
    r_idx = torch.arange(h, device=masks.device)
    c_idx = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, r_idx, h).min(1).values
    y1 = torch.where(rows, r_idx + 1, 0).max(1).values
    x0 = torch.where(cols, c_idx, w).min(1).values
    x1 = torch.where(cols, c_idx + 1, 0).max(1).values
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def _input_scale_boxes(logits: torch.Tensor, emb: SamImageEmbedding, chunk: int = 32) -> torch.Tensor:
    """(M, h, w) low-res logits → (M, 4) XYXY boxes in original pixels, from the logits upsampled
    4× (bilinear, as SAM's postprocessing does) to the resized input's scale."""
    height, width = emb.original_size
    in_h, in_w = emb.input_size
    scale = torch.tensor([width / in_w, height / in_h, width / in_w, height / in_h], device=logits.device)
    boxes = []
    for start in range(0, len(logits), chunk):
        up = F.interpolate(logits[start : start + chunk, None], scale_factor=4, mode="bilinear", align_corners=False)
        boxes.append(_low_res_boxes(up[:, 0, :in_h, :in_w] > 0))
    return torch.cat(boxes) * scale


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes, then drop islands, smaller than ``min_area`` pixels: segment-anything's own
    ``remove_small_regions`` in the order ``SamAutomaticMaskGenerator`` applies it.

    Args:
        mask: (H, W) bool.
    Returns:
        (H, W) bool; an island is kept if it is the mask's only one.
    """
    mask, _ = sam_remove_small_regions(mask, min_area, "holes")
    mask, _ = sam_remove_small_regions(mask, min_area, "islands")
    return mask


def generate_patches(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: PatchConfig = PatchConfig(),
    progress: Callable[[float], None] | None = None,
) -> Patches:
    """Automatic SAM patches for one encoded image (see module doc).

    Args:
        decoder: the prompt decoder of the SAM that encoded ``emb``.
        emb: from :meth:`SamPromptDecoder.encode`.
        config: thresholds and grid.
        progress: called with the fraction of grid points decoded, after each batch.
    Returns:
        :class:`Patches`, sorted by predicted IoU, highest first.
    """
    height, width = emb.original_size
    points = grid_points(height, width, config.points_per_side)
    rows, cols = emb.valid_low_res
    kept_logits, kept_iou, kept_stab, kept_pts = [], [], [], []
    for start in range(0, len(points), config.points_per_batch):
        if progress is not None:
            progress(start / len(points))
        batch = points[start : start + config.points_per_batch]
        logits, iou, prompt = decoder.decode_points(emb, batch, min_iou=config.pred_iou_thresh)
        if len(iou) == 0:
            continue
        logits = logits[:, :rows, :cols]
        stab = stability_scores(logits, config.stability_score_offset)
        ok = (iou >= config.pred_iou_thresh) & (stab >= config.stability_score_thresh)
        if ok.any():
            kept_logits.append(logits[ok])
            kept_iou.append(iou[ok])
            kept_stab.append(stab[ok])
            kept_pts.append(torch.as_tensor(batch, dtype=torch.float32)[prompt[ok].cpu()])
    if not kept_logits:
        return Patches(
            np.zeros((0, height, width), bool),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 4), np.float32),
            np.zeros((0, 2), np.float32),
        )
    logits = torch.cat(kept_logits)
    iou, stab, pts = torch.cat(kept_iou), torch.cat(kept_stab), torch.cat(kept_pts)
    boxes = _input_scale_boxes(logits, emb)
    keep = torch.nonzero(boxes[:, 2] > boxes[:, 0])[:, 0]
    keep = keep[nms(boxes[keep], iou[keep], config.box_nms_thresh)]  # best first
    masks, out_boxes = [], []
    logits_np = logits.cpu().numpy()
    for i in keep.tolist():
        full = np.full((LOW_RES, LOW_RES), PAD_LOGIT, np.float32)
        full[:rows, :cols] = logits_np[i]
        masks.append(upsample_logits(full, emb.input_size, emb.original_size))
    masks_np = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    if config.min_mask_region_area > 0:
        for i, m in enumerate(masks_np):
            masks_np[i] = remove_small_regions(m, config.min_mask_region_area)
    good = masks_np.reshape(len(masks_np), -1).any(1)
    masks_np = masks_np[good]
    final = keep.cpu().numpy()[good]
    for m in masks_np:
        ys, xs = np.nonzero(m)
        out_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Patches(
        masks=masks_np,
        predicted_iou=iou.cpu().numpy()[final].astype(np.float32),
        stability=stab.cpu().numpy()[final].astype(np.float32),
        boxes=np.asarray(out_boxes, dtype=np.float32).reshape(-1, 4),
        points=pts.cpu().numpy()[final],
    )
