"""The affinity decoder of SAM-CP (Chen et al., 2024), training-free.

SAM-CP composes two prompts over SAM patches, both answered by one "unified affinity decoder"
that maps queries × patches to an affinity matrix:

- Prompt I (semantic): does patch P match label T?  Queries are the vocabulary's CLIP text
  embeddings; the answer is an (N patches, K labels) matrix.
- Prompt II (instance): do patches P1, P2 of one label belong to one instance?  Queries are
  instances under construction (each a set of member patches); the answer is a (Q, N) matrix.

:class:`AffinityDecoder` is that interface; :class:`TrainingFreeAffinity` answers it with no
training: Prompt I by the project's one region classifier (CLIP region features against the
vocabulary's text embeddings, :class:`~annotator.classifier.RegionClassifier`), Prompt II by cosine similarity of mask-pooled SAM features (and CLIP features when
present) gated by adjacency, plus containment (a patch mostly inside an instance and similar
enough is a part of it).
A trained decoder with the same two methods can replace it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..classifier import RegionClassifier
from .regions import RegionFeatures


class AffinityDecoder(Protocol):
    """Queries × patches → affinity, SAM-CP's unified affinity decoder interface."""

    def semantic(self, classifier: RegionClassifier, regions: RegionFeatures) -> torch.Tensor:
        """Prompt I. ``classifier`` holds the text queries (K classes) → (N, K) float32 in
        [0, 1] on the classifier's device, rows summing to 1 (probability of each label for
        each patch), zero rows for empty patches."""
        ...

    def instance(self, members: np.ndarray, regions: RegionFeatures) -> np.ndarray:
        """Prompt II. ``members``: (Q, N) bool, the patches already in each instance query →
        (Q, N) float32 in [0, 1], affinity of every patch to every query."""
        ...


@dataclass(frozen=True)
class TrainingFreeAffinity:
    """Training-free answers to SAM-CP's two prompts.

    Attributes:
        sam_low, sam_high: SAM-feature cosine similarities mapped to affinity 0 and 1 (linear
            in between) for adjacent patches.  Calibrated on 8 COCO photos with MobileSAM: of
            adjacent patch pairs of one ground-truth object 14 % reach 0.95, of two objects 1 %.
        clip_low, clip_high: the same for CLIP region features (averaged with the SAM term).
        containment: a patch with at least this fraction of its area inside an instance is a
            candidate part of it ...
        part_low, part_high: ... and its affinity is its feature similarity ramped between these
            (lower than for mere neighbours: a part is rarely a separate object).
    """

    sam_low: float = 0.95
    sam_high: float = 0.99
    clip_low: float = 0.95
    clip_high: float = 0.99
    containment: float = 0.8
    part_low: float = 0.5
    part_high: float = 0.6

    def semantic(self, classifier: RegionClassifier, regions: RegionFeatures) -> torch.Tensor:
        """Prompt I; see :class:`AffinityDecoder`: the region classifier's probabilities.

        Raises:
            ValueError: the regions have no CLIP features.
        """
        if regions.clip is None:
            raise ValueError("Prompt I needs CLIP region features")
        return classifier.probs(regions.clip)

    def instance(self, members: np.ndarray, regions: RegionFeatures) -> np.ndarray:
        """Prompt II; see :class:`AffinityDecoder`."""
        members = np.asarray(members, bool).reshape(-1, len(regions))
        m = torch.as_tensor(members, dtype=torch.float32)
        weights = m * torch.as_tensor(regions.areas, dtype=torch.float32)  # area-weighted query features
        sam_cos = _cosine(weights, regions.sam)
        clip_cos = None if regions.clip is None else _cosine(weights, regions.clip)

        def similarity(sam_range: tuple[float, float], clip_range: tuple[float, float]) -> np.ndarray:
            score = _ramp(sam_cos, *sam_range)
            if clip_cos is not None:
                score = 0.5 * (score + _ramp(clip_cos, *clip_range))
            return score.numpy()

        touching = (members.astype(np.float32) @ regions.adjacency.astype(np.float32)) > 0
        affinity = similarity((self.sam_low, self.sam_high), (self.clip_low, self.clip_high)) * touching
        part = regions.inside(members) >= self.containment  # mostly inside the query's union
        part_range = (self.part_low, self.part_high)
        affinity = np.where(part, np.maximum(affinity, similarity(part_range, part_range)), affinity)
        affinity[members] = 1.0
        return affinity.astype(np.float32)


def _cosine(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the weighted mean of member features (one per query) to each patch."""
    query = torch.nn.functional.normalize(weights @ features, dim=-1)
    return query @ features.T


def _ramp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return ((x - low) / max(high - low, 1e-6)).clamp(0.0, 1.0)
