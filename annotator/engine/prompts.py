"""What a prompt gives back, and the rules that shape it: which of SAM's candidates to keep, a box
clipped to the image.

A prompt follows segment-anything's ``SamPredictor``: ``point_coords`` (N, 2) X, Y pixels of the
original image, ``point_labels`` 1 = positive / 0 = negative, ``box`` XYXY pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..classifier import LabelScore
from ..instances import UNLABELLED, Instances, Source
from ..sam import DecodedMasks

CANDIDATE_MARGIN = 0.02
"""Default margin of :func:`choose_candidate`: on COCO (``coco_tiny_val``, 815 instances, one click
each) +0.67 mIoU over SAM's own choice at the farthest interior point and +1.4 at a random
interior point (docs/benchmarks.md, "Masks against SamPredictor")."""


def choose_candidate(decoded: DecodedMasks, margin: float = CANDIDATE_MARGIN) -> int:
    """Which of SAM's candidate masks to keep: the largest of those whose predicted IoU is
    within ``margin`` of the best.

    SAM's three candidates for a lone click are nested (subpart, part, whole object) and its
    predicted IoUs for them often differ by less than their error; an annotator clicking an
    object usually means the whole of it, so near-ties go to the larger mask. ``margin=0`` is
    SAM's own rule (the best predicted IoU).

    Args:
        decoded: K candidates (low-res logits (K, 256, 256) and predicted IoU (K,)).
        margin: in predicted-IoU units, 0 to 1.
    Returns:
        Index into the K candidates. Area is counted in low-res cells (``logit > 0``).
    """
    iou = decoded.iou_predictions
    near = np.flatnonzero(iou >= iou.max() - margin)
    if len(near) == 1:
        return int(near[0])
    areas = (decoded.low_res_logits[near] > 0).sum(axis=(1, 2))
    return int(near[int(areas.argmax())])


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """A box prompt, ordered and clipped to the image.

    Args:
        box: (4,) XYXY pixels of the original image (corners in any order).
    Returns:
        (4,) float64 XYXY inside ``[0, width] x [0, height]``.
    Raises:
        ValueError: the box lies wholly outside the image.
    """
    b = np.asarray(box, dtype=np.float64).reshape(4)
    b = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
    if b[2] < 0 or b[3] < 0 or b[0] > width or b[1] > height:
        raise ValueError(f"box outside the {width}x{height} image")
    return np.clip(b, 0, [width, height, width, height])


@dataclass
class PromptResult:
    """A decoded prompt: the mask, and what a person's next click refines it with.

    Attributes:
        mask: (H, W) bool at the original resolution, the chosen candidate.
        predicted_iou: SAM's predicted IoU of ``mask``.
        low_res_logits: (1, 256, 256) float32 logits of ``mask`` (for ``mask_input``).
        candidates: the first decoder pass's candidates (K = 3 with multimask output, else 1).
        chosen: index in ``candidates`` of the one kept (:func:`choose_candidate`), which
            refinement passes (see :meth:`Engine.predict`) then refined into ``mask``.
        labels: top-k label suggestions, best first; empty without CLIP, and until
            :meth:`Engine.suggest_for` fills them in when ``labels_pending``.
        labels_pending: decoded with ``wait_for_labels=False`` before the image's CLIP dense
            pass was done: the suggestions are still to come.
    """

    mask: np.ndarray
    predicted_iou: float
    low_res_logits: np.ndarray
    candidates: DecodedMasks
    chosen: int
    labels: list[LabelScore] = field(default_factory=list)
    labels_pending: bool = False

    @property
    def area(self) -> int:
        """Mask pixel count."""
        return int(self.mask.sum())

    def to_instances(
        self, source: Source = Source.CLICK, label: str | None = None, prompt: dict | None = None
    ) -> Instances:
        """The mask as one :class:`~annotator.instances.Instances`.

        Args:
            source: how it was prompted (``CLICK`` or ``BOX``).
            label: the class name; ``None`` = the best suggestion (or ``object`` without one).
                Its score is the suggestion's probability of that name, none for a name the
                suggestions do not hold.
            prompt: the prompt, kept in ``data["prompt"]``.
        """
        if label is None:
            label = self.labels[0].name if self.labels else UNLABELLED
        score = next((s.score for s in self.labels if s.name == label), None)
        cid = next((s.category_id for s in self.labels if s.name == label), -1)
        return Instances(
            self.mask[None],
            scores=[score],
            predicted_iou=[self.predicted_iou],
            class_names=[label],
            class_ids=[cid],
            source=source,
            data={"prompt": [prompt or {}]},
        )


__all__ = ["CANDIDATE_MARGIN", "PromptResult", "choose_candidate", "clip_box"]
