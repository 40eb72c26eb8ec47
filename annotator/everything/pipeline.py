"""One everything run: SAM patches → a pass (SAM-CP, PosSAM or raw patches) → panoptic assembly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..classifier import RegionClassifier
from ..clip_regions import ClipRegionEncoder
from ..instances import Instances, Source
from ..sam import SamImageEmbedding, SamPromptDecoder
from .panoptic import PanopticResult, assemble_panoptic
from .patches import PatchConfig, generate_patches
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
class SegmentedImage:
    """An image's SAM patches and their CLIP region embeddings, kept so that a later pass on
    the same image (another method, a find-all) skips the SAM decoding and the CLIP pooling.

    Attributes:
        config: the patch settings they were made with (reused only for the same settings).
        patches: the SAM patches (source ``PATCHES``, dense masks).
        dense, crop: (N, D) unit-norm CLIP region embeddings on the model's device, or
            ``None`` until a pass needs them (see :func:`region_embeddings`).
    """

    config: PatchConfig
    patches: Instances
    dense: torch.Tensor | None = None
    crop: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held: the masks and the embeddings."""
        tensors = [t for t in (self.dense, self.crop) if t is not None]
        return self.patches.masks.nbytes + sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class EverythingResult:
    """What an everything run produced for one image.

    Attributes:
        method: the pass that ran.
        patches: the SAM patches it started from (source ``PATCHES``).
        instances: labelled (or ``object``) instances, best first; masks may overlap.
        panoptic: the non-overlapping segmentation assembled from ``instances``.
        labelled: whether CLIP named the instances.
        note: why the instances are unlabelled (or the labels meaningless), else ``None``.
        seconds: wall time per stage (``patches``, ``features``, ``pass``, ``panoptic``).
        segmented: the patches and region embeddings, for a later pass on the same image.
    """

    method: str
    patches: Instances
    instances: Instances
    panoptic: PanopticResult
    labelled: bool
    note: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    segmented: SegmentedImage | None = None

    def annotations(self) -> Instances:
        """The instances as annotations to keep: unlabelled ones carry no score (their score
        ranks mask quality, it is no label's confidence)."""
        if self.labelled:
            return self.instances
        out = self.instances[np.arange(len(self.instances))]
        out.scores[:] = np.nan
        return out


def region_embeddings(
    image: np.ndarray,
    segmented: SegmentedImage,
    clip: ClipRegionEncoder,
    clip_dense: torch.Tensor | None,
    method: str,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """CLIP embeddings of the patches: ``(dense, crop)``, each (N, D) unit-norm on the model's
    device or ``None``. Dense (mask pooling) whenever the image has a dense map; crop (the
    masked crop through the whole tower) for PosSAM's second classifier and when there is no
    dense map. Computed once: kept in ``segmented`` and taken from it."""
    masks = segmented.patches.masks
    if clip_dense is not None and segmented.dense is None:
        segmented.dense = clip.mask_embeddings(clip_dense, coverage(masks, tuple(clip_dense.shape[1:])))
    if (method == "possam" or clip_dense is None) and segmented.crop is None:
        segmented.crop = clip.crop_embeddings(image, masks)
    crop = segmented.crop if method == "possam" or clip_dense is None else None
    return (segmented.dense if clip_dense is not None else None), crop


def run_everything(
    image: np.ndarray,
    decoder: SamPromptDecoder,
    emb: SamImageEmbedding,
    config: EverythingConfig,
    clip: ClipRegionEncoder | None = None,
    clip_dense: torch.Tensor | None = None,
    classifier: RegionClassifier | None = None,
    note: str | None = None,
    progress: Callable[[float], None] | None = None,
    segmented: SegmentedImage | None = None,
) -> EverythingResult:
    """Segment (and label, with CLIP) a whole image.

    Args:
        image: (H, W, 3) uint8 RGB, the image ``emb`` encodes.
        decoder, emb: SAM's prompt decoder and the image's embedding.
        config: method and thresholds; ``config.patches`` must be set.
        clip: CLIP region encoder, or ``None`` for class-agnostic results labelled ``object``.
        clip_dense: (C, Hf, Wf) CLIP dense map of the image (dense mode), or ``None``.
        classifier: the vocabulary's region classifier; needed with ``clip``. Any
            :class:`~annotator.classifier.RegionClassifier` (e.g. find-all's
            :class:`~annotator.text_prompts.TextQueryClassifier`); regions it gives an all-zero
            row are background, dropped.
        note: shown with the result (e.g. why there is no CLIP).
        progress: called with the fraction done.
        segmented: this image's patches (and region embeddings) from an earlier run with
            ``config.patches``: SAM is not run again. Ignored when made with other settings.
    Raises:
        ValueError: ``config.patches`` is ``None``, or a CLIP without a classifier.
    """
    if config.patches is None:
        raise ValueError("config.patches must be set")
    if clip is not None and classifier is None:
        raise ValueError("a CLIP needs the vocabulary's region classifier")
    seconds = {}
    t0 = time.perf_counter()
    if segmented is None or segmented.config != config.patches:
        patch_progress = None if progress is None else (lambda f: progress(0.9 * f))
        segmented = SegmentedImage(
            config.patches, generate_patches(decoder, emb, config.patches, patch_progress, image)
        )
    patches = segmented.patches
    seconds["patches"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labelled = clip is not None and len(patches) > 0
    dense = crop = None
    if labelled:
        dense, crop = region_embeddings(image, segmented, clip, clip_dense, config.method)
    labels = classifier if labelled else None
    seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if config.method == "samcp":
        regions = region_features(patches.masks, emb, dense if dense is not None else crop)
        instances = samcp_pass(patches, regions, labels, config=config.samcp)
    elif config.method == "possam":
        instances = possam_pass(patches, dense, crop, labels, config.mase)
    else:
        pooled = dense if dense is not None else crop
        instances = possam_pass(patches, pooled, None, labels, config.mase, source=Source.PATCHES)
    seconds["pass"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    panoptic = assemble_panoptic(instances, config.overlap_threshold, config.min_area)
    seconds["panoptic"] = time.perf_counter() - t0
    if progress is not None:
        progress(1.0)
    if not labelled and note is None and clip is None:
        note = "no CLIP model loaded"
    return EverythingResult(config.method, patches, instances, panoptic, labelled, note, seconds, segmented)


__all__ = [
    "METHODS",
    "METHOD_TITLES",
    "EverythingConfig",
    "EverythingResult",
    "SegmentedImage",
    "run_everything",
]
