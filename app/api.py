"""The annotation page's HTTP API: a lean round trip per click.

The browser holds the picture and draws everything itself; per click it sends one point (or a
box) and gets back only the new mask, as COCO compressed RLE at the displayed resolution plus
its outline, with the label suggestions and scores. The image itself travels once per image.

Routes (mounted under ``/ovsam/api`` by :func:`app.page.build_app`), JSON in and out:

- ``GET  state?session=S``: the images (key, annotation count, done mark, ``unreadable``: why
  the file failed to load, until it changes), the image the session (or, for a new session, the
  store) worked on last, vocabulary size, label availability.
- ``POST open {session, key}``: make an image the session's own (embeddings computed or taken
  from the cache), prefetch the next ones; the image's size, display scale and annotations, and
  ``unreadable`` ``{key: reason}`` of every image known not to load (422 when this one does not).
- ``GET  image?key=K``: the image at the displayed resolution (PNG or JPEG).
- ``POST click {session, x, y, positive}``, ``POST box {session, box}``, ``POST candidate
  {session, key}`` (SAM's next candidate mask), ``POST reprompt {session, id, key}`` (a saved
  annotation as the pending mask; the next accept replaces it), ``POST undo``, ``POST redo``,
  ``POST clear``, ``POST paint {session, key, op, points, radius}`` (a brush or eraser
  stroke, a polygon added or cut out, on the pending mask): the prompt, in original image pixels; each answers with the pending mask and
  a ``token`` naming it. The mask comes before the labels: on an image whose CLIP dense pass
  is still running (``open`` waits for SAM's encoder only) the answer has no labels and
  ``labels_pending`` set.
- ``POST suggest {session, key}``: the label suggestions of the tab's pending mask (and its
  ``token``), once the image's CLIP dense pass is done.
- ``POST accept {session, label}``: store the pending mask; a label not in the vocabulary
  becomes a new category.
- ``GET  labels?q=TEXT``: the vocabulary and the project's classes ranked on the server
  (:mod:`annotator.label_search`: exact, prefix, substring, then typos; plurals and synonyms
  count), the best 20 with their glosses, and ``create`` (the typed name when no result is it).
- ``POST delete {ids}``, ``POST relabel {ids, label}``, ``POST merge {ids, label?}``,
  ``POST intersect {ids, label?}``, ``POST subtract {ids}`` (``ids[1:]`` cut out of ``ids[0]``),
  ``POST done {key, done}``, ``POST everything {session, method}``, ``GET progress?session=S``.
- ``POST review {ids, state, key}`` (annotations of image ``key`` accepted, rejected or back to
  predicted), ``POST review/image {key}`` (every predicted annotation of the image accepted),
  ``POST reviewed {key, reviewed}`` (the image marked reviewed, and so done): each review step
  is undoable (``POST history``); answers carry the dataset's annotations per state (``totals``).
  Annotations carry their ``state`` (predicted, accepted, rejected), image-list entries their
  ``status`` (to do, in progress, done, reviewed) and ``counts`` per state.
- ``POST edit {id, op, points, radius}`` (a hand edit of a saved annotation, in place),
  ``GET outline?id=N`` (its outline as editable rings), ``POST outline {id, old, new, hole}``
  (one ring moved), ``POST history {key, way}`` (undo or redo the image's last change, from
  the store's history).
- ``POST find {session, key, classes, threshold, method}``: find all instances of the named
  classes (comma-separated; vocabulary names or free text) on the tab's image; they are held
  as the tab's found candidates (nothing stored yet), each with its mask, label and score.
- ``POST find_accept {session, key, indices}``: store those candidates as annotations.
- ``GET  classes``: the project's classes (name, id, count; ``restricted`` with ``--classes``);
  ``POST classes/rename {old, new, key?}``, ``POST classes/merge {names, into, key?}``,
  ``POST classes/history {way, key?}`` (the dataset-wide class history): every image's
  annotations of the class take the new name (and, into an existing class, its id).

Each browser tab has an id it makes itself (the ``session`` field); tabs never share prompts,
and each holds the embedding of its own image (the engine keeps no current image). What a
route does is :class:`annotator.tabs.Tabs`' behaviour; this module only turns requests into
calls and results into JSON (masks as RLE at the displayed resolution, errors as statuses).
"""

