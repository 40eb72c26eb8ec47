"""What the store holds, as plain records: :class:`Annotation`, :class:`ImageInfo`, and the
label rules every write checks."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import Enum

from ..instances import Source

MAX_LABEL_CHARS = 200
"""The longest label a store takes (characters)."""


class State(str, Enum):
    """The review state of an annotation."""

    PREDICTED = "predicted"  # a machine's guess: bulk ``annotate``, import, Everything, Find all
    ACCEPTED = "accepted"  # a person made it (a click, a box, a hand edit) or accepted it
    REJECTED = "rejected"  # a person rejected it: kept for the record, never exported

    @classmethod
    def of_source(cls, source: Source | str) -> State:
        """The state an annotation of this provenance gets when none is given: ``predicted``
        for the everything mode's and imported ones, ``accepted`` for a person's."""
        source = Source(source)
        return cls.PREDICTED if source.automatic or source is Source.IMPORTED else cls.ACCEPTED


STATES = tuple(s.value for s in State)
"""The review states' names: ``predicted``, ``accepted``, ``rejected``."""


def checked_state(state: State | str) -> str:
    """``state``'s name if it is a review state.

    Raises:
        ValueError: not one of :data:`STATES` (the message lists them).
    """
    try:
        return State(state).value
    except ValueError:
        raise ValueError(f"unknown review state {state!r}; one of {', '.join(STATES)}") from None


class StoreError(RuntimeError):
    """The store cannot be opened or read (a malformed legacy JSON store, a file that is not a
    database, a server that refuses); nothing was changed."""


class StoreFullError(StoreError):
    """The disk (or the database server's) is full: the write was rolled back, nothing was
    saved."""


@dataclass
class Annotation:
    """One accepted mask.

    Attributes:
        id: unique within the dataset, never reused (not even after a delete).
        image: image key (path relative to the image folder, POSIX separators).
        label: category name.
        category_id: stable id of ``label`` in this dataset.
        rle: COCO compressed RLE ``{"size": [H, W], "counts": str}`` at the image's resolution.
        bbox: ``[x, y, width, height]`` pixels (COCO XYWH).
        area: mask pixel count.
        score: label suggestion score of ``label`` when it was predicted, else ``None``.
        predicted_iou: SAM's predicted IoU of the mask, ``None`` if not predicted.
        prompt: the prompt that produced it (``points``, ``labels``, ``box``; ``everything``
            and ``patches`` for the everything mode; ``merged`` ids).
        created: UNIX time (seconds) of acceptance.
        source: how it was made, a :class:`~annotator.instances.Source` value (stores written
            before it existed get it from ``prompt``).
        author: who made it: the signed-in user of the page, else the OS user of the process
            (``""`` in stores written before it was kept).
        state: its review :class:`State` (``predicted``, ``accepted``, ``rejected``); default
            from ``source`` (:meth:`State.of_source`).
        data: what else it carries, JSON (an import's ``original_id``, ``original_category_id``,
            ``iscrowd``, ``imported_from``).
    """

    id: int
    image: str
    label: str
    category_id: int
    rle: dict
    bbox: list[float]
    area: int
    score: float | None = None
    predicted_iou: float | None = None
    prompt: dict = field(default_factory=dict)
    created: float = 0.0
    source: str = ""
    author: str = ""
    state: str = ""
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = Source(self.source).value if self.source else source_of_prompt(self.prompt).value
        self.state = checked_state(self.state) if self.state else State.of_source(self.source).value
        self.data = dict(self.data or {})


@dataclass
class Change:
    """What an undo or redo did to one image's annotations.

    Attributes:
        kind: the change undone or redone (``add``, ``delete``, ``relabel``, ``merge``,
            ``intersect``, ``subtract``, ``replace``, ``edit``).
        image: the image's key.
        removed: ids of annotations gone since (the page drops them).
        annotations: annotations there now that the step restored or changed (the page shows
            them in place of what it holds under their ids).
        undoable, redoable: how many changes of the image can be undone, redone now.
    """

    kind: str
    image: str
    removed: list[int]
    annotations: list[Annotation]
    undoable: int = 0
    redoable: int = 0


@dataclass
class ImageInfo:
    """An image of the store: key (relative path), ``width`` and ``height`` in pixels."""

    key: str
    width: int
    height: int


def check_label_text(label: str) -> str:
    """``label`` unchanged if an export can hold it: at most :data:`MAX_LABEL_CHARS` characters,
    no control character (Unicode category ``Cc``: NUL, BEL, newlines...; XML 1.0, which the
    Label Studio config is, cannot hold most of them).

    Raises:
        ValueError: too long, or a control character (named by its code point).
    """
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"a label has at most {MAX_LABEL_CHARS} characters ({len(label)} given)")
    bad = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"a label cannot hold the control character U+{ord(bad):04X}")
    return label


def checked_label(label: str) -> str:
    """``label`` stripped, if the store takes it.

    Raises:
        ValueError: empty, or refused by :func:`check_label_text`.
    """
    label = str(label).strip()
    if not label:
        raise ValueError("an annotation needs a label")
    return check_label_text(label)


def source_of_prompt(prompt: dict) -> Source:
    """The provenance of an annotation from its prompt (stores written before ``source``)."""
    if prompt.get("merged"):
        return Source.MERGE
    if prompt.get("everything"):
        try:
            return Source(prompt["everything"])
        except ValueError:
            return Source.PATCHES
    if prompt.get("points"):
        return Source.CLICK
    if prompt.get("box") is not None:
        return Source.BOX
    return Source.IMPORTED
