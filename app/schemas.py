"""Request and response bodies of the page's HTTP API (``/ovsam/api``), as pydantic models.

FastAPI validates each request against its model before any state is touched (a malformed body
is answered 422 naming the field, see :mod:`app.routes`) and publishes them in its
OpenAPI document (``/openapi.json``, ``/docs``). Coordinates are original image pixels; masks are
COCO compressed RLE at the displayed resolution (:func:`app.api.mask_payload`). The ``session``
field is the browser tab's id (it makes one itself); ``key`` is an image's path relative to the
folder. ``app/static/js/api.js`` mirrors these models as JSDoc typedefs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StrictInt, field_validator

from annotator.mask_edit import MAX_POINTS as MAX_EDIT_POINTS
from annotator.mask_edit import MAX_RADIUS
from annotator.store import MAX_LABEL_CHARS, check_label_text

MAX_IDS = 10_000
"""Annotation ids (or found candidates' indices) one request may name."""
MAX_COORDINATE = 1e6
"""Largest coordinate magnitude a request may carry (pixels); whether a point lies in the image
is the tab's check (422 with the reason)."""

TabId = Field(min_length=1, max_length=100, description="the browser tab's id")
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
"""A finite pixel coordinate (NaN, infinities and absurd magnitudes are refused)."""
Label = Annotated[
    str,
    Field(max_length=MAX_LABEL_CHARS, description=f"at most {MAX_LABEL_CHARS} characters, no control characters"),
    AfterValidator(check_label_text),
]
"""A label as typed: bounded, printable (what every export and the Label Studio XML can hold)."""
Ids = Annotated[list[StrictInt], Field(default_factory=list, max_length=MAX_IDS)]
ImageKey = Field(default=None, description="the image the request was made on: refused (409) if the tab shows another")
RequestId = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="the client's id of this write (a UUID): a retry or a parallel duplicate with the same id "
        "stores nothing more and is answered with the first result",
    ),
]
"""A write's idempotency key, made by the client once per user action and kept for its retries."""


class Write(BaseModel):
    """A request that changes the store: it may carry a ``request_id``."""

    request_id: RequestId = None


class TabRequest(BaseModel):
    """``POST undo`` / ``POST clear``: a tab's prompt."""

    session: str = TabId


class OpenRequest(TabRequest):
    """``POST open``: make an image the tab's own."""

    key: str = Field(description="the image to open")


class CandidateRequest(TabRequest):
    """``POST candidate``: SAM's next candidate mask for the tab's prompt."""

    key: str | None = ImageKey


class RepromptRequest(TabRequest):
    """``POST reprompt``: a saved annotation of the tab's image as the pending mask."""

    id: StrictInt = Field(ge=0, description="the annotation's id")
    key: str | None = ImageKey


class ClickRequest(TabRequest):
    """``POST click``: add a point to the tab's prompt."""

    x: Coordinate = Field(description="X, original image pixels")
    y: Coordinate = Field(description="Y, original image pixels")
    positive: StrictBool = Field(default=True, description="true: part of the object; false: cut away")
    key: str | None = ImageKey


class BoxRequest(TabRequest):
    """``POST box``: set the tab's box prompt."""

    box: list[Coordinate] = Field(
        min_length=4, max_length=4, description="XYXY original image pixels, corners in any order"
    )
    key: str | None = ImageKey


class SuggestRequest(TabRequest):
    """``POST suggest``: the pending mask's label suggestions."""

    key: str | None = ImageKey


class AcceptRequest(TabRequest, Write):
    """``POST accept``: store the pending mask."""

    label: Label | None = Field(default=None, description="any text; a new name becomes a new category")
    key: str | None = ImageKey


class IdsRequest(Write):
    """``POST delete``: annotations by id; ``POST subtract``: the first, cut by the others."""

    ids: Ids = Field(description="annotation ids")


class RelabelRequest(IdsRequest):
    """``POST relabel``: a new label for annotations."""

    label: Label | None = None


class MergeRequest(IdsRequest):
    """``POST merge`` / ``POST intersect``: two or more annotations of one image into one (their
    union / intersection), under ``label``, else the label they share."""

    label: Label | None = None


class DoneRequest(Write):
    """``POST done``: mark an image done (a done image with no annotation is a negative)."""

    key: str
    done: StrictBool = True