from __future__ import annotations

import functools
import logging

import cv2
import numpy as np

from annotator.engine import PromptResult
from annotator.everything.pipeline import METHOD_TITLES, METHODS
from annotator.images import ImageLoadError
from annotator.label_search import LabelHit, LabelSearch
from annotator.lru import BoundedLRU
from annotator.masks import decode_rle, encode_rle
from annotator.store import STATES, Annotation, StoreError, StoreFullError
from annotator.tabs import (
    DUPLICATE_IOU,
    BadRequest,
    Conflict,
    Decoded,
    NotFound,
    PassFailed,
    TabError,
    Tabs,
    Unprocessable,
)
from annotator.vocabulary import Vocabulary
from annotator.workspace import Workspace

log = logging.getLogger(__name__)

MAX_DISPLAY_SIDE = 4096  # larger photos travel downscaled; clicks are mapped back exactly
LABEL_RESULTS = 20
LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".webp")
STATUS = {BadRequest: 400, NotFound: 404, Conflict: 409, Unprocessable: 422, PassFailed: 500}


def _token(result: PromptResult) -> str:
    """A name for one decoded result, alive while the tab holds it (its undo history does)."""
    return f"{id(result):x}"


def _labels(labels) -> list[dict]:
    return [{"name": s.name, "score": round(s.score, 4)} for s in labels]


class ApiError(Exception):
    """A request that cannot be served; ``status`` is the HTTP status, ``str()`` the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _translated(method):
    """A :class:`~annotator.tabs.TabError` raised by ``method`` becomes an :class:`ApiError`
    with its status (:data:`STATUS`); a full disk 507 ("disk full: nothing saved"), another
    store failure 503."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except TabError as exc:
            raise ApiError(STATUS[type(exc)], str(exc)) from exc
        except StoreFullError as exc:  # rolled back: nothing saved, nothing held to be saved later
            raise ApiError(507, str(exc)) from exc
        except StoreError as exc:
            raise ApiError(503, str(exc)) from exc

    return wrapper


def display_scale(height: int, width: int) -> float:
    """Factor from original to displayed pixels (≤ 1): the longer side at most ``MAX_DISPLAY_SIDE``."""
    return min(1.0, MAX_DISPLAY_SIDE / max(height, width))


