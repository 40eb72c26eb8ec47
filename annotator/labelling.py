"""The label path in one place: pool a region's CLIP features, then name it.

Open-Vocabulary SAM's feature-crop baseline: a mask's region embedding is its mask pooling
over CLIP's dense map (``dense`` mode) or CLIP on the masked crop (``crop`` mode, see
:class:`~annotator.clip_regions.ClipRegionEncoder`); :class:`~annotator.classifier.RegionClassifier`
ranks the vocabulary for it. Find all's text queries (:class:`TextQueries`) name regions against
the named classes plus the rest of the vocabulary as background
(:mod:`annotator.text_prompts`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .classifier import LabelScore, RegionClassifier
from .clip_regions import ClipRegionEncoder
from .lru import BoundedLRU
from .text_prompts import TextQueryClassifier, resolve_classes
from .vocabulary import Vocabulary


class RegionLabeller:
    """Names masks of an image: pools the region's CLIP features, ranks the vocabulary.

    Args:
        clip: the region encoder (dense or crop mode).
        classifier: the vocabulary's text embeddings and the ranking.
        topk: suggestions per mask.
    """

    def __init__(self, clip: ClipRegionEncoder, classifier: RegionClassifier, topk: int = 5):
        self.clip = clip
        self.classifier = classifier
        self.topk = topk

    def pool(self, clip_dense: torch.Tensor, coverage: np.ndarray) -> torch.Tensor:
        """Mask pooling: coverage (H', W') float32 in [0, 1] over the whole image, at any
        resolution, resized (area) to the dense map's (Hf, Wf) → (1, D) region embedding."""
        hf, wf = clip_dense.shape[1:]
        weights = cv2.resize(coverage, (wf, hf), interpolation=cv2.INTER_AREA)
        return self.clip.mask_embeddings(clip_dense, weights[None])

    def from_low_res(
        self,
        logits: np.ndarray,
        valid_low_res: tuple[int, int],
        clip_dense: torch.Tensor | None,
        image: np.ndarray,
        mask: np.ndarray,
    ) -> list[LabelScore]:
        """Suggestions for a decoded mask, pooled from its low-res logits (cheaper than the
        full-resolution mask, and as good: the dense map is coarser still).

        Args:
            logits: (256, 256) float32 low-res mask logits over SAM's padded input frame.
            valid_low_res: (h, w) low-res cells over the image (the rest is padding).
            clip_dense: (C, Hf, Wf) dense map, or ``None`` in crop mode.
            image: (H, W, 3) uint8 RGB (crop mode).
            mask: (H, W) bool at the original resolution (crop mode).
        Returns:
            Top-k suggestions, best first.
        """
        if clip_dense is None:  # crop mode needs the full-resolution mask
            return self.from_mask(None, image, mask)
        hv, wv = valid_low_res
        coverage = (logits[:hv, :wv] > 0).astype(np.float32)
        return self.classifier.suggestions(self.pool(clip_dense, coverage), self.topk)

    def from_mask(self, clip_dense: torch.Tensor | None, image: np.ndarray, mask: np.ndarray) -> list[LabelScore]:
        """Suggestions for any (H, W) bool mask of ``image`` (e.g. an edited one); empty for an
        empty mask. ``clip_dense`` ``None`` = crop mode (CLIP on the masked crop)."""
        if not mask.any():
            return []
        if clip_dense is None:
            return self.classifier.suggestions(self.clip.crop_embedding(image, mask), self.topk)
        return self.classifier.suggestions(self.pool(clip_dense, mask.astype(np.float32)), self.topk)


class TextQueries:
    """Find all's Prompt I per question, built once: the named classes' text embeddings (from
    the vocabulary's, or encoded now for free text) against the vocabulary as background.

    Args:
        clip: encodes free-text names (the engine's prompt templates; CLIP also keeps them on disk).
        classifier: the vocabulary's text embeddings and logit scale.
        vocabulary: resolves names, synonyms and ids.
        templates: prompt templates for free text.
    """

    def __init__(
        self, clip: ClipRegionEncoder, classifier: RegionClassifier, vocabulary: Vocabulary, templates: tuple[str, ...]
    ):
        self.clip = clip
        self.classifier = classifier
        self.vocabulary = vocabulary
        self.templates = templates
        self._free_text: BoundedLRU[str, torch.Tensor] = BoundedLRU(max_items=4096)  # phrase -> (D,)
        self._queries: BoundedLRU[tuple, TextQueryClassifier] = BoundedLRU(max_items=16)

    def query(self, classes: list[str], threshold: float | None) -> TextQueryClassifier:
        """The query for these classes and threshold (the last 16 asked are kept).

        Raises:
            ValueError: no class, two names of one class, a threshold outside [0, 1].
        """
        key = (tuple(classes), threshold)
        return self._queries.get_or_compute(key, lambda: self._build(list(classes), threshold))

    def _build(self, classes: list[str], threshold: float | None) -> TextQueryClassifier:
        named = resolve_classes(classes, self.vocabulary)
        vocab_text = self.classifier.text
        new = list(dict.fromkeys(c.name for c in named if not c.in_vocabulary and c.name not in self._free_text))
        if new:
            free = Vocabulary("free text", tuple(new), tuple((n,) for n in new), tuple(range(1, len(new) + 1)))
            for name, row in zip(new, self.clip.class_embeddings(free, self.templates), strict=True):
                self._free_text.put(name, row)
        rows = [vocab_text[c.vocab_indices[0]] if c.in_vocabulary else self._free_text.get(c.name) for c in named]
        text = torch.stack([r.to(vocab_text.device) for r in rows])
        return TextQueryClassifier(named, text, vocab_text, threshold, self.classifier.logit_scale)


__all__ = ["RegionLabeller", "TextQueries"]
