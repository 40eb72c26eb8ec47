"""SAM patches over a whole image: a point grid, decoded in small batches, filtered early.

Follows ``segment_anything.SamAutomaticMaskGenerator`` (Kirillov et al., 2023), with its
``utils/amg`` helpers (point grid, stability score, mask boxes, ``MaskData``): grid point
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
from segment_anything.utils.amg import MaskData, build_point_grid, calculate_stability_score
from segment_anything.utils.amg import remove_small_regions as sam_remove_small_regions
from torchvision.ops import nms

from ..instances import Instances, Source
from ..masks import masks_to_boxes
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


def grid_points(height: int, width: int, points_per_side: int) -> np.ndarray:
    """(n², 2) float (X, Y) pixels at the centres of an n×n grid over the image
    (segment-anything's ``amg.build_point_grid``, scaled to the image)."""
    return build_point_grid(points_per_side) * np.array([width, height], dtype=np.float64)


def _input_scale_boxes(logits: torch.Tensor, emb: SamImageEmbedding, chunk: int = 32) -> torch.Tensor:
    """(M, h, w) low-res logits → (M, 4) XYXY boxes in original pixels, from the logits upsampled
    4× (bilinear, as SAM's postprocessing does) to the resized input's scale."""
    height, width = emb.original_size
    in_h, in_w = emb.input_size
    scale = torch.tensor([width / in_w, height / in_h, width / in_w, height / in_h], device=logits.device)
    boxes = []
    for start in range(0, len(logits), chunk):
        up = F.interpolate(logits[start : start + chunk, None], scale_factor=4, mode="bilinear", align_corners=False)
        boxes.append(masks_to_boxes(up[:, 0, :in_h, :in_w] > 0))
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


def _decode_grid(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: PatchConfig,
    progress: Callable[[float], None] | None,
) -> MaskData | None:
    """Decode the grid in small batches, keeping candidates that pass the predicted-IoU and
    stability filters: ``MaskData`` of ``logits`` (M, rows, cols) over the unpadded low-res
    grid, ``iou``, ``stability``, ``points``; ``None`` when none passes."""
    height, width = emb.original_size
    points = grid_points(height, width, config.points_per_side)
    rows, cols = emb.valid_low_res
    kept = None
    for start in range(0, len(points), config.points_per_batch):
        if progress is not None:
            progress(start / len(points))
        batch = points[start : start + config.points_per_batch]
        logits, iou, prompt = decoder.decode_points(emb, batch, min_iou=config.pred_iou_thresh)
        if len(iou) == 0:
            continue
        data = MaskData(
            logits=logits[:, :rows, :cols],
            iou=iou,
            points=torch.as_tensor(batch, dtype=torch.float32)[prompt.cpu()],
        )
        data["stability"] = calculate_stability_score(data["logits"], 0.0, config.stability_score_offset)
        data.filter((data["iou"] >= config.pred_iou_thresh) & (data["stability"] >= config.stability_score_thresh))
        if kept is None:
            kept = data
        else:
            kept.cat(data)
    return kept


def generate_patches(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: PatchConfig = PatchConfig(),
    progress: Callable[[float], None] | None = None,
) -> Instances:
    """Automatic SAM patches for one encoded image (see module doc).

    Args:
        decoder: the prompt decoder of the SAM that encoded ``emb``.
        emb: from :meth:`SamPromptDecoder.encode`.
        config: thresholds and grid.
        progress: called with the fraction of grid points decoded, after each batch.
    Returns:
        :class:`~annotator.instances.Instances` (source ``PATCHES``, unlabelled), sorted by
        predicted IoU, highest first; their score is the predicted IoU; ``data["stability"]``
        (N,) float32 stability score and ``data["points"]`` (N, 2) float32 (X, Y) of the grid
        point that produced each.
    """
    height, width = emb.original_size
    kept = _decode_grid(decoder, emb, config, progress)
    if kept is None or len(kept["iou"]) == 0:
        return Instances(
            np.zeros((0, height, width), bool),
            source=[],
            data={"stability": np.zeros(0, np.float32), "points": np.zeros((0, 2), np.float32)},
        )
    rows, cols = emb.valid_low_res
    kept["boxes"] = _input_scale_boxes(kept["logits"], emb)
    kept.filter(kept["boxes"][:, 2] > kept["boxes"][:, 0])
    kept.filter(nms(kept["boxes"], kept["iou"], config.box_nms_thresh))  # best first
    kept.to_numpy()
    masks = np.zeros((len(kept["iou"]), height, width), bool)
    for i, logits in enumerate(kept["logits"]):
        full = np.full((LOW_RES, LOW_RES), PAD_LOGIT, np.float32)
        full[:rows, :cols] = logits
        masks[i] = upsample_logits(full, emb.input_size, emb.original_size)
        if config.min_mask_region_area > 0:
            masks[i] = remove_small_regions(masks[i], config.min_mask_region_area)
    good = masks.any(axis=(1, 2))
    iou = kept["iou"][good].astype(np.float32)
    return Instances(
        masks[good],
        scores=iou,
        predicted_iou=iou,
        source=Source.PATCHES,
        data={"stability": kept["stability"][good].astype(np.float32), "points": kept["points"][good]},
    )