def _display_mask(mask: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return mask
    h, w = mask.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def mask_payload(mask: np.ndarray, scale: float, rle: dict | None = None) -> dict:
    """A mask for the page: COCO compressed RLE (column-major counts, as pycocotools writes it)
    at the displayed resolution, and its outline as polygons ``[[x0, y0, x1, y1, ...], ...]``
    through boundary pixel centres in displayed pixels (outer boundaries and holes).

    Args:
        mask: (H, W) bool at the original resolution.
        scale: :func:`display_scale` of the image.
        rle: ``mask``'s RLE when already encoded (used as is at scale 1).
    """
    shown = _display_mask(mask, scale)
    if rle is None or scale < 1.0:
        rle = encode_rle(shown)
    contours, _ = cv2.findContours(shown.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return {"rle": rle, "outline": [c.reshape(-1).tolist() for c in contours]}


class PageAPI:
    """Serves the page's requests for one :class:`~annotator.workspace.Workspace`: each method
    is one route, a call of :class:`~annotator.tabs.Tabs` and its answer as JSON.

    Args:
        ws: the folder, engine and store.
        prefetch: how many of the following images to embed in the background when one opens.
    Raises:
        ApiError: from every route, with the HTTP status of the :class:`~annotator.tabs.TabError`.
    """

    def __init__(self, ws: Workspace, prefetch: int = 1):
        self.ws = ws
        self.engine = ws.engine
        self.tabs = Tabs(ws, prefetch)
        # (annotation id, its RLE counts) -> mask payload: an edit in place (same id) is a new entry
        self._shown: BoundedLRU[tuple[int, str], dict] = BoundedLRU(max_items=2000)
        self._encoded: BoundedLRU[str, tuple[bytes, str]] = BoundedLRU(max_items=16)  # key -> image bytes
        self._restricted: tuple[frozenset[str], LabelSearch] | None = None  # the --classes list's search

    # ------------------------------------------------------------------ JSON
    def _scale(self, key: str) -> float:
        return display_scale(*self.ws.load(key).shape[:2])

    def _annotation(self, ann: Annotation) -> dict:
        def payload() -> dict:
            h, w = ann.rle["size"]
            return mask_payload(decode_rle(ann.rle), display_scale(h, w), ann.rle)

        return {
            "id": ann.id,
            "label": ann.label,
            "score": ann.score,
            "predicted_iou": ann.predicted_iou,
            "area": ann.area,
            "bbox": ann.bbox,
            "state": ann.state,
            **self._shown.get_or_compute((ann.id, ann.rle["counts"]), payload),
        }

    def _result(self, decoded: Decoded) -> dict:
        session, result = decoded.prompt, decoded.result
        prompt = session.prompt.as_dict() if session is not None else {"points": [], "labels": [], "box": None}
        if result is None:
            return {
                "mask": None,
                "prompt": prompt,
                "labels": [],
                "token": None,
                "replaces": None,
                "redoable": 0 if session is None else session.redoable,
            }
        ms = decoded.engine_ms
        return {
            "mask": mask_payload(result.mask, self._scale(session.image)),
            "token": _token(result),
            "area": result.area,
            "predicted_iou": round(result.predicted_iou, 4),
            "labels": _labels(result.labels),
            "labels_pending": result.labels_pending,
            "engine_ms": None if ms is None else round(ms, 2),
            "candidate": result.chosen + 1,
            "candidates": len(result.candidates.iou_predictions),
            "replaces": session.replaces,
            "redoable": session.redoable,
            "prompt": prompt,
        }

    def images(self, keys: list[str] | None = None) -> list[dict]:
        """Image-list entries ``{key, n, done, unreadable, status, counts}``: every image, or
        those of ``keys`` only (after an edit: the page updates those rows). ``unreadable``: why
        the file failed to load (``None``: it did not, or it changed since and is tried again);
        ``status``: to do, in progress, done or reviewed; ``counts``: its annotations per review
        state (``{"predicted", "accepted", "rejected"}``)."""
        bad = self.ws.unreadable()
        rows = self.tabs.images(keys)
        scope = [k for k, _, _ in rows]
        store = self.ws.store
        states, status = store.state_counts(None if keys is None else scope), store.image_status(scope)
        return [
            {
                "key": k,
                "n": n,
                "done": d,
                "unreadable": bad.get(k),
                "status": status.get(k, "to do"),
                "counts": states.get(k, dict.fromkeys(STATES, 0)),
            }
            for k, n, d in rows
        ]

    # ------------------------------------------------------------------ routes
    @_translated
    def state(self, session: str) -> dict:
        """The page's start-up state for a tab (see the module docstring); ``notes`` says what
        runs other than asked (a precision check that failed, a runtime fallback)."""
        tab = self.tabs.tab(session)
        vocab = self.engine.vocabulary
        return {
            "notes": list(self.engine.notes),
            "images": self.images(),
            "current": tab.image if tab.image in self.ws.keys else self.ws.last_image(),
            "vocab_size": len(vocab) if vocab else 0,
            "has_labels": self.engine.has_labels,
            "labels_unavailable": None if self.engine.has_labels else self.engine.labels_unavailable,
            "find_unavailable": None
            if self.engine.has_labels
            else f"Find all needs CLIP: {self.engine.labels_unavailable}",
            "methods": [{"id": m, "title": METHOD_TITLES[m]} for m in METHODS],
            "classes": self._class_list(),
            "totals": self.ws.store.total_state_counts(),
        }

    @_translated
    def open(self, session: str, key: str) -> dict:
        """Make ``key`` the tab's image; start embedding the next images in the background.
        ``unreadable``: every image known not to load, ``{key: reason}`` (the page marks them).

        Raises:
            ApiError: 404 unknown image; 422 unreadable file (the reason in the message).
        """
        opened = self.tabs.tab(session).open(key)
        return {
            "key": opened.key,
            "width": opened.width,
            "height": opened.height,
            "scale": display_scale(opened.height, opened.width),
            "ready_ms": round(opened.ready_ms, 1),
            "cached": opened.cached,
            "labels_ready": opened.labels_ready,
            "annotations": [self._annotation(a) for a in opened.annotations],
            "history": self._depth(opened.key),
            "unreadable": self.ws.unreadable(),
        }

    def image_bytes(self, key: str) -> tuple[bytes, str]:
        """The image at its displayed resolution: PNG for lossless sources (PNG, BMP, TIFF,
        WebP: exact pixels when zoomed in), JPEG for the rest.

        Returns:
            (encoded bytes, media type).

        Raises:
            ApiError: 404 unknown image; 422 unreadable file; 500 not encodable.
        """
        return self._encoded.get_or_compute(key, lambda: self._encode(key))

    def _encode(self, key: str) -> tuple[bytes, str]:
        try:
            image = self.ws.load(key)
        except KeyError as exc:
            raise ApiError(404, f"no image {key!r}") from exc
        except ImageLoadError as exc:
            raise ApiError(422, str(exc)) from exc
        h, w = image.shape[:2]
        s = display_scale(h, w)
        if s < 1.0:
            image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        lossless = key.lower().endswith(LOSSLESS)
        ext, params = (
            (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]) if lossless else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92])
        )
        ok, buf = cv2.imencode(ext, image[:, :, ::-1], params)
        if not ok:
            raise ApiError(500, f"cannot encode {key!r}")
        return buf.tobytes(), "image/png" if lossless else "image/jpeg"

    @_translated
    def click(self, session: str, x: float, y: float, positive: bool = True, key: str | None = None) -> dict:
        """Add a point (original pixels) and decode.

        Args:
            key: the image the click was made on; refused (409) if the tab shows another now.
        Raises:
            ApiError: 422 outside the image; 409 no image open, or another one.
        """
        return self._result(self.tabs.tab(session).click(x, y, positive, key))

    @_translated
    def box(self, session: str, box: list[float], key: str | None = None) -> dict:
        """Set the box (XYXY original pixels, any corner order) and decode (``key`` as for :meth:`click`)."""
        return self._result(self.tabs.tab(session).box(box, key))

    @_translated
    def reprompt(self, session: str, ann_id: int, key: str | None = None) -> dict:
        """Make a saved annotation of the tab's image the pending mask, to refine with points
        (SAM starts from its mask); the next accept replaces it (same id). The answer is a
        click's, with ``replaces`` naming the annotation.

        Raises:
            ApiError: 404 no such annotation; 409 no image open, another one, or the annotation
                is of another image.
        """
        return self._result(self.tabs.tab(session).reprompt(ann_id, key))

    @_translated
    def candidate(self, session: str, key: str | None = None) -> dict:
        """SAM's next candidate mask for the pending prompt (``candidate`` / ``candidates`` in
        the answer say which of how many); ``key`` as for :meth:`click`.

        Raises:
            ApiError: 422 no mask pending; 409 no image open, or another one.
        """
        return self._result(self.tabs.tab(session).next_candidate(key))

    @_translated
    def paint(self, session: str, op: str, points, radius: float | None = None, key: str | None = None) -> dict:
        """Edit the pending mask by hand (``op``: brush, erase, polygon_add, polygon_cut; points
        in original pixels, ``radius`` for strokes); with nothing pending, start a mask drawn by
        hand. The answer is a click's; undo brings the mask before the edit back.

        Raises:
            ApiError: 422 bad op, points or radius, or nothing drawn; 409 no image open, or another.
        """
        return self._result(self.tabs.tab(session).paint(op, points, radius, key))

    def _depth(self, key: str) -> dict:
        undoable, redoable = self.ws.store.history_depth(key)
        return {"undoable": undoable, "redoable": redoable}

    def _edited(self, ann: Annotation) -> dict:
        return {"annotation": self._annotation(ann), "history": self._depth(ann.image)}

    @_translated
    def edit(self, ann_id: int, op: str, points, radius: float | None = None, request_id=None, author=None) -> dict:
        """Edit a saved annotation's mask by hand (as :meth:`paint`), in place: one undoable change.

        Raises:
            ApiError: 404 no such annotation; 422 bad op, points or radius, or nothing left.
        """
        return self._edited(self.tabs.edit(ann_id, op, points, radius, request_id, author))

    @_translated
    def outline(self, ann_id: int) -> dict:
        """A saved annotation's outline as editable rings: ``{"id", "rings": [{"points": [[x, y],
        ...], "hole"}]}`` in original pixels (outer boundaries and holes).

        Raises:
            ApiError: 404 no such annotation.
        """
        rings = self.tabs.outline(ann_id)
        return {
            "id": int(ann_id),
            "rings": [{"points": np.round(r.points, 2).tolist(), "hole": r.hole} for r in rings],
        }

    @_translated
    def move_outline(self, ann_id: int, old, new, hole: bool, request_id=None, author=None) -> dict:
        """Move one ring of a saved annotation's outline from ``old`` to ``new`` (a vertex
        dragged, added or deleted): only the pixels between them change; one undoable change."""
        return self._edited(self.tabs.move_outline(ann_id, old, new, hole, request_id, author))

    @_translated
    def travel(self, key: str, way: str, request_id: str | None = None) -> dict:
        """Undo or redo (``way``) the last change of image ``key``'s annotations, whoever made it.

        Returns:
            ``{"done": bool (false: nothing to undo / redo), "kind", "removed": [ids],
            "annotations": [...restored or changed...], "history": {"undoable", "redoable"},
            "changed_images"}``.
        Raises:
            ApiError: 404 unknown image; 422 its annotations were changed since outside the
                history (nothing changed).
        """
        change = self.tabs.travel(key, way, request_id)
        if change is None:
            return {
                "done": False,
                "kind": None,
                "removed": [],
                "annotations": [],
                "history": self._depth(key),
                "changed_images": [],
            }
        return {
            "done": True,
            "kind": change.kind,
            "removed": change.removed,
            "annotations": [self._annotation(a) for a in change.annotations],
            "history": {"undoable": change.undoable, "redoable": change.redoable},
            "changed_images": self.images([key]),
        }

    @_translated
    def undo(self, session: str) -> dict:
        """Drop the last prompt step; the previous mask comes back without decoding."""
        return self._result(self.tabs.tab(session).undo())

    @_translated
    def redo(self, session: str) -> dict:
        """Bring back the prompt step undone last (a point, box, candidate or hand edit)."""
        return self._result(self.tabs.tab(session).redo())

    @_translated
    def clear(self, session: str) -> dict:
        """Forget the prompt."""
        return self._result(self.tabs.tab(session).clear())

    @_translated
    def accept(
        self,
        session: str,
        label: str,
        key: str | None = None,
        request_id: str | None = None,
        author: str | None = None,
    ) -> dict:
        """Store the pending mask under ``label`` (any text; new names become new categories).

        Args:
            key: the image the mask was made on; refused (409) if the tab shows another now.
            request_id: the client's id of this write: a retry (or a parallel duplicate) with
                the same id is answered with the first result and stores nothing.
            author: the signed-in user (default: the OS user of the server).
        Raises:
            ApiError: 409 nothing to accept, or another image shown; 422 empty label; 507 disk
                full (the mask stays pending).
        """
        ann = self.tabs.tab(session).accept(label, key, request_id, author)
        return {"annotation": self._annotation(ann), "changed_images": self.images([ann.image])}

    @_translated
    def suggest(self, session: str, key: str | None = None) -> dict:
        """The label suggestions of the tab's pending mask, once the image's CLIP dense pass is
        done (clicks go on meanwhile).

        Returns:
            ``{"token", "labels"}``: the pending mask's token (as the click answered it; the
            page shows the labels only if it still shows that mask) and its top-5 labels
            (empty without CLIP, or with nothing pending).
        Raises:
            ApiError: 409 no image open, or another one; 500 CLIP's dense pass failed.
        """
        result, labels = self.tabs.tab(session).suggest(key)
        return {"token": None if result is None else _token(result), "labels": _labels(labels)}

    @functools.cached_property
    def _label_search(self) -> LabelSearch | None:
        vocab = self.engine.vocabulary
        return LabelSearch(vocab) if vocab else None

    def _restricted_search(self, allowed: frozenset[str]) -> LabelSearch:
        """The search over a fixed class list (``--classes``): each class with the vocabulary's
        synonyms and gloss where the vocabulary has its name (built once per list)."""
        if self._restricted is not None and self._restricted[0] == allowed:
            return self._restricted[1]
        vocab = self.engine.vocabulary
        names = sorted(allowed)
        index = {n: i for i, n in enumerate(vocab.names)} if vocab else {}
        synonyms = tuple(vocab.synonyms[index[n]] if n in index else (n,) for n in names)
        glosses = tuple((vocab.glosses[index[n]] if vocab.glosses and n in index else "") for n in names)
        listed = Vocabulary("--classes", tuple(names), synonyms, tuple(range(1, len(names) + 1)), glosses=glosses)
        self._restricted = (allowed, LabelSearch(listed))
        return self._restricted[1]

    def labels(self, query: str) -> dict:
        """The best :data:`LABEL_RESULTS` classes for what was typed (:mod:`annotator.label_search`:
        the project's classes first in each tier, typos and plurals found, common senses first),
        each with its gloss; ``create``: the typed name, offered as a new class when no result
        has exactly that name (the page shows it as a row the user must pick), else ``None``."""
        project = self.ws.store.categories
        allowed = self.ws.store.allowed
        search = self._label_search if allowed is None else self._restricted_search(allowed)
        found = search.search(query, LABEL_RESULTS, project) if search else []
        typed = " ".join(query.split())
        if not search and typed:
            found = [h for h in project if typed.lower() in h.lower()][:LABEL_RESULTS]
            found = [LabelHit(n, None, None, 3, True, False) for n in found]
        new = allowed is None and typed and all(h.name.lower() != typed.lower() for h in found)
        create = typed if new else None  # a fixed class list (--classes) creates nothing
        return {
            "results": [
                {
                    "name": h.name,
                    "synonym": h.synonym,
                    "gloss": h.gloss,
                    "fuzzy": h.tier == 4,
                    "in_project": h.in_project,
                }
                for h in found
            ],
            "create": create,
        }

    @_translated
    def delete(self, ids, request_id: str | None = None) -> dict:
        """Delete annotations by id (all or none; ``request_id`` as for :meth:`accept`)."""
        deleted, keys = self.tabs.delete(ids, request_id)
        return {"deleted": deleted, "changed_images": self.images(keys)}

    @_translated
    def relabel(self, ids, label: str, request_id: str | None = None, author: str | None = None) -> dict:
        """Give annotations a new label (a new name becomes a new category)."""
        return {"annotations": [self._annotation(a) for a in self.tabs.relabel(ids, label, request_id, author)]}

    @_translated
    def merge(self, ids, label: str | None = None, request_id: str | None = None, author: str | None = None) -> dict:
        """Merge two or more annotations of one image into one (their union), under ``label`` or
        the label the parts share (422 naming them when they differ and no label is given)."""
        ann = self.tabs.merge(ids, label, request_id, author)
        return {
            "annotation": self._annotation(ann),
            "removed": [int(i) for i in ids],
            "changed_images": self.images([ann.image]),
        }

    @_translated
    def intersect(
        self, ids, label: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> dict:
        """Replace two or more annotations of one image by their intersection (labels as :meth:`merge`)."""
        ann = self.tabs.intersect(ids, label, request_id, author)
        return {
            "annotation": self._annotation(ann),
            "removed": [int(i) for i in ids],
            "changed_images": self.images([ann.image]),
        }

    @_translated
    def subtract(self, ids, request_id: str | None = None) -> dict:
        """Cut the masks of ``ids[1:]`` out of annotation ``ids[0]``; answers with it as changed."""
        ann = self.tabs.subtract(ids, request_id)
        return {"annotation": self._annotation(ann), "changed_images": self.images([ann.image])}

    @_translated
    def set_done(self, key: str, done: bool) -> dict:
        """Mark an image done (or not); a done image is part of the dataset even with no annotation.

        Raises:
            ApiError: 404 unknown image; 422 unreadable image.
        """
        self.tabs.set_done(key, done)
        return {"images": self.images()}

    @_translated
    def everything(self, session: str, method: str, request_id: str | None = None, author: str | None = None) -> dict:
        """Segment the tab's whole image with a pass of the everything mode; each instance
        becomes an annotation, except those repeating one of the image's (``already_annotated``
        counts them). Progress is readable meanwhile through :meth:`progress`."""
        done = self.tabs.tab(session).everything(method, request_id, author)
        result = done.result
        how = "labelled by CLIP" if result.labelled else "labelled 'object'"
        if result.note:
            how += f": {result.note}"
        return {
            "annotations": [self._annotation(a) for a in done.annotations],
            "patches": len(result.patches),
            "seconds": round(done.seconds, 2),
            "how": how,
            "already_annotated": done.already_annotated,
            "changed_images": self.images([done.key]),
        }

    @_translated
    def find(self, session: str, classes, threshold=None, method: str = "samcp", key: str | None = None) -> dict:
        """Find all instances of the named classes on the tab's image (see
        :meth:`annotator.tabs.Tab.find`; a candidate this close to an annotation of the image,
        :data:`~annotator.tabs.DUPLICATE_IOU`, is not offered); they become the tab's found
        candidates. Progress is readable meanwhile through :meth:`progress`.

        Raises:
            ApiError: 409 no image open, another image, or no CLIP (the reason); 422 no class
                named, or a bad threshold; 400 unknown pass.
        """
        found = self.tabs.tab(session).find(classes, threshold, method, key)
        scale, inst = self._scale(found.key), found.instances
        areas, rles = inst.areas, inst.rles()
        return {
            "key": found.key,
            "found": [
                {
                    "index": i,
                    "label": str(inst.class_names[i]),
                    "score": round(float(inst.scores[i]), 4),
                    "area": int(areas[i]),
                    "bbox": [float(v) for v in inst.boxes[i]],
                    **mask_payload(inst.masks[i], scale, rles[i]),
                }
                for i in range(len(inst))
            ],
            "classes": [{"name": c.name, "in_vocabulary": c.in_vocabulary} for c in found.classes],
            "already_annotated": found.already_annotated,
            "reused_patches": found.reused_patches,
            "seconds": round(found.seconds, 2),
            "note": found.note,
        }

    @_translated
    def find_accept(
        self,
        session: str,
        indices,
        key: str | None = None,
        request_id: str | None = None,
        author: str | None = None,
    ) -> dict:
        """Store found candidates (by ``index`` of :meth:`find`'s answer) as annotations.

        Raises:
            ApiError: 409 no candidates on this image, or one already accepted; 400 bad indices.
        """
        added, idx = self.tabs.tab(session).accept_found(indices, key, request_id, author)
        return {
            "annotations": [self._annotation(a) for a in added],
            "indices": idx,
            "changed_images": self.images([a.image for a in added]),
        }

    # ------------------------------------------------------------------ the project's classes
    def _class_list(self) -> dict:
        """``{restricted, names}``: whether labels must come from a class list (``--classes
        FILE``), and its names (every class of the project otherwise)."""
        allowed = self.ws.store.allowed
        names = sorted(allowed) if allowed is not None else sorted(self.ws.store.categories)
        return {"restricted": allowed is not None, "names": names}

    @_translated
    def classes(self) -> dict:
        """Every class of the project: ``{"classes": [{name, id, count, listed}], "restricted",
        "history": {"undoable", "redoable"}}`` (by id; count 0 included). The page colours a
        class by its name (colours.js)."""
        undoable, redoable = self.ws.store.classes_history_depth()
        allowed = self.ws.store.allowed
        return {
            "classes": [
                {"name": c.name, "id": c.id, "count": c.count, "listed": allowed is None or c.name in allowed}
                for c in self.tabs.classes()
            ],
            "restricted": self.ws.store.allowed is not None,
            "history": {"undoable": undoable, "redoable": redoable},
        }

    def _class_change(self, change, key: str | None) -> dict:
        shown = key if key in self.ws.keys else None
        out = {
            "done": change is not None,
            "moves": [] if change is None else change.moves,
            "ids": [] if change is None else change.ids,
            "images": [] if change is None else change.images,
            "annotations": [self._annotation(a) for a in self.ws.store.for_image(shown)] if shown else [],
        }
        return {**out, **self.classes()}

    @_translated
    def rename_class(self, old: str, new: str, key: str | None = None, request_id=None, author=None) -> dict:
        """Rename class ``old`` to ``new`` on every image (into an existing class: a merge).

        Args:
            key: the image the page shows: its annotations come back, relabelled.
        Returns:
            ``{"done", "moves", "ids", "images", "annotations", "classes", "restricted", "history"}``.
        Raises:
            ApiError: 404 no such class; 422 empty or the same name, or one outside the class list.
        """
        return self._class_change(self.tabs.rename_class(old, new, request_id, author), key)

    @_translated
    def merge_classes(self, names, into: str, key: str | None = None, request_id=None, author=None) -> dict:
        """Merge classes ``names`` into ``into`` (answer as :meth:`rename_class`)."""
        return self._class_change(self.tabs.merge_classes(names, into, request_id, author), key)

    @_translated
    def travel_classes(self, way: str, key: str | None = None, request_id=None) -> dict:
        """Undo or redo the last class rename or merge (``done`` false: nothing to undo / redo).

        Raises:
            ApiError: 422 the rows changed since (nothing changed).
        """
        return self._class_change(self.tabs.travel_classes(way, request_id), key)

    # ------------------------------------------------------------------ review of predictions
    def _reviewed(self, key: str, anns: list[Annotation]) -> dict:
        return {
            "annotations": [self._annotation(a) for a in anns],
            "changed_images": self.images([key, *(a.image for a in anns)]),
            "totals": self.ws.store.total_state_counts(),
            "history": self._depth(key),
        }

    @_translated
    def review(self, ids, state: str, key: str, request_id: str | None = None, author: str | None = None) -> dict:
        """Set annotations of image ``key`` to review ``state`` (``accepted``, ``rejected``, or
        back to ``predicted``): one undoable step of the image's history.

        Returns:
            ``{"annotations" (as they are now), "changed_images", "totals" (the dataset's
            annotations per state), "history"}``.
        Raises:
            ApiError: 404 unknown id; 409 an annotation of another image (nothing changed);
                422 unknown state.
        """
        return self._reviewed(key, self.tabs.set_state(ids, state, key, request_id, author))

    @_translated
    def review_image(self, key: str, request_id: str | None = None, author: str | None = None) -> dict:
        """Accept every predicted annotation of image ``key`` (rejected ones stay rejected); the
        answer as :meth:`review`'s, ``annotations`` being those accepted now.

        Raises:
            ApiError: 404 unknown image.
        """
        return self._reviewed(key, self.tabs.accept_image(key, request_id, author))

    @_translated
    def set_reviewed(self, key: str, reviewed: bool = True) -> dict:
        """Mark image ``key`` reviewed (and so done), or not reviewed (it stays done).

        Returns:
            ``{"changed_images", "totals"}``.
        Raises:
            ApiError: 404 unknown image; 422 unreadable image.
        """
        self.tabs.set_reviewed(key, reviewed)
        return {"changed_images": self.images([key]), "totals": self.ws.store.total_state_counts()}

    @_translated
    def progress(self, session: str) -> dict:
        """Fraction done of the tab's running everything pass (``None`` when none runs)."""
        return {"progress": self.tabs.tab(session).progress}


__all__ = ["DUPLICATE_IOU", "ApiError", "PageAPI", "display_scale", "mask_payload"]
