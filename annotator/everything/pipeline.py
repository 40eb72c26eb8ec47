"""One everything run: SAM patches → a pass (SAM-CP, PosSAM or raw patches) → panoptic assembly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..clip_regions import ClipRegionClassifier
from ..sam import SamImageEmbedding, SamPromptDecoder
from ..vocabulary import Vocabulary
from .panoptic import Instance, PanopticResult, assemble_panoptic, empty_panoptic
from .patches import PatchConfig, Patches, generate_patches
from .possam import MaseConfig, possam_pass
from .regions import coverage, region_features
from .samcp import SamCpConfig, samcp_pass

METHODS = ("samcp", "possam", "patches")
METHOD_TITLES = {
    "samcp": "SAM-CP: label patches, merge them into instances",
    "possam": "PosSAM: classify each mask (MASE ensemble)",
    "patches": "Patches: raw SAM patches, one annotation each",
}


@dataclass(frozen=True)
class EverythingConfig:
    """Settings of an everything run.

    Attributes:
        method: ``samcp`` (bottom-up merging), ``possam`` (top-down classification) or
            ``patches`` (SAM patches as they are, labelled by mask pooling when CLIP is loaded).
        patches: grid and filters of the SAM patches; ``None`` = the engine's default.
        samcp: thresholds of the SAM-CP pass.
        mase: settings of the PosSAM pass.
        overlap_threshold, min_area: panoptic assembly (see
            :func:`~.panoptic.assemble_panoptic`).
    """

    method: str = "samcp"
    patches: PatchConfig | None = None
    samcp: SamCpConfig = field(default_factory=SamCpConfig)
    mase: MaseConfig = field(default_factory=MaseConfig)
    overlap_threshold: float = 0.5
    min_area: int = 16

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown everything method {self.method!r}; choose one of {', '.join(METHODS)}")


@dataclass
class EverythingResult:
    """What an everything run produced for one image.

    Attributes:
        method: the pass that ran.
        patches: the SAM patches it started from.
        instances: labelled (or ``object``) instances, best first; masks may overlap.
        panoptic: the non-overlapping segmentation assembled from ``instances``.
        labelled: whether CLIP named the instances.
        note: why the instances are unlabelled (or the labels meaningless), else ``None``.
        seconds: wall time per stage (``patches``, ``features``, ``pass``, ``panoptic``).
    """

    method: str
    patches: Patches
    instances: list[Instance]
    panoptic: PanopticResult
    labelled: bool
    note: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_everything(
    image: np.ndarray,
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: EverythingConfig,
    classifier: ClipRegionClassifier | None = None,
    clip_dense: torch.Tensor | None = None,
    text_embeddings: torch.Tensor | None = None,
    vocabulary: Vocabulary | None = None,
    note: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> EverythingResult:
    """Segment (and label, with CLIP) a whole image.

    Args:
        image: (H, W, 3) uint8 RGB, the image ``emb`` encodes.
        decoder, emb: SAM's prompt decoder and the image's embedding.
        config: method and thresholds; ``config.patches`` must be set.
        classifier: CLIP, or ``None`` for class-agnostic results labelled ``object``.
        clip_dense: (C, Hf, Wf) CLIP dense map of the image (dense mode), or ``None``.
        text_embeddings: (K, D) unit-norm embeddings of ``vocabulary``; needed with a classifier.
        note: shown with the result (e.g. why there is no CLIP).
        progress: called with the fraction done.
    Raises:
        ValueError: ``config.patches`` is ``None``, or a classifier without text embeddings.
    """
    if config.patches is None:
        raise ValueError("config.patches must be set")
    if classifier is not None and (text_embeddings is None or vocabulary is None):
        raise ValueError("a classifier needs text embeddings and their vocabulary")
    seconds = {}
    t0 = time.perf_counter()
    patch_progress = None if progress is None else (lambda f: progress(0.9 * f))
    patches = generate_patches(decoder, emb, config.patches, patch_progress)
    seconds["patches"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labelled = classifier is not None and len(patches) > 0
    dense = crop = None
    if labelled:
        if clip_dense is not None:
            weights = coverage(patches.masks, tuple(clip_dense.shape[1:]))
            dense = classifier.mask_embeddings(clip_dense, weights).cpu()
        if config.method == "possam" or clip_dense is None:
            crop = classifier.crop_embeddings(image, patches.masks).cpu()
    text = text_embeddings if labelled else None
    seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if config.method == "samcp":
        regions = region_features(patches.masks, emb, dense if dense is not None else crop)
        instances = samcp_pass(patches, regions, text, vocabulary, config=config.samcp)
    elif config.method == "possam":
        instances = possam_pass(patches, dense, crop, text, vocabulary, config.mase)
    else:
        pooled = dense if dense is not None else crop
        instances = possam_pass(patches, pooled, None, text, vocabulary, config.mase)
    seconds["pass"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    height, width = emb.original_size
    panoptic = (
        assemble_panoptic(instances, config.overlap_threshold, config.min_area)
        if instances
        else empty_panoptic(height, width)
    )
    seconds["panoptic"] = time.perf_counter() - t0
    if progress is not None:
        progress(1.0)
    if not labelled and note is None and classifier is None:
        note = "no CLIP model loaded"
    return EverythingResult(config.method, patches, instances, panoptic, labelled, note, seconds)


__all__ = [
    "METHODS",
    "METHOD_TITLES",
    "EverythingConfig",
    "EverythingResult",
    "Instance",
    "run_everything",
]