class EverythingRequest(TabRequest, Write):
    """``POST everything``: segment the tab's whole image."""

    method: str = Field(default="samcp", description="samcp, possam or patches")


class FindRequest(TabRequest):
    """``POST find``: find all instances of the named classes on the tab's image."""

    classes: Annotated[str, Field(max_length=MAX_IDS)] | Annotated[list[Label], Field(max_length=MAX_IDS)] = Field(
        default="", description="'car, person' or a list of names"
    )
    threshold: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None, description="null: only where a named class wins; a probability in [0, 1] also keeps a region"
    )
    method: str = Field(default="samcp", description="samcp, possam or patches")
    key: str | None = ImageKey

    @field_validator("threshold", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if value == "" else value


ClassName = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS, description="a class of the project")]


class ClassRenameRequest(Write):
    """``POST classes/rename``: rename a class on every image (into an existing class: a merge)."""

    old: ClassName
    new: Label = Field(description="the new name; an existing class's: a merge into it")
    key: str | None = Field(default=None, description="the image the page shows: its annotations come back")


class ClassMergeRequest(Write):
    """``POST classes/merge``: merge classes into one."""

    names: list[ClassName] = Field(min_length=1, max_length=MAX_IDS, description="the classes merged")
    into: Label = Field(description="one of them, another class, or a new name")
    key: str | None = Field(default=None, description="the image the page shows: its annotations come back")


class ClassHistoryRequest(Write):
    """``POST classes/history``: undo or redo the last class rename or merge."""

    way: Literal["undo", "redo"]
    key: str | None = Field(default=None, description="the image the page shows: its annotations come back")


class FindAcceptRequest(TabRequest, Write):
    """``POST find_accept``: store found candidates by index."""

    indices: Ids = Field(description="found candidates' indices")
    key: str | None = ImageKey


Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
Points = Annotated[list[Point], Field(min_length=1, max_length=MAX_EDIT_POINTS)]
EditOpName = Literal["brush", "erase", "polygon_add", "polygon_cut"]
Radius = Annotated[float, Field(gt=0, le=MAX_RADIUS, allow_inf_nan=False, description="brush radius, original pixels")]


class PaintRequest(TabRequest):
    """``POST paint``: a hand edit of the tab's pending mask (or the start of a drawn one)."""

    op: EditOpName = Field(description="brush / erase (a stroke along points) or polygon_add / polygon_cut")
    points: Points = Field(description="[[x, y], ...] original pixels: the stroke's path or the polygon's vertices")
    radius: Radius | None = None
    key: str | None = ImageKey


class EditRequest(Write):
    """``POST edit``: a hand edit of a saved annotation's mask, in place."""

    id: StrictInt = Field(ge=0, description="the annotation's id")
    op: EditOpName
    points: Points
    radius: Radius | None = None


class OutlineRequest(Write):
    """``POST outline``: one ring of a saved annotation's outline moved (a vertex dragged,
    added or deleted)."""

    id: StrictInt = Field(ge=0, description="the annotation's id")
    old: Points = Field(description="the ring as it was, original pixels")
    new: Points = Field(description="the ring as it is now")
    hole: StrictBool = Field(description="the ring bounds a hole")


ReviewState = Literal["predicted", "accepted", "rejected"]


class ReviewRequest(Write):
    """``POST review``: annotations of the shown image accepted, rejected or back to predicted."""

    ids: Annotated[list[StrictInt], Field(min_length=1, max_length=MAX_IDS)] = Field(description="annotation ids")
    state: ReviewState
    key: str = Field(description="the image shown: every annotation must be one of it (409 otherwise)")


class ReviewImageRequest(Write):
    """``POST review/image``: every predicted annotation of the image accepted (rejected ones stay)."""

    key: str = Field(description="the image")


class ReviewedRequest(Write):
    """``POST reviewed``: mark an image reviewed (which marks it done too), or not."""

    key: str
    reviewed: StrictBool = True


class HistoryRequest(Write):
    """``POST history``: undo or redo the last change of an image's annotations."""

    key: str = Field(description="the image")
    way: Literal["undo", "redo"]


class Mask(BaseModel):
    """A mask for the page: COCO compressed RLE (``{"size": [h, w], "counts": str}``) at the
    displayed resolution and its outline polygons in displayed pixels."""

    rle: dict
    outline: list[list[int]] = Field(description="polygons [x0, y0, x1, y1, ...], displayed pixels")


