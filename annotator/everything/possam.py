"""The PosSAM pass (VS et al., 2024, "PosSAM: Panoptic Open-vocabulary Segment Anything"), training-free.

Top-down: SAM's masks are taken as they are, with SAM's predicted IoU as mask quality, and each
mask is classified by an ensemble of two CLIP classifiers:

- ``p_in``: the mask-pooled dense CLIP features against the text embeddings (PosSAM's
  in-vocabulary classifier is a trained head on such pooled features; ours is not trained);
- ``p_out``: the CLIP embedding of the mask's image crop (the out-of-vocabulary classifier).

Mask-Aware Selective Ensembling (MASE), training-free variant: a geometric mean
``p ∝ p_in^(1 − w) · p_out^w`` whose weight ``w`` is set per mask from the two classifiers'
relative confidence ``r = c_out / (c_in + c_out)`` (``c`` = top probability) and regularised by
the predicted IoU: ``w = clip(alpha + beta · iou · (r − 1/2), 0, 1)``.  A sharp, well-segmented
mask leans towards the more confident classifier; a poor mask falls back to the fixed ``alpha``.
The panoptic score of a mask is its ensembled top probability × predicted IoU (mask-aware, as in
PosSAM's ranking).  There are no trained parts: it is named "PosSAM pass" for the structure it
follows, not for PosSAM's trained weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..classifier import RegionClassifier
from ..instances import Instances, Source


@dataclass(frozen=True)
class MaseConfig:
    """Mask-Aware Selective Ensembling settings (see module doc).

    Attributes:
        alpha: weight of the crop classifier when the classifiers are equally confident.
        beta: how strongly relative confidence, scaled by predicted IoU, moves the weight.
        label_threshold: masks whose ensembled top probability is below this are background.
    """

    alpha: float = 0.5
    beta: float = 1.0
    label_threshold: float = 0.0


def mase(
    p_in: torch.Tensor, p_out: torch.Tensor, predicted_iou: torch.Tensor, config: MaseConfig = MaseConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-Aware Selective Ensembling of two classifiers' probabilities.

    Args:
        p_in: (N, K) float, rows sum to 1 (dense mask-pooled classifier).
        p_out: (N, K) float, rows sum to 1 (crop classifier).
        predicted_iou: (N,) float in [0, 1], mask quality.
    Returns:
        ``(probs (N, K) float32, rows sum to 1; w (N,) float32 in [0, 1], the weight of p_out)``.
    Raises:
        ValueError: shapes differ.
    """
    if p_in.shape != p_out.shape or p_in.shape[0] != predicted_iou.shape[0]:
        raise ValueError(f"shapes differ: {tuple(p_in.shape)}, {tuple(p_out.shape)}, {tuple(predicted_iou.shape)}")
    c_in, c_out = p_in.max(dim=1).values, p_out.max(dim=1).values
    r = c_out / (c_in + c_out).clamp_min(1e-12)
    iou = predicted_iou.float().clamp(0, 1)
    w = (config.alpha + config.beta * iou * (r - 0.5)).clamp(0.0, 1.0)
    log_p = (1 - w)[:, None] * p_in.float().clamp_min(1e-12).log() + w[:, None] * p_out.float().clamp_min(1e-12).log()
    return log_p.softmax(dim=1), w.float()


def possam_pass(
    patches: Instances,
    dense_embeddings: torch.Tensor | None = None,
    crop_embeddings: torch.Tensor | None = None,
    classifier: RegionClassifier | None = None,
    config: MaseConfig = MaseConfig(),
    source: Source = Source.POSSAM,
) -> Instances:
    """Classify each SAM mask by MASE (see module doc).

    Args:
        patches: from :func:`~.patches.generate_patches` (N masks with predicted IoU).
        dense_embeddings: (N, D) unit-norm mask-pooled CLIP embeddings, or ``None``.
        crop_embeddings: (N, D) unit-norm crop CLIP embeddings, or ``None``.
        classifier: the vocabulary's region classifier (both classifiers' probabilities come
            from its :meth:`~annotator.classifier.RegionClassifier.distribution`, the ensemble
            goes through its ``restrict``; a mask left with no probability is dropped);
            ``None`` = unlabelled masks scored by predicted IoU.
        source: the provenance to record (``PATCHES`` when the everything mode's raw-patches
            method uses this pass with one classifier).
    Returns:
        Instances, best score first, ``data["patches"]`` the patch each came from (masks may
        overlap; see :func:`~.panoptic.assemble_panoptic`).
    Raises:
        ValueError: a classifier without any region embedding.
    """
    n = len(patches)
    patch_index = [(i,) for i in range(n)]
    if classifier is None or n == 0:
        return Instances(
            patches.masks,
            scores=patches.predicted_iou,
            predicted_iou=patches.predicted_iou,
            source=source,
            data={"patches": patch_index},
        )
    p_in = None if dense_embeddings is None else classifier.distribution(dense_embeddings)
    p_out = None if crop_embeddings is None else classifier.distribution(crop_embeddings)
    if p_in is None and p_out is None:
        raise ValueError("labelling needs dense or crop embeddings")
    iou = torch.as_tensor(patches.predicted_iou, dtype=torch.float32, device=classifier.device)
    if p_in is None or p_out is None:
        p = p_in if p_out is None else p_out
    else:
        p, _ = mase(p_in, p_out, iou, config)
    top_p, top_k = classifier.restrict(p).max(dim=1)
    score = (top_p * iou).cpu().numpy()
    named = top_p.cpu().numpy()
    keep = np.nonzero((named > 0) & (named >= config.label_threshold))[0]
    k = top_k.cpu().numpy()
    vocab = classifier.vocabulary
    out = Instances(
        patches.masks[keep],
        scores=score[keep],
        predicted_iou=patches.predicted_iou[keep],
        class_names=[vocab.names[k[i]] for i in keep],
        class_ids=[vocab.ids[k[i]] for i in keep],
        isthing=[classifier.isthing(int(k[i])) for i in keep],
        source=source,
        data={"patches": [patch_index[i] for i in keep]},
    )
    return out.sorted_by_score()
