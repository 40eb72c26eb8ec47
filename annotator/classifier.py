"""The one region classifier: region embeddings × text embeddings → class probabilities.

Every labelling step uses it (a click's suggestions, SAM-CP's Prompt I, PosSAM's two
classifiers): the cosine similarity of unit-norm CLIP region embeddings (see
:mod:`annotator.clip_regions`) with the vocabulary's unit-norm text embeddings, times
:data:`LOGIT_SCALE`, softmaxed over the whole vocabulary (CLIP's zero-shot classifier, Radford
et al., 2021).  It runs on the text embeddings' device (the GPU when there is one).

Large vocabularies (over :data:`HALF_SCAN_MIN_CLASSES` names, e.g. ImageNet-21k's 21,843) are
scanned in float16 (half the memory traffic), then the best :data:`RESCORE` candidates of each
region are scored again in float32: the top-k and their probabilities are exact, and so are
the terms that dominate the softmax normaliser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .vocabulary import Vocabulary

LOGIT_SCALE = 100.0  # CLIP's learned temperature: exp(logit_scale) = 100 in OpenAI's and open_clip's models
HALF_SCAN_MIN_CLASSES = 2048
RESCORE = 32


@dataclass(frozen=True)
class LabelScore:
    """One label suggestion: ``name`` of the vocabulary, its ``category_id``, ``score`` in [0, 1]
    (the class probability, see :class:`RegionClassifier`)."""

    name: str
    category_id: int
    score: float


class RegionClassifier:
    """Scores region embeddings against a vocabulary's text embeddings (see module doc).

    Args:
        text_embeddings: (K, D) unit-norm class embeddings; their device is where scoring runs.
        vocabulary: the K classes (names, ids, ``isthing``).
        logit_scale: the softmax temperature, :data:`LOGIT_SCALE` by default.
    Raises:
        ValueError: embeddings and vocabulary differ in length.
    """

    def __init__(self, text_embeddings: torch.Tensor, vocabulary: Vocabulary, logit_scale: float = LOGIT_SCALE):
        if len(text_embeddings) != len(vocabulary):
            raise ValueError(f"{len(text_embeddings)} text embeddings for {len(vocabulary)} classes")
        self.text = text_embeddings.float().contiguous()
        self.vocabulary = vocabulary
        self.logit_scale = float(logit_scale)
        self.text_half = self.text.half() if len(vocabulary) > HALF_SCAN_MIN_CLASSES else None

    @property
    def device(self) -> torch.device:
        """Where the text embeddings live and scoring runs."""
        return self.text.device

    def __len__(self) -> int:
        return len(self.text)

    def isthing(self, k: int) -> bool:
        """Whether class ``k`` is a thing; a vocabulary without ``isthing`` has things only."""
        return True if k < 0 or self.vocabulary.isthing is None else bool(self.vocabulary.isthing[k])

    def _regions(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.to(self.device, torch.float32).reshape(-1, self.text.shape[1])

    @torch.inference_mode()
    def probs(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Class probabilities of N regions, exact (float32).

        Args:
            embeddings: (N, D) unit-norm region embeddings (any device); zero rows = empty regions.
        Returns:
            (N, K) float32 on :attr:`device`, rows summing to 1; all-zero rows for empty regions.
        """
        e = self._regions(embeddings)
        p = (self.logit_scale * e @ self.text.T).softmax(dim=-1)
        return p * (e.norm(dim=-1, keepdim=True) > 0)

    def distribution(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The softmax over every class this classifier weighs, for ensembling (PosSAM's MASE):
        here :meth:`probs`; a subclass may weigh classes it does not name (find-all's
        background, :class:`~annotator.text_prompts.TextQueryClassifier`).

        Returns:
            (N, K') float32 on :attr:`device`, rows summing to 1 (zero rows for empty regions).
        """
        return self.probs(embeddings)

    def restrict(self, distribution: torch.Tensor) -> torch.Tensor:
        """The vocabulary's class probabilities from a :meth:`distribution` (here the same
        tensor); (N, K'), → (N, K). A subclass may zero the rows of regions it rejects."""
        return distribution

    @torch.inference_mode()
    def top(self, embeddings: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` most probable classes of N regions (float16 scan + float32 rescoring for
        large vocabularies; exact probabilities).

        Args:
            embeddings: (N, D) unit-norm region embeddings.
        Returns:
            ``(probs (N, k) float32, indices (N, k) int64)``, best first, on :attr:`device`;
            zero probabilities for empty regions.
        """
        e = self._regions(embeddings)
        k = min(k, len(self.text))
        if self.text_half is None:
            logits = self.logit_scale * e @ self.text.T
            values, indices = torch.topk(logits, k, dim=1)
        else:
            logits = self.logit_scale * (e.half() @ self.text_half.T).float()
            cand = torch.topk(logits, min(RESCORE, logits.shape[1]), dim=1).indices  # (N, R)
            exact = self.logit_scale * torch.einsum("nrd,nd->nr", self.text[cand], e)
            logits.scatter_(1, cand, exact)  # the terms that dominate the normaliser are now exact
            values, order = torch.topk(exact, k, dim=1)
            indices = torch.gather(cand, 1, order)
        probs = torch.exp(values - torch.logsumexp(logits, dim=1, keepdim=True))
        return probs * (e.norm(dim=-1, keepdim=True) > 0), indices

    def suggestions(self, embedding: torch.Tensor, k: int = 5) -> list[LabelScore]:
        """Top-``k`` :class:`LabelScore` of one region, best first; empty for an empty region.

        Args:
            embedding: (D,) or (1, D) unit-norm region embedding.
        """
        probs, indices = self.top(self._regions(embedding)[:1], k)
        if not bool(probs.any()):  # an empty region matches nothing
            return []
        vocab = self.vocabulary
        return [
            LabelScore(vocab.names[i], vocab.ids[i], float(p))
            for p, i in zip(probs[0].tolist(), indices[0].tolist(), strict=True)
        ]


__all__ = ["HALF_SCAN_MIN_CLASSES", "LOGIT_SCALE", "RESCORE", "LabelScore", "RegionClassifier"]