class AnnotationOut(Mask):
    """A stored annotation as the page draws it."""

    id: int
    label: str
    score: float | None
    predicted_iou: float | None
    area: int
    bbox: list[float] = Field(description="XYWH original pixels (COCO)")
    state: ReviewState = Field(
        default="accepted", description="predicted (a machine's guess), accepted or rejected (by a person)"
    )


class StateCounts(BaseModel):
    """Annotations per review state."""

    predicted: int = 0
    accepted: int = 0
    rejected: int = 0


class ImageEntry(BaseModel):
    """One row of the image list."""

    key: str
    n: int = Field(description="annotations of the image")
    done: bool
    unreadable: str | None = Field(
        None, description="why the file failed to load (None: it did not, or it changed since)"
    )
    status: Literal["to do", "in progress", "done", "reviewed"] = "to do"
    counts: StateCounts = Field(default_factory=StateCounts, description="its annotations per review state")


class LabelOut(BaseModel):
    """A label suggestion: name and probability."""

    name: str
    score: float


class PromptOut(BaseModel):
    """The tab's prompt in original pixels."""

    points: list[list[float]]
    labels: list[int]
    box: list[float] | None


class PromptAnswer(BaseModel):
    """``click``, ``box``, ``candidate``, ``paint``, ``undo``, ``redo``, ``clear``: the pending mask (``null``
    with an empty prompt)."""

    mask: Mask | None
    token: str | None = Field(description="names this mask; suggest answers with it")
    prompt: PromptOut
    labels: list[LabelOut]
    area: int | None = None
    predicted_iou: float | None = None
    labels_pending: bool = False
    engine_ms: float | None = None
    candidate: int | None = Field(default=None, description="which of SAM's candidate masks this is, from 1")
    candidates: int | None = Field(default=None, description="how many candidates the prompt's decode gave (1 or 3)")
    replaces: int | None = Field(default=None, description="the annotation the next accept replaces (a re-prompt)")
    redoable: int = Field(default=0, description="prompt steps undone that POST redo brings back")


class Method(BaseModel):
    """An everything pass the page offers."""

    id: str
    title: str


class ClassListOut(BaseModel):
    """The class list the page labels with: ``restricted`` (``--classes FILE``: only these
    names are accepted) and the names (every class of the project when not restricted)."""

    restricted: bool
    names: list[str]


class StateOut(BaseModel):
    """``GET state``: what the page starts with."""

    notes: list[str]
    images: list[ImageEntry]
    current: str
    vocab_size: int
    has_labels: bool
    labels_unavailable: str | None
    find_unavailable: str | None
    methods: list[Method]
    classes: ClassListOut
    totals: StateCounts = Field(default_factory=StateCounts, description="the dataset's annotations per review state")


class HistoryDepth(BaseModel):
    """How many changes of the image can be undone and redone."""

    undoable: int
    redoable: int


class EditOut(BaseModel):
    """``POST edit``, ``POST outline``: the annotation as it is now."""

    annotation: AnnotationOut
    history: HistoryDepth


class RingOut(BaseModel):
    """One ring of an outline: vertices in original pixels; ``hole``: it bounds a hole."""

    points: list[list[float]]
    hole: bool


class OutlineOut(BaseModel):
    """``GET outline``: a saved annotation's outline as editable rings."""

    id: int
    rings: list[RingOut]


class HistoryOut(BaseModel):
    """``POST history``: what the undo or redo changed (``done`` false: nothing to undo or redo)."""

    done: bool
    kind: str | None
    removed: list[int] = Field(description="annotation ids gone now")
    annotations: list[AnnotationOut] = Field(description="annotations restored or changed (drawn in place)")
    history: HistoryDepth
    changed_images: list[ImageEntry]


class OpenOut(BaseModel):
    """``POST open``."""

    key: str
    width: int
    height: int
    scale: float = Field(description="original to displayed pixels (<= 1)")
    ready_ms: float
    cached: bool
    labels_ready: bool
    annotations: list[AnnotationOut]
    history: HistoryDepth
    unreadable: dict[str, str] = Field(
        default_factory=dict, description="every image known not to load (until its file changes): key -> reason"
    )


