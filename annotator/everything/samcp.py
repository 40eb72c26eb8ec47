"""The SAM-CP pass (Chen et al., 2024, "SAM-CP: Marrying SAM with Composable Prompts"), training-free.

Bottom-up: SAM patches are labelled by Prompt I and merged into instances by Prompt II.

1. Prompt I labels every patch (affinity to each text query); a patch whose best label has
   probability under ``label_threshold`` matches nothing well and is background (dropped).
   Without CLIP every patch is :data:`~.panoptic.UNLABELLED` and nothing is dropped.
2. Stuff categories (``isthing`` false in the vocabulary): all patches of one category form one
   segment.
3. Things (and unlabelled patches): patches are taken best score first; each one not yet used
   seeds an instance query, Prompt II scores all unused patches of the same label against the
   query, those at or above ``merge_threshold`` join, and the query is asked again with its new
   members until nothing joins (at most ``max_rounds`` times).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..vocabulary import Vocabulary
from .affinity import AffinityDecoder, TrainingFreeAffinity
from .panoptic import UNLABELLED, Instance
from .patches import Patches
from .regions import RegionFeatures


@dataclass(frozen=True)
class SamCpConfig:
    """Thresholds of the SAM-CP pass (see module doc).

    Attributes:
        label_threshold: minimum Prompt I probability of a patch's best label.
        merge_threshold: minimum Prompt II affinity for a patch to join an instance.
        max_rounds: Prompt II rounds per instance.
    """

    label_threshold: float = 0.0
    merge_threshold: float = 0.5
    max_rounds: int = 4


def samcp_pass(
    patches: Patches,
    regions: RegionFeatures,
    text_embeddings: torch.Tensor | None = None,
    vocabulary: Vocabulary | None = None,
    decoder: AffinityDecoder | None = None,
    config: SamCpConfig = SamCpConfig(),
) -> list[Instance]:
    """Label and merge the patches of one image into instances.

    Args:
        patches: from :func:`~.patches.generate_patches`.
        regions: their :class:`~.regions.RegionFeatures` (with CLIP features for labels).
        text_embeddings: (K, D) unit-norm class embeddings of ``vocabulary``, or ``None`` for
            class-agnostic merging.
        vocabulary: names, ids and ``isthing`` of the K classes.
        decoder: the affinity decoder; ``None`` = :class:`~.affinity.TrainingFreeAffinity`.
        config: thresholds.
    Returns:
        Instances, best score first. Their masks may overlap; see
        :func:`~.panoptic.assemble_panoptic`.
    Raises:
        ValueError: ``text_embeddings`` without a matching ``vocabulary`` or without CLIP
            region features.
    """
    decoder = decoder or TrainingFreeAffinity()
    n = len(patches)
    if n == 0:
        return []
    labelled = text_embeddings is not None
    if labelled:
        if vocabulary is None or len(vocabulary) != len(text_embeddings):
            raise ValueError("text embeddings need the vocabulary they were computed from")
        probs = decoder.semantic(text_embeddings, regions)  # (N, K)
        score_t, label_t = probs.max(dim=1)
        scores, labels = score_t.numpy().astype(np.float64), label_t.numpy()
        valid = (scores > 0) & (scores >= config.label_threshold)
    else:
        scores = patches.predicted_iou.astype(np.float64)
        labels = np.full(n, -1)
        valid = np.ones(n, bool)

    def isthing(k: int) -> bool:
        if k < 0 or vocabulary is None or vocabulary.isthing is None:
            return True
        return bool(vocabulary.isthing[k])

    groups: list[list[int]] = []
    used = ~valid
    for k in sorted({int(k) for k in labels[valid]}):
        if not isthing(k):
            members = np.nonzero(valid & (labels == k))[0]
            groups.append(members.tolist())
            used[members] = True
    for seed in np.argsort(-scores, kind="stable"):
        if used[seed]:
            continue
        members = np.zeros(n, bool)
        members[seed] = True
        used[seed] = True
        candidates = ~used & (labels == labels[seed])
        for _ in range(config.max_rounds):
            if not candidates.any():
                break
            affinity = decoder.instance(members[None], regions)[0]
            join = candidates & (affinity >= config.merge_threshold)
            if not join.any():
                break
            members |= join
            used |= join
            candidates &= ~join
        groups.append(np.nonzero(members)[0].tolist())

    instances = []
    for group in groups:
        k = int(labels[group[0]])
        areas = regions.areas[group].astype(np.float64)
        instances.append(
            Instance(
                mask=np.logical_or.reduce(patches.masks[group]),
                label=vocabulary.names[k] if k >= 0 else UNLABELLED,
                category_id=vocabulary.ids[k] if k >= 0 else None,
                isthing=isthing(k),
                score=float(np.average(scores[group], weights=np.maximum(areas, 1))),
                predicted_iou=float(patches.predicted_iou[group].max()),
                patches=tuple(int(i) for i in group),
            )
        )
    instances.sort(key=lambda inst: -inst.score)
    return instances
