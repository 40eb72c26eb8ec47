"""Region features and geometry of SAM patches, the inputs of the affinity decoder.

- SAM region features: each patch's coverage of SAM's 64×64 image-embedding grid, then a
  weighted mean of the image embedding (mask pooling, class-agnostic, as SAM-CP's patch tokens).
- CLIP region features: mask pooling on CLIP's dense map (OV-SAM's feature-crop baseline), when
  a CLIP is loaded.
- Geometry on a coarse grid: which patches touch (adjacency after a small dilation) and how much
  of each patch lies inside another (intersection over area).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..sam import SamImageEmbedding

GEOMETRY_SIDE = 256  # longest side of the grid used for adjacency / containment


@dataclass
class RegionFeatures:
    """Per-patch features and pairwise geometry of N patches of one image.

    Attributes:
        sam: (N, 256) float32 unit-norm mask-pooled SAM image embeddings (CPU).
        clip: (N, D) float32 unit-norm CLIP region embeddings (CPU), or ``None`` without CLIP.
        adjacency: (N, N) bool, patches that overlap or touch (within ~1 % of the image side).
        cover: (N, P) float32 in [0, 1], each patch's coverage of the cells of a coarse grid
            (longest side 256) over the image, for containment tests.
        areas: (N,) int64 pixel counts at the original resolution.
    """

    sam: torch.Tensor
    clip: torch.Tensor | None
    adjacency: np.ndarray
    cover: np.ndarray
    areas: np.ndarray

    def inside(self, members: np.ndarray) -> np.ndarray:
        """Fraction of each patch's area inside the union of each query's members.

        Args:
            members: (Q, N) bool.
        Returns:
            (Q, N) float32 in [0, 1].
        """
        members = np.asarray(members, bool).reshape(-1, len(self))
        union = np.minimum(members.astype(np.float32) @ self.cover, 1.0)  # (Q, P)
        inter = union @ self.cover.T  # (Q, N)
        return (inter / np.maximum(self.cover.sum(1), 1e-6)).clip(0, 1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.sam)


def coverage(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fraction of each cell of an (h, w) grid covered by each mask.

    Args:
        masks: (N, H, W) bool at the original resolution.
        size: (h, w) of the grid, spanning the whole image.
    Returns:
        (N, h, w) float32 in [0, 1] (area interpolation).
    """
    h, w = size
    out = np.empty((len(masks), h, w), np.float32)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return out


def sam_region_features(masks: np.ndarray, emb: SamImageEmbedding) -> torch.Tensor:
    """Mask pooling on SAM's image embedding.

    Args:
        masks: (N, H, W) bool at the original resolution of the image ``emb`` encodes.
        emb: the image's SAM embedding; its 64×64 grid covers the padded 1024² input, of which
            the top-left ``input_size / 16`` cells are the image.
    Returns:
        (N, 256) float32 unit-norm, on the CPU; zero rows for empty masks.
    """
    in_h, in_w = emb.input_size
    grid = emb.image_embedding.shape[-1]
    rows, cols = max(1, round(in_h * grid / 1024)), max(1, round(in_w * grid / 1024))
    cover = torch.as_tensor(coverage(masks, (rows, cols))).flatten(1)  # (N, rows*cols)
    feats = emb.image_embedding[0, :, :rows, :cols].float().cpu().flatten(1)  # (256, rows*cols)
    total = cover.sum(1, keepdim=True)
    pooled = (cover @ feats.T) / total.clamp_min(1e-6)
    return F.normalize(pooled, dim=-1) * (total > 0)


def patch_geometry(masks: np.ndarray, touch: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency and coarse coverage of patches, on a grid of longest side 256.

    Args:
        masks: (N, H, W) bool.
        touch: two patches touch when they come within this fraction of the longest side.
    Returns:
        ``(adjacency (N, N) bool, cover (N, P) float32)``; see :class:`RegionFeatures`.
    """
    n, h, w = masks.shape
    scale = GEOMETRY_SIDE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    cover = coverage(masks, size)
    occupied = (cover > 0.25).astype(np.float32)
    radius = max(1, round(touch * GEOMETRY_SIDE))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = np.stack([cv2.dilate(o, kernel) for o in occupied]) if n else occupied
    a = torch.as_tensor(occupied.reshape(n, -1))
    g = torch.as_tensor(grown.reshape(n, -1))
    adjacency = ((g @ a.T) > 0).numpy()
    return adjacency | adjacency.T, cover.reshape(n, -1)


def region_features(
    masks: np.ndarray,
    emb: SamImageEmbedding,
    clip: torch.Tensor | None = None,
) -> RegionFeatures:
    """All region features of a set of patches.

    Args:
        masks: (N, H, W) bool patches at the original resolution.
        emb: SAM embedding of the image.
        clip: (N, D) CLIP region embeddings computed by the caller, or ``None``.
    Raises:
        ValueError: ``clip`` has a different number of rows than ``masks``.
    """
    if clip is not None and len(clip) != len(masks):
        raise ValueError(f"{len(clip)} CLIP embeddings for {len(masks)} patches")
    adjacency, cover = patch_geometry(masks)
    return RegionFeatures(
        sam=sam_region_features(masks, emb),
        clip=None if clip is None else F.normalize(clip.float().cpu(), dim=-1),
        adjacency=adjacency,
        cover=cover,
        areas=masks.sum(axis=(1, 2), dtype=np.int64),
    )
