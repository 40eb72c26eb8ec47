"""SAM patches over a whole image: point prompts decoded in small batches, filtered early.

Follows ``segment_anything.SamAutomaticMaskGenerator`` (Kirillov et al., 2023), with its
``utils/amg`` helpers (point grid, stability score, mask boxes, ``MaskData``): point prompts,
three candidates each, predicted-IoU and stability-score filtering, box NMS. The prompts come
from SAM's uniform grid (``sampler="grid"``) or, far fewer, one per image segment not yet
explained by earlier masks (``sampler="segments"``, :mod:`.prompts`). Faster than the reference:

- candidates under the predicted-IoU threshold are dropped before the mask upscaler runs;
- stability scores are computed on the low-res logits (the unpadded 256-grid);
- each mask is upsampled to the original resolution only on the window of its positive low-res
  cells, for its NMS box (the reference's box) and, for the survivors of NMS, for the final mask
  and the small-region clean-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from segment_anything.utils.amg import MaskData, build_point_grid, calculate_stability_score
from segment_anything.utils.amg import remove_small_regions as sam_remove_small_regions
from torchvision.ops import nms

from ..instances import Instances, Source
from ..masks import masks_to_boxes
from ..sam import SamImageEmbedding, SamPromptDecoder
from ..sam_frame import LOW_RES, PAD_LOGIT, upsample_logits
from .prompts import EXPLAIN_IOU, EXPLAIN_STABILITY, SegmentPromptConfig, SegmentPrompts, segment_image

SAMPLERS = ("grid", "segments")


@dataclass(frozen=True)
class PatchConfig:
    """Automatic mask generation settings (names as in SamAutomaticMaskGenerator).

    Attributes:
        sampler: ``grid`` (SAM's uniform grid of ``points_per_side``² points) or ``segments``
            (one point per image segment that earlier masks do not explain, see
            :mod:`.prompts`).
        points_per_side: the grid is ``points_per_side``² points over the image (``grid``).
        segments: settings of the ``segments`` sampler.
        points_per_batch: prompts decoded together (small batches stay in the CPU caches).
        pred_iou_thresh: minimum SAM predicted IoU.
        stability_score_thresh: minimum IoU between the masks at logit ±``stability_score_offset``.
        stability_score_offset: logit offset for the stability score.
        box_nms_thresh: box IoU above which the lower-scored patch is dropped.
        min_mask_region_area: holes and islands smaller than this many pixels are removed from
            each kept patch, as SAM's ``remove_small_regions`` does (0 = off, the reference's
            default); patches left empty are dropped.
    """

    sampler: str = "grid"
    points_per_side: int = 32
    segments: SegmentPromptConfig = field(default_factory=SegmentPromptConfig)
    points_per_batch: int = 4
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")


def grid_points(height: int, width: int, points_per_side: int) -> np.ndarray:
    """(n², 2) float (X, Y) pixels at the centres of an n×n grid over the image
    (segment-anything's ``amg.build_point_grid``, scaled to the image)."""
    return build_point_grid(points_per_side) * np.array([width, height], dtype=np.float64)


def _input_to_original(emb: SamImageEmbedding, device: torch.device) -> torch.Tensor:
    """(4,) float32 factors from XYXY pixels of the resized input to the original image's."""
    height, width = emb.original_size
    in_h, in_w = emb.input_size
    return torch.tensor([width / in_w, height / in_h, width / in_w, height / in_h], device=device)


def _low_res_boxes(logits: torch.Tensor, emb: SamImageEmbedding) -> torch.Tensor:
    """(M, rows, cols) unpadded low-res logits → (M, 4) float32 XYXY boxes in original pixels
    (exclusive max) of their positive cells: each cell is 4×4 input pixels, so a box is at most
    one cell larger than its upsampled mask's on each side."""
    return masks_to_boxes(logits > 0) * 4 * _input_to_original(emb, logits.device)


def _frame_boxes(logits: torch.Tensor, emb: SamImageEmbedding) -> torch.Tensor:
    """(M, rows, cols) unpadded low-res logits → (M, 4) float32 XYXY boxes (exclusive max) of
    their masks upsampled to the original resolution, as SAM's generator boxes them for NMS;
    each mask is upsampled on its low-res box's window only. On CUDA, all at once at the input
    scale (4× bilinear, as SAM's postprocessing) on the device instead."""
    if logits.device.type == "cuda":
        in_h, in_w = emb.input_size
        boxes = []
        for start in range(0, len(logits), 32):  # 32 masks of 1024² at a time
            chunk = logits[start : start + 32, None]
            up = torch.nn.functional.interpolate(chunk, scale_factor=4, mode="bilinear", align_corners=False)
            boxes.append(masks_to_boxes(up[:, 0, :in_h, :in_w] > 0))
        return torch.cat(boxes) * _input_to_original(emb, logits.device)
    low = _low_res_boxes(logits, emb).cpu().numpy()
    boxes = np.zeros((len(low), 4), np.float32)
    for i, candidate in enumerate(logits.cpu().numpy()):
        if low[i, 2] <= low[i, 0]:
            continue
        x0, y0, x1, y1 = _mask_window(low[i], emb, 0)
        window = _to_frame(candidate, emb, emb.original_size, (x0, y0, x1, y1))
        cols, rows = np.flatnonzero(window.any(0)), np.flatnonzero(window.any(1))
        if len(cols):
            boxes[i] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
    return torch.from_numpy(boxes).to(logits.device)


def _mask_window(box: np.ndarray, emb: SamImageEmbedding, margin: int) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) window of the original image holding a low-res box (see
    :func:`_low_res_boxes`) and its upsampled mask, with ``margin`` more pixels on each side."""
    height, width = emb.original_size
    cell = 4 * max(width / emb.input_size[1], height / emb.input_size[0])  # one low-res cell, original px
    pad = int(np.ceil(cell)) + 1 + margin
    x0, y0, x1, y1 = box
    return (
        max(int(x0) - pad, 0),
        max(int(y0) - pad, 0),
        min(int(np.ceil(x1)) + pad, width),
        min(int(np.ceil(y1)) + pad, height),
    )


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


def clean_margin(min_area: int) -> int:
    """Background pixels that :func:`remove_small_regions` needs around a mask's box to give on
    that window what it gives on the whole image: with ``m`` ≥ √min_area, each piece of the
    background band (clipped by the image's edges or not) that reaches the window's edge is a
    region of at least ``min_area`` pixels, or all of that region, so the holes found and filled
    are the same."""
    return int(np.ceil(np.sqrt(min_area))) if min_area > 0 else 0


def patch_mask(
    logits: np.ndarray, box: np.ndarray, emb: SamImageEmbedding, min_area: int
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """A candidate's mask at the original resolution, computed on its box's window only.

    Args:
        logits: (rows, cols) float32 unpadded low-res logits (see
            :meth:`SamImageEmbedding.valid_low_res`).
        box: (4,) XYXY original pixels of a box holding its upsampled mask: its positive
            low-res cells' (:func:`_low_res_boxes`) or the mask's own (:func:`_frame_boxes`).
        emb: the embedding it was decoded from.
        min_area: :func:`remove_small_regions`' ``min_area`` (0 = no clean-up).
    Returns:
        ``((x0, y0, x1, y1), window)``: the window (exclusive max) and the (y1 - y0, x1 - x0)
        bool mask there; the mask is False outside it. The same pixels as upsampling and
        cleaning the whole frame, but where OpenCV's 1/32-pixel fixed-point coordinates round
        the other way (rarely, a pixel on the mask's edge).
    """
    region = _mask_window(box, emb, clean_margin(min_area))
    window = _to_frame(logits, emb, emb.original_size, region)
    if min_area > 0:
        window = remove_small_regions(window, min_area)
    return region, window


def _decode_batch(
    decoder: SamPromptDecoder, emb: SamImageEmbedding, batch: np.ndarray, min_iou: float, offset: float
) -> MaskData | None:
    """Decode (B, 2) (X, Y) point prompts: ``MaskData`` of ``logits`` (M, rows, cols) over the
    unpadded low-res grid, ``iou``, ``stability``, ``points``, ``prompt`` (index in ``batch``) of
    the candidates with predicted IoU ≥ ``min_iou``; ``None`` when there is none."""
    rows, cols = emb.valid_low_res
    logits, iou, prompt = decoder.decode_points(emb, batch, min_iou=min_iou)
    if len(iou) == 0:
        return None
    data = MaskData(
        logits=logits[:, :rows, :cols],
        iou=iou,
        points=torch.as_tensor(batch, dtype=torch.float32)[prompt.cpu()],
        prompt=prompt,
    )
    data["stability"] = calculate_stability_score(data["logits"], 0.0, offset)
    return data


def _passing(data: MaskData, config: PatchConfig) -> MaskData:
    """The candidates passing the predicted-IoU and stability thresholds."""
    data.filter((data["iou"] >= config.pred_iou_thresh) & (data["stability"] >= config.stability_score_thresh))
    return data


def _concat(parts: list[MaskData]) -> MaskData | None:
    """The batches' candidates in one ``MaskData`` (one concatenation: ``MaskData.cat`` per batch
    copies everything kept so far each time); ``None`` when there are none."""
    parts = [p for p in parts if len(p["iou"])]
    if not parts:
        return None
    return MaskData(**{key: torch.cat([p[key] for p in parts]) for key, _ in parts[0].items()})


def _decode_grid(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: PatchConfig,
    progress: Callable[[float], None] | None,
) -> MaskData | None:
    """Decode the grid in small batches, keeping candidates that pass the predicted-IoU and
    stability filters (see :func:`_decode_batch`); ``None`` when none passes."""
    height, width = emb.original_size
    points = grid_points(height, width, config.points_per_side)
    kept = []
    for start in range(0, len(points), config.points_per_batch):
        if progress is not None:
            progress(start / len(points))
        data = _decode_batch(
            decoder, emb, points[start : start + config.points_per_batch], config.pred_iou_thresh,
            config.stability_score_offset,
        )  # fmt: skip
        if data is not None:
            kept.append(_passing(data, config))
    return _concat(kept)


def _decode_segments(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    image: np.ndarray,
    config: PatchConfig,
    progress: Callable[[float], None] | None,
) -> MaskData | None:
    """Decode one point per unexplained image segment (see :mod:`.prompts`); after each batch,
    each prompt's smallest mask that passes SAM's default thresholds explains its pixels."""
    prompts = SegmentPrompts(segment_image(image, config.segments), config.segments)
    work_h, work_w = prompts.work_size
    min_iou = min(config.pred_iou_thresh, EXPLAIN_IOU)
    kept = []
    for batch in prompts.batches(config.points_per_batch):
        if progress is not None:
            progress(prompts.fraction_visited)
        data = _decode_batch(decoder, emb, batch, min_iou, config.stability_score_offset)
        if data is None:
            continue
        confident = (data["iou"] >= EXPLAIN_IOU) & (data["stability"] >= EXPLAIN_STABILITY)
        area = (data["logits"] > 0).flatten(1).sum(1)
        for p in torch.unique(data["prompt"][confident]).tolist():
            which = torch.nonzero(confident & (data["prompt"] == p))[:, 0]
            smallest = which[torch.argmin(area[which])]
            prompts.explain(_to_frame(data["logits"][smallest].cpu().numpy(), emb, (work_h, work_w)))
        kept.append(_passing(data, config))
    return _concat(kept)


def _to_frame(
    logits: np.ndarray, emb: SamImageEmbedding, size: tuple[int, int], region: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """(rows, cols) float32 unpadded low-res logits → (h, w) bool mask of an image of ``size``
    (the original image or a resized copy), or of its ``region`` (x0, y0, x1, y1)."""
    rows, cols = emb.valid_low_res
    full = np.full((LOW_RES, LOW_RES), PAD_LOGIT, np.float32)
    full[:rows, :cols] = logits
    return upsample_logits(full, emb.input_size, size, region)


def generate_patches(
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: PatchConfig = PatchConfig(),
    progress: Callable[[float], None] | None = None,
    image: np.ndarray | None = None,
) -> Instances:
    """Automatic SAM patches for one encoded image (see module doc).

    Args:
        decoder: the prompt decoder of the SAM that encoded ``emb``.
        emb: from :meth:`SamPromptDecoder.encode`.
        config: sampler, thresholds and grid.
        progress: called with the fraction of prompts decoded (or segments visited), after
            each batch.
        image: (H, W, 3) uint8 RGB, the image ``emb`` encodes; needed by the ``segments``
            sampler.
    Returns:
        :class:`~annotator.instances.Instances` (source ``PATCHES``, unlabelled), sorted by
        predicted IoU, highest first; their score is the predicted IoU; ``data["stability"]``
        (N,) float32 stability score and ``data["points"]`` (N, 2) float32 (X, Y) of the point
        prompt that produced each.
    Raises:
        ValueError: the ``segments`` sampler without ``image``, or an image of another size
            than the encoded one.
    """
    height, width = emb.original_size
    if config.sampler == "segments":
        if image is None:
            raise ValueError("the segments sampler needs the image")
        if image.shape[:2] != (height, width):
            raise ValueError(f"image of size {image.shape[:2]}, but the embedding is of {(height, width)}")
        kept = _decode_segments(decoder, emb, image, config, progress)
    else:
        kept = _decode_grid(decoder, emb, config, progress)
    if kept is None or len(kept["iou"]) == 0:
        return Instances(
            np.zeros((0, height, width), bool),
            source=[],
            data={"stability": np.zeros(0, np.float32), "points": np.zeros((0, 2), np.float32)},
        )
    kept["boxes"] = _frame_boxes(kept["logits"], emb)
    kept.filter(kept["boxes"][:, 2] > kept["boxes"][:, 0])
    kept.filter(nms(kept["boxes"], kept["iou"], config.box_nms_thresh))  # best first
    kept.to_numpy()
    masks = np.zeros((len(kept["iou"]), height, width), bool)
    for i, logits in enumerate(kept["logits"]):
        (x0, y0, x1, y1), window = patch_mask(logits, kept["boxes"][i], emb, config.min_mask_region_area)
        masks[i, y0:y1, x0:x1] = window
    good = masks.any(axis=(1, 2))
    iou = kept["iou"][good].astype(np.float32)
    return Instances(
        masks[good],
        scores=iou,
        predicted_iou=iou,
        source=Source.PATCHES,
        data={"stability": kept["stability"][good].astype(np.float32), "points": kept["points"][good]},
    )
