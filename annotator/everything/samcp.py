"""The SAM-CP pass (Chen et al., 2024, "SAM-CP: Marrying SAM with Composable Prompts"), training-free.

Bottom-up: SAM patches are labelled by Prompt I and merged into instances by Prompt II.

1. Prompt I labels every patch (affinity to each text query); a patch whose best label has
   probability under ``label_threshold`` matches nothing well and is background (dropped).
   Without CLIP every patch is :data:`~annotator.instances.UNLABELLED` and nothing is dropped.
2. Stuff categories (``isthing`` false in the vocabulary): all patches of one category form one
   segment.
3. Things (and unlabelled patches): patches are taken best score first; each one not yet used
   seeds an instance query, Prompt II scores all unused patches of the same label against the
   query, those at or above ``merge_threshold`` join, and the query is asked again with its new
   members until nothing joins (at most ``max_rounds`` times).
4. Each group becomes one instance: the union of its patches, scored by the area-weighted mean
   of their label probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classifier import RegionClassifier
from ..instances import UNLABELLED, Instances, Source
from .affinity import AffinityDecoder, TrainingFreeAffinity
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


def label_patches(
    patches: Instances,
    regions: RegionFeatures,
    classifier: RegionClassifier | None,
    decoder: AffinityDecoder,
    config: SamCpConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1, Prompt I: each patch's best label and its probability.

    Returns:
        ``(scores (N,) float64, labels (N,) int64 class index or -1, valid (N,) bool)``; without
        a classifier every patch is valid, unlabelled (-1) and scored by its predicted IoU.
    """
    n = len(patches)
    if classifier is None:
        return patches.predicted_iou.astype(np.float64), np.full(n, -1), np.ones(n, bool)
    score_t, label_t = decoder.semantic(classifier, regions).max(dim=1)
    scores, labels = score_t.cpu().numpy().astype(np.float64), label_t.cpu().numpy()
    return scores, labels, (scores > 0) & (scores >= config.label_threshold)


def group_stuff(labels: np.ndarray, valid: np.ndarray, classifier: RegionClassifier | None) -> list[list[int]]:
    """Step 2: all valid patches of one stuff category form one group."""
    if classifier is None:
        return []
    stuff = [k for k in sorted({int(k) for k in labels[valid]}) if not classifier.isthing(k)]
    return [np.nonzero(valid & (labels == k))[0].tolist() for k in stuff]


def group_things(
    scores: np.ndarray,
    labels: np.ndarray,
    used: np.ndarray,
    regions: RegionFeatures,
    decoder: AffinityDecoder,
    config: SamCpConfig,
) -> list[list[int]]:
    """Step 3, Prompt II: seed an instance query with the best unused patch, let the unused
    patches of its label whose affinity reaches ``merge_threshold`` join, ask again with the
    new members (at most ``max_rounds`` times); repeat until every patch is used.

    Args:
        used: (N,) bool, patches already taken (invalid or stuff); updated in place.
    """
    n = len(scores)
    groups = []
    for seed in np.argsort(-scores, kind="stable"):
        if used[seed]:
            continue
        members = np.zeros(n, bool)
        members[seed] = used[seed] = True
        candidates = ~used & (labels == labels[seed])
        for _ in range(config.max_rounds):
            if not candidates.any():
                break
            join = candidates & (decoder.instance(members[None], regions)[0] >= config.merge_threshold)
            if not join.any():
                break
            members |= join
            used |= join
            candidates &= ~join
        groups.append(np.nonzero(members)[0].tolist())
    return groups


def merge_groups(
    patches: Instances,
    groups: list[list[int]],
    scores: np.ndarray,
    labels: np.ndarray,
    regions: RegionFeatures,
    classifier: RegionClassifier | None,
) -> Instances:
    """Step 4: one instance per group: the union of its patches, the group's label, the
    area-weighted mean of its patches' scores, the best predicted IoU; best score first."""
    h, w = patches.image_size
    masks = np.zeros((len(groups), h, w), bool)
    for i, group in enumerate(groups):
        masks[i] = np.logical_or.reduce(patches.masks[group])
    first = [int(labels[g[0]]) for g in groups]
    vocab = None if classifier is None else classifier.vocabulary
    out = Instances(
        masks,
        scores=[
            float(np.average(scores[g], weights=np.maximum(regions.areas[g].astype(np.float64), 1))) for g in groups
        ],
        predicted_iou=[float(patches.predicted_iou[g].max()) for g in groups],
        class_names=[vocab.names[k] if k >= 0 else UNLABELLED for k in first],
        class_ids=[vocab.ids[k] if k >= 0 else -1 for k in first],
        isthing=[classifier is None or classifier.isthing(k) for k in first],
        source=Source.SAMCP,
        data={"patches": [tuple(int(i) for i in g) for g in groups]},
    )
    return out.sorted_by_score()


def samcp_pass(
    patches: Instances,
    regions: RegionFeatures,
    classifier: RegionClassifier | None = None,
    decoder: AffinityDecoder | None = None,
    config: SamCpConfig = SamCpConfig(),
) -> Instances:
    """Label and merge the patches of one image into instances (steps 1–4 of the module doc).

    Args:
        patches: from :func:`~.patches.generate_patches`.
        regions: their :class:`~.regions.RegionFeatures` (with CLIP features for labels).
        classifier: the vocabulary's region classifier, or ``None`` for class-agnostic merging.
        decoder: the affinity decoder; ``None`` = :class:`~.affinity.TrainingFreeAffinity`.
        config: thresholds.
    Returns:
        Instances (source ``SAMCP``), best score first, ``data["patches"]`` the patch indices of
        each. Their masks may overlap; see :func:`~.panoptic.assemble_panoptic`.
    Raises:
        ValueError: a classifier without CLIP region features.
    """
    decoder = decoder or TrainingFreeAffinity()
    if len(patches) == 0:
        return Instances.empty(patches.image_size)
    scores, labels, valid = label_patches(patches, regions, classifier, decoder, config)
    stuff = group_stuff(labels, valid, classifier)
    used = ~valid
    for group in stuff:
        used[group] = True
    things = group_things(scores, labels, used, regions, decoder, config)
    return merge_groups(patches, stuff + things, scores, labels, regions, classifier)