class SuggestOut(BaseModel):
    """``POST suggest``."""

    token: str | None
    labels: list[LabelOut]


class AcceptOut(BaseModel):
    """``POST accept``."""

    annotation: AnnotationOut
    changed_images: list[ImageEntry]


class LabelSearchResult(BaseModel):
    """A class found for what was typed (``synonym``: the synonym that matched; ``gloss``: the
    sense's definition; ``fuzzy``: found as a typo; ``in_project``: already used here)."""

    name: str
    synonym: str | None
    gloss: str | None = None
    fuzzy: bool = False
    in_project: bool = False


class LabelsOut(BaseModel):
    """``GET labels``: the results, and ``create``, the typed name offered as a new class (``None``
    when a result is that name)."""

    results: list[LabelSearchResult]
    create: str | None = None


class DeleteOut(BaseModel):
    """``POST delete``."""

    deleted: list[int]
    changed_images: list[ImageEntry]


class RelabelOut(BaseModel):
    """``POST relabel``."""

    annotations: list[AnnotationOut]


class MergeOut(BaseModel):
    """``POST merge``."""

    annotation: AnnotationOut
    removed: list[int]
    changed_images: list[ImageEntry]


class SubtractOut(BaseModel):
    """``POST subtract`` (``ids[1:]`` cut out of ``ids[0]``): the first annotation as changed."""

    annotation: AnnotationOut
    changed_images: list[ImageEntry]


class DoneOut(BaseModel):
    """``POST done``."""

    images: list[ImageEntry]


class EverythingOut(BaseModel):
    """``POST everything``."""

    annotations: list[AnnotationOut]
    patches: int
    seconds: float
    how: str
    already_annotated: int = Field(description="instances of the pass not added: they repeat an annotation (IoU ≥ 0.9)")
    changed_images: list[ImageEntry]


class FoundOut(Mask):
    """A find-all candidate."""

    index: int
    label: str
    score: float
    area: int
    bbox: list[float] = Field(description="XYWH original pixels (COCO)")


class NamedClassOut(BaseModel):
    """A class as the query named it."""

    name: str
    in_vocabulary: bool


class FindOut(BaseModel):
    """``POST find``."""

    key: str
    found: list[FoundOut]
    classes: list[NamedClassOut]
    already_annotated: int
    reused_patches: bool
    seconds: float
    note: str | None


class FindAcceptOut(BaseModel):
    """``POST find_accept``."""

    annotations: list[AnnotationOut]
    indices: list[int]
    changed_images: list[ImageEntry]


class ClassOut(BaseModel):
    """A class of the project: its name, stable id (every export's) and annotations."""

    name: str
    id: int
    count: int = Field(description="annotations of the class, every image")
    listed: bool = Field(
        default=True, description="in the class list (false: made before --classes, refused as a label)"
    )


class ClassesOut(BaseModel):
    """``GET classes``: the project's classes, by id."""

    classes: list[ClassOut]
    restricted: bool = Field(description="labels must come from this list (--classes FILE)")
    history: HistoryDepth = Field(description="class changes that can be undone / redone")


class ClassChangeOut(ClassesOut):
    """``POST classes/rename``, ``classes/merge``, ``classes/history``: what changed, and the
    classes as they are now."""

    done: bool = Field(description="false: nothing to undo / redo")
    moves: list[list[str]] = Field(description="[old name, new name] per class moved")
    ids: list[int] = Field(description="annotations relabelled (every image)")
    images: list[str] = Field(description="their images")
    annotations: list[AnnotationOut] = Field(description="the shown image's annotations, as they are now")


class ReviewOut(BaseModel):
    """``POST review``, ``POST review/image``: the annotations changed (as they are now)."""

    annotations: list[AnnotationOut]
    changed_images: list[ImageEntry]
    totals: StateCounts = Field(description="the dataset's annotations per review state")
    history: HistoryDepth


class ReviewedOut(BaseModel):
    """``POST reviewed``: the image's row as it is now."""

    changed_images: list[ImageEntry]
    totals: StateCounts


class ProgressOut(BaseModel):
    """``GET progress``: fraction done of the tab's running pass (``null``: none runs)."""

    progress: float | None


class ErrorOut(BaseModel):
    """Any refused request: the reason, for the user."""

    error: str
