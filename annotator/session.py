"""One user's prompt on one image: points and a box, refinement, SAM's candidates, undo, and a
saved annotation re-prompted from its mask.

The prompt follows segment-anything's ``SamPredictor``: ``point_coords`` (N, 2) X, Y pixels of
the original image, ``point_labels`` 1 = positive / 0 = negative, ``box`` XYXY pixels. Each
point added to an existing mask is decoded with that mask's low-res logits as ``mask_input``
(SAM's interactive refinement, as in its predictor example); a new box starts from the points
alone. Undo restores the previous result without decoding again.

The session holds its image's embedding (from ``engine.embed``): it is the only place that
knows which image a prompt is for. Callers that share one engine between sessions may
serialise decodes (the CPU is shared), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import Engine, ImageEmbedding, PromptResult, clip_box
from .sam import DecodedMasks
from .sam_frame import mask_to_logits


@dataclass(frozen=True)
class Prompt:
    """Point and box prompts in original image pixels.

    Attributes:
        points: (X, Y) per point.
        labels: 1 (positive) or 0 (negative) per point.
        box: XYXY, or ``None``.
    """

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None

    @property
    def empty(self) -> bool:
        """No point and no box."""
        return not self.points and self.box is None

    @classmethod
    def from_dict(cls, data: dict) -> Prompt:
        """The prompt :meth:`as_dict` wrote (an annotation's ``prompt``); anything else (an
        everything-mode or merge record, a malformed one) → the empty prompt."""
        try:
            points = tuple((float(x), float(y)) for x, y in data.get("points") or ())
            labels = tuple(int(v) for v in data.get("labels") or ())
            box = data.get("box")
            box = None if box is None else tuple(float(v) for v in box)
        except (AttributeError, TypeError, ValueError):
            return cls()
        if len(points) != len(labels) or (box is not None and len(box) != 4):
            return cls()
        return cls(points, labels, box)

    def as_dict(self) -> dict:
        """JSON-ready ``{"points": [[x, y], ...], "labels": [...], "box": [x0, y0, x1, y1] | None}``."""
        return {
            "points": [list(p) for p in self.points],
            "labels": list(self.labels),
            "box": None if self.box is None else list(self.box),
        }


class PromptSession:
    """The prompt being built on one image, with its history for undo.

    Args:
        image: the image's key (path relative to the folder).
        embedding: its embeddings, from :meth:`~annotator.engine.Engine.embed`.
        max_history: undo steps kept (each holds a full-resolution mask); older ones are dropped.
        wait_for_labels: ``False``: decode without waiting for the image's CLIP dense pass when
            it is still running (results then come with ``labels_pending``; see
            :meth:`~annotator.engine.Engine.suggest_for`). The page does this.
    """

    def __init__(self, image: str, embedding: ImageEmbedding, max_history: int = 50, wait_for_labels: bool = True):
        self.image = image
        self.embedding = embedding
        self.max_history = max_history
        self.wait_for_labels = wait_for_labels
        self._history: list[tuple[Prompt, PromptResult]] = []
        self._redo: list[tuple[Prompt, PromptResult, int | None]] = []  # steps undone, last first
        self.replaces: int | None = None
        """The annotation this prompt re-prompts (see :meth:`start_from`), ``None`` for a new one."""

    @property
    def prompt(self) -> Prompt:
        """The current prompt (empty when nothing was clicked)."""
        return self._history[-1][0] if self._history else Prompt()

    @property
    def result(self) -> PromptResult | None:
        """The current prompt's decoded mask, or ``None``."""
        return self._history[-1][1] if self._history else None

    def _decode(self, engine: Engine, prompt: Prompt, mask_input: np.ndarray | None) -> PromptResult:
        pts = np.array(prompt.points, dtype=np.float64) if prompt.points else None
        labels = np.array(prompt.labels, dtype=np.int64) if prompt.points else None
        box = np.array(prompt.box, dtype=np.float64) if prompt.box is not None else None
        result = engine.predict(
            self.embedding,
            point_coords=pts,
            point_labels=labels,
            box=box,
            mask_input=mask_input,
            wait_for_labels=self.wait_for_labels,
        )
        self._push(prompt, result)
        return result

    def _push(self, prompt: Prompt, result: PromptResult) -> None:
        """A new step: undoable, and the end of what could be redone."""
        self._history.append((prompt, result))
        del self._history[: -self.max_history]
        self._redo.clear()

    @property
    def redoable(self) -> int:
        """Steps undone that :meth:`redo` can bring back (a new step forgets them)."""
        return len(self._redo)

    def add_point(self, engine: Engine, x: float, y: float, positive: bool = True) -> PromptResult:
        """Add a point and decode, refining the current mask (its low-res logits as ``mask_input``).

        Args:
            engine: the engine that made the session's embedding.
            x, y: original image pixels.
            positive: ``True`` adds to the object, ``False`` cuts away.
        Raises:
            ValueError: the point lies outside the image.
        """
        p = self.prompt
        prompt = Prompt((*p.points, (float(x), float(y))), (*p.labels, 1 if positive else 0), p.box)
        previous = self.result
        return self._decode(engine, prompt, None if previous is None else previous.low_res_logits)

    def set_box(self, engine: Engine, box) -> PromptResult:
        """Set (or replace) the box, keep the points, and decode.

        Args:
            box: XYXY original image pixels, corners in any order; clipped to the image.
        Raises:
            ValueError: the box lies wholly outside the image.
        """
        h, w = self.embedding.size
        b = clip_box(np.asarray(box, dtype=np.float64), w, h)
        p = self.prompt
        return self._decode(engine, Prompt(p.points, p.labels, tuple(float(v) for v in b)), None)

    def next_candidate(self, engine: Engine) -> PromptResult:
        """Show SAM's next candidate mask for the current prompt (see
        :meth:`~annotator.engine.Engine.next_candidate`; three, cycling). One undo step: undo
        brings the mask shown before back.

        Raises:
            ValueError: no prompt yet.
        """
        previous = self.result
        if previous is None:
            raise ValueError("no mask to change: click an object first")
        p = self.prompt
        result = engine.next_candidate(
            self.embedding,
            previous,
            point_coords=np.array(p.points, dtype=np.float64) if p.points else None,
            point_labels=np.array(p.labels, dtype=np.int64) if p.points else None,
            box=np.array(p.box, dtype=np.float64) if p.box is not None else None,
            wait_for_labels=self.wait_for_labels,
        )
        self._push(p, result)
        return result

    def start_from(
        self, mask: np.ndarray, prompt: Prompt, ann_id: int, has_labels: bool, predicted_iou: float | None = None
    ) -> PromptResult:
        """Start the prompt from a saved annotation (re-prompting it): its mask is the current
        result, given to SAM as ``mask_input`` (:func:`~annotator.sam_frame.mask_to_logits`)
        with the next point, and its prompt's points and box are kept; accepting then replaces
        annotation ``ann_id`` (:attr:`replaces`). Earlier history is dropped.

        Args:
            mask: (H, W) bool, the annotation's mask at the image's resolution.
            prompt: the annotation's prompt (empty when it had none: everything mode, merges).
            has_labels: the engine names masks (the result's labels are then pending).
            predicted_iou: the annotation's (``None``: 1, the mask is the user's).
        Raises:
            ValueError: the mask is not of this image's size, or empty.
        """
        if mask.shape != tuple(self.embedding.size) or not mask.any():
            raise ValueError(
                f"the mask is {mask.shape[::-1]}, not a non-empty mask of this {self.embedding.size[::-1]} image"
            )
        logits = mask_to_logits(mask, self.embedding.sam.input_size)
        iou = 1.0 if predicted_iou is None else float(predicted_iou)
        decoded = DecodedMasks(logits, np.full(1, iou, np.float32))
        result = PromptResult(mask, iou, logits, decoded, 0, labels_pending=has_labels)
        self._history = [(prompt, result)]
        self._redo.clear()
        self.replaces = int(ann_id)
        return result

    def edit(self, mask: np.ndarray, has_labels: bool) -> PromptResult:
        """Make a hand-edited mask (a brush or eraser stroke, a polygon; see
        :mod:`annotator.mask_edit`) the current result: one undo step, the prompt kept. The next
        point refines it (it is SAM's ``mask_input``, :func:`~annotator.sam_frame.mask_to_logits`).
        On an empty prompt this starts a mask drawn by hand.

        Args:
            mask: (H, W) bool at the image's resolution.
            has_labels: the engine names masks (the result's labels are then pending).
        Raises:
            ValueError: not this image's size.
        """
        if mask.shape != tuple(self.embedding.size):
            raise ValueError(f"the mask is {mask.shape[::-1]}, this image {self.embedding.size[::-1]}")
        previous = self.result
        iou = 1.0 if previous is None else float(previous.predicted_iou)
        logits = mask_to_logits(mask, self.embedding.sam.input_size)
        decoded = DecodedMasks(logits, np.full(1, iou, np.float32))
        result = PromptResult(mask, iou, logits, decoded, 0, labels_pending=has_labels and bool(mask.any()))
        self._push(self.prompt, result)
        return result

    def undo(self) -> PromptResult | None:
        """Drop the last prompt step; returns the result now current (``None`` when empty: a
        re-prompt then ends, and nothing is replaced)."""
        if self._history:
            prompt, result = self._history.pop()
            self._redo.append((prompt, result, self.replaces))
        if not self._history:
            self.replaces = None
        return self.result

    def redo(self) -> PromptResult | None:
        """Bring back the step undone last (a point, a box, a candidate, a hand edit); returns
        the result now current, ``None`` when there was nothing to redo."""
        if not self._redo:
            return None
        prompt, result, replaces = self._redo.pop()
        self._history.append((prompt, result))
        self.replaces = replaces
        return result

    def clear(self) -> None:
        """Forget the prompt and its history (and what it re-prompts)."""
        self._history.clear()
        self._redo.clear()
        self.replaces = None


__all__ = ["Prompt", "PromptSession"]
