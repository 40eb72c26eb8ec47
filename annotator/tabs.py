"""The page's behaviour without HTTP: tabs annotating one workspace.

A **tab** is one browser tab (or any client) with an id it makes itself. Each tab has its own
image and the **prompt** being built on it (:class:`~annotator.session.PromptSession`: points,
box, undo history, the image's embedding), its find-all candidates and the progress of its
running pass; tabs never share prompts. An image is named by its **key** (path relative to the
folder); the engine knows images by their **digest** (content hash).

:class:`Tabs` is what the page's HTTP layer (``app/api.py``) translates: every route is one
method here, returning domain objects (:class:`~annotator.engine.PromptResult`,
:class:`~annotator.store.Annotation`, :class:`~annotator.instances.Instances`); errors are
:class:`TabError` subclasses that say what kind of failure it is, never an HTTP status::

    tabs = Tabs(Workspace.open_folder(engine, "photos/", "exports/"))
    tab = tabs.tab("my-tab")
    tab.open("a.jpg")
    tab.click(320, 240)
    ann = tab.accept("dog")

Decodes are serialised (one engine lock: they share the CPU); the store serialises its writes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .classifier import LabelScore
from .engine import PromptResult
from .everything.pipeline import METHODS, EverythingConfig, EverythingResult
from .images import ImageLoadError
from .instances import UNLABELLED, Instances, Source
from .mask_edit import EditOp, Ring, apply_edit, move_outline, outline_rings
from .masks import decode_rle, rle_iou
from .session import Prompt, PromptSession
from .store import Annotation, Change, ClassChange, ClassInfo, State, check_label_text
from .text_prompts import LabelsUnavailable, NamedClass, parse_classes
from .workspace import Workspace

DUPLICATE_IOU = 0.9
"""A find-all candidate whose mask IoU with an annotation of its image reaches this is not
offered again (counted in :attr:`Found.already_annotated`)."""
MAX_POINTS = 64
"""Points one prompt may hold (each decode holds the engine lock all tabs share)."""
TAB_IDLE_S = 12 * 3600  # a tab unseen this long is forgotten (its pending prompt with it)


class TabError(Exception):
    """A request a tab cannot serve; ``str()`` is the reason, for the user."""


class BadRequest(TabError):
    """Malformed input: a missing tab id, ids or indices that are not numbers, an unknown pass."""


class NotFound(TabError):
    """An unknown image or annotation."""


class Conflict(TabError):
    """The request does not fit the tab's state: no image open, another image shown now,
    nothing to accept, no CLIP for find all, candidates accepted already."""


class Unprocessable(TabError):
    """Well-formed but unusable: an unreadable image, a point outside the image, an empty
    label, a bad class list or threshold."""


class PassFailed(TabError):
    """A model pass failed (e.g. the CPU runtime running CLIP's dense pass)."""


@dataclass
class Opened:
    """An image a tab opened: its size, whether it was cached, the time to ready (SAM's encoder
    only: CLIP's dense pass follows on its own thread), its annotations."""

    key: str
    width: int
    height: int
    ready_ms: float
    cached: bool
    labels_ready: bool
    annotations: list[Annotation]


@dataclass
class Decoded:
    """The tab's prompt after a step: the prompt (points, box) and its mask (``None`` when the
    prompt is empty), with the decode's time in ms when one ran."""

    prompt: PromptSession | None
    result: PromptResult | None
    engine_ms: float | None = None


@dataclass
class Everything:
    """An everything pass stored on an image: its annotations, patch count, time and how the
    instances were labelled; ``already_annotated``: instances of the pass not added because an
    annotation of the image repeats them (:data:`DUPLICATE_IOU`)."""

    key: str
    annotations: list[Annotation]
    result: EverythingResult
    seconds: float
    already_annotated: int = 0


@dataclass
class Found:
    """Find-all candidates held by a tab (nothing stored yet).

    Attributes:
        key: the image.
        instances: the candidates, best score first, those already annotated left out.
        classes: the classes as the query named them.
        already_annotated: candidates left out as duplicates (:data:`DUPLICATE_IOU`).
        reused_patches: the image's patches of an earlier pass were reused (no SAM run).
        seconds: the pass's time.
        note: why labels are meaningless (random CLIP weights), else ``None``.
        accepted: indices stored since.
    """

    key: str
    instances: Instances
    classes: list[NamedClass]
    already_annotated: int
    reused_patches: bool
    seconds: float
    note: str | None
    accepted: set[int] = field(default_factory=set)


class Tab:
    """One tab's work on the workspace: its image, prompt, candidates and running pass.

    Made by :meth:`Tabs.tab`; every method may raise :class:`TabError` subclasses as documented.
    """

    def __init__(self, tabs: Tabs):
        self._tabs = tabs
        self.ws = tabs.ws
        self.engine = tabs.ws.engine
        self.image: str | None = None
        self.prompt: PromptSession | None = None
        self.found: Found | None = None
        self.progress: float | None = None  # fraction done of the running pass
        self.seen = time.monotonic()
        self._storing = threading.Lock()  # a pending mask or a candidate is stored once

    def _prompt(self, key: str | None = None) -> PromptSession:
        """The tab's prompt; with ``key``, only if the tab still shows that image (a click sent
        just before the user moved on must not land on the next image)."""
        if self.prompt is None:
            raise Conflict("open an image first")
        if key is not None and key != self.image:
            raise Conflict(f"this tab now shows {self.image!r}, not {key!r}")
        return self.prompt

    def open(self, key: str) -> Opened:
        """Make ``key`` the tab's image (a new empty prompt, no candidates); embed the images
        Next and "next not done" would open in the background.

        Raises:
            NotFound: not an image of the folder. Unprocessable: the file cannot be read.
        """
        if key not in self.ws.keys:
            raise NotFound(f"no image {key!r} in this folder")
        t0 = time.perf_counter()
        try:
            image = self.ws.load(key)
        except ImageLoadError as exc:
            raise Unprocessable(str(exc)) from exc
        cached = self.engine.is_cached(image)
        with self._tabs.engine_lock:
            embedding = self.engine.embed(image, defer_labels=True)  # SAM's encoder only: CLIP follows
        ms = (time.perf_counter() - t0) * 1000
        self.image, self.prompt, self.found = key, PromptSession(key, embedding, wait_for_labels=False), None
        self.ws.store.set_last_image(key)
        self._tabs.prefetch_after(key)
        h, w = image.shape[:2]
        return Opened(key, w, h, ms, cached, embedding.labels_ready, self.ws.store.for_image(key))

    def _decode(self, key: str | None, step) -> Decoded:
        prompt = self._prompt(key)  # holds its own image's embedding, whatever the tab opens meanwhile
        with self._tabs.engine_lock:
            t0 = time.perf_counter()
            try:
                result = step(prompt)
            except ValueError as exc:
                raise Unprocessable(str(exc)) from exc
            ms = (time.perf_counter() - t0) * 1000
        return Decoded(prompt, result, ms)

    def click(self, x: float, y: float, positive: bool = True, key: str | None = None) -> Decoded:
        """Add a point (original pixels) to the prompt and decode, refining the current mask.

        Args:
            key: the image the click was made on; refused if the tab shows another now.
        Raises:
            Unprocessable: outside the image, or the prompt holds :data:`MAX_POINTS` already.
            Conflict: no image open, or another one.
        """
        if len(self._prompt(key).prompt.points) >= MAX_POINTS:
            raise Unprocessable(f"a prompt holds at most {MAX_POINTS} points: undo, or clear and start again")
        return self._decode(key, lambda p: p.add_point(self.engine, float(x), float(y), bool(positive)))

    def box(self, box: list[float], key: str | None = None) -> Decoded:
        """Set the box (XYXY original pixels, any corner order) and decode (``key`` as for :meth:`click`).

        Raises:
            BadRequest: not four numbers. Unprocessable: wholly outside the image.
        """
        try:
            b = [float(v) for v in box]
        except (TypeError, ValueError) as exc:
            raise BadRequest("box must be [x0, y0, x1, y1]") from exc
        if len(b) != 4:
            raise BadRequest("box must be [x0, y0, x1, y1]")
        return self._decode(key, lambda p: p.set_box(self.engine, b))

    def next_candidate(self, key: str | None = None) -> Decoded:
        """Replace the pending mask by SAM's next candidate for the same prompt (three, cycling;
        an undo step). ``key`` as for :meth:`click`.

        Raises:
            Unprocessable: no mask pending. Conflict: no image open, or another one.
        """
        return self._decode(key, lambda p: p.next_candidate(self.engine))

    def reprompt(self, ann_id: int, key: str | None = None) -> Decoded:
        """Make saved annotation ``ann_id`` of the tab's image the pending mask, to refine with
        points (SAM starts from its mask, as ``mask_input``; its prompt's points and box are
        kept); accepting then replaces it in place (same id), one change. ``key`` as for
        :meth:`click`.

        Raises:
            NotFound: no such annotation. Conflict: no image open, another one shown, or the
                annotation is of another image.
        """
        prompt = self._prompt(key)
        try:
            (ann,) = self.ws.store.get([int(ann_id)])
        except KeyError as exc:
            raise NotFound(f"no annotation {ann_id}") from exc
        if ann.image != prompt.image:
            raise Conflict(f"annotation {ann.id} is of {ann.image!r}, not of the image shown ({prompt.image!r})")
        mask = decode_rle(ann.rle)
        try:
            prompt.start_from(mask, Prompt.from_dict(ann.prompt), ann.id, self.engine.has_labels, ann.predicted_iou)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc
        return Decoded(prompt, prompt.result)

    def paint(self, op: str, points, radius: float | None = None, key: str | None = None) -> Decoded:
        """Edit the pending mask by hand: a brush or eraser stroke, a polygon added or cut out
        (:func:`~annotator.mask_edit.apply_edit`; original pixels). One prompt step (undo brings
        the mask before it back); the next click refines the edited mask. With nothing pending,
        it starts a mask drawn by hand (accepted with source ``manual``). ``key`` as for
        :meth:`click`.

        Raises:
            Unprocessable: an unknown op, bad points or radius, a first stroke that covers no
                pixel, or an edit that leaves nothing of the mask. Conflict: no image open, or
                another one.
        """
        prompt = self._prompt(key)
        current = prompt.result
        base = current.mask if current is not None else np.zeros(prompt.embedding.size, bool)
        try:
            mask = apply_edit(base, EditOp(op), points, radius)
            if current is None and not mask.any():
                raise ValueError("nothing drawn: the stroke covers no pixel of the image")
            if not mask.any():
                raise ValueError("nothing would be left of the mask: Esc clears it")
            return Decoded(prompt, prompt.edit(mask, self.engine.has_labels))
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc

    def undo(self) -> Decoded:
        """Drop the last prompt step; the previous mask comes back without decoding."""
        prompt = self._prompt()
        return Decoded(prompt, prompt.undo())

    def redo(self) -> Decoded:
        """Bring back the prompt step undone last (see
        :meth:`~annotator.session.PromptSession.redo`); the answer's result is ``None`` with
        nothing to redo and nothing pending."""
        prompt = self._prompt()
        result = prompt.redo()
        return Decoded(prompt, result if result is not None else prompt.result)

    def clear(self) -> Decoded:
        """Forget the prompt."""
        if self.prompt is not None:
            self.prompt.clear()
        return Decoded(self.prompt, None)

    def suggest(self, key: str | None = None) -> tuple[PromptResult | None, list[LabelScore]]:
        """The label suggestions of the pending mask, waiting for the image's CLIP dense pass if
        it is still running (outside the engine lock: clicks go on meanwhile).

        Returns:
            (the mask shown now, or ``None``; its top-k labels, empty without CLIP).
        Raises:
            Conflict: no image open, or another one. PassFailed: CLIP's dense pass failed.
        """
        prompt = self._prompt(key)
        try:
            prompt.embedding.dense.result()
        except Exception as exc:  # the pass's own error, e.g. the runtime's
            raise PassFailed(f"CLIP's dense pass failed: {exc}") from exc
        result = prompt.result  # the mask shown now (the user may have clicked while this waited)
        if result is None:
            return None, []
        with self._tabs.engine_lock:
            return result, self.engine.suggest_for(prompt.embedding, result)

    def accept(
        self, label: str, key: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Store the pending mask under ``label`` (any text; a new name becomes a new category)
        and clear the prompt. Parallel accepts of one tab store the mask once: the others find
        nothing pending; a repeated ``request_id`` (a retry) is answered with the first result.

        Args:
            request_id: the client's id of this write (see
                :meth:`~annotator.store.AnnotationStore.add_instances`).
            author: who accepts (default: the store's author, the OS user).
        Raises:
            Conflict: nothing to accept, or another image shown. Unprocessable: an empty label,
                one over 200 characters or with a control character.
            annotator.store.StoreFullError: the disk is full; nothing was stored, the mask is
                still pending.
        """
        with self._storing:
            prior = self._replay(request_id, ("add", "replace"))  # a new annotation, or a re-prompted one
            if prior is not None:
                return prior[0]
            prompt = self._prompt(key)
            result = prompt.result
            if result is None or not result.mask.any():
                raise Conflict("nothing to accept: click an object first")
            label = _label(label)
            self.ws.store.set_last_image(prompt.image)  # another tab may have opened an image since
            p = prompt.prompt
            source = Source.CLICK if p.points else Source.BOX if p.box is not None else Source.MANUAL
            instances = result.to_instances(source, label, prompt.prompt.as_dict())
            try:
                if prompt.replaces is not None:  # a re-prompted annotation: replaced in place
                    ann = self.ws.store.replace(prompt.replaces, instances, request_id, author)
                else:
                    (ann,) = self.ws.store.add_instances(prompt.image, instances, request_id, author)
            except KeyError as exc:
                raise Conflict(f"annotation {prompt.replaces} was deleted meanwhile: nothing replaced") from exc
            except ValueError as exc:  # a label outside the project's class list: the mask stays pending
                raise Unprocessable(str(exc)) from exc
            prompt.clear()
            return ann

    def _replay(self, request_id: str | None, kind: str | tuple[str, ...]) -> list[Annotation] | None:
        try:
            return self.ws.store.replay(request_id, kind)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc

    def _running(self, fn):
        """Run a pass with :attr:`progress` readable meanwhile."""
        self.progress = 0.0
        try:
            with self._tabs.engine_lock:
                return fn(lambda f: setattr(self, "progress", float(f)))
        finally:
            self.progress = None

    def everything(self, method: str = "samcp", request_id: str | None = None, author: str | None = None) -> Everything:
        """Segment the tab's whole image with a pass of the everything mode; each instance
        becomes an annotation (one transaction; a repeated ``request_id`` stores nothing more),
        except one whose mask IoU with an annotation of the image reaches
        :data:`DUPLICATE_IOU` (pressing E twice adds nothing the second time), as :meth:`find`.

        Raises:
            Conflict: no image open. BadRequest: unknown pass. Unprocessable: a label outside the
                project's class list (without CLIP every instance is ``UNLABELLED``: refused
                before the pass runs).
        """
        prompt = self._prompt()
        _check_method(method)
        if not self.engine.has_labels and self.ws.store.allowed is not None:  # all would be UNLABELLED
            try:
                self.ws.store.check_class(UNLABELLED)
            except ValueError as exc:  # refused before the pass's seconds, not after
                raise Unprocessable(f"nothing stored: {exc}") from exc
        t0 = time.perf_counter()
        result = self._running(lambda p: self.engine.everything(prompt.embedding, EverythingConfig(method=method), p))
        prior = self.ws.store.replay(request_id, "add")
        if prior is not None:  # a retry: the first answer, not its annotations seen as repeats
            return Everything(prompt.image, prior, result, time.perf_counter() - t0)
        found = result.annotations()
        known = self._already_annotated(prompt.image, found)
        try:
            added = self.ws.store.add_instances(
                prompt.image, found[np.nonzero(~known)[0]], request_id, author, state=State.PREDICTED
            )
        except ValueError as exc:  # a label outside the project's class list: nothing stored
            raise Unprocessable(f"nothing stored: {exc}") from exc
        return Everything(prompt.image, added, result, time.perf_counter() - t0, int(known.sum()))

    def _already_annotated(self, image: str, found: Instances) -> np.ndarray:
        """(N,) bool: instance i repeats an annotation of ``image`` (mask IoU ≥
        :data:`DUPLICATE_IOU`)."""
        stored = [a.rle for a in self.ws.store.for_image(image)]
        return rle_iou(found.rles(), stored).max(axis=1, initial=0.0) >= DUPLICATE_IOU

    def find(
        self,
        classes: str | list[str],
        threshold: float | str | None = None,
        method: str = "samcp",
        key: str | None = None,
    ) -> Found:
        """Find all instances of the named classes on the tab's image (see
        :meth:`~annotator.engine.Engine.find_all`); they become the tab's candidates, replacing
        earlier ones. A candidate whose mask IoU with an annotation of the image reaches
        :data:`DUPLICATE_IOU` is not offered (counted in ``already_annotated``).

        Args:
            classes: ``"car, person"`` or a list of names (vocabulary names or free text).
            threshold: ``None`` (only where a named class beats every background class) or a
                probability in [0, 1] that also keeps a region.
            key: the image the user asked on; refused if the tab shows another now.
        Raises:
            Conflict: no image open, another image, or no CLIP (the reason). Unprocessable: no
            class named, or a bad threshold. BadRequest: unknown pass.
        """
        prompt = self._prompt(key)
        _check_method(method)
        try:
            names = parse_classes(", ".join(classes) if isinstance(classes, list) else str(classes or ""))
            threshold = None if threshold in (None, "") else float(threshold)
            names = self._tabs.listed(names)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc
        config = EverythingConfig(method=method)
        t0 = time.perf_counter()
        reused = self.engine.is_segmented(prompt.embedding, config)
        try:
            found = self._running(lambda p: self.engine.find_all(prompt.embedding, names, threshold, config, p))
        except LabelsUnavailable as exc:
            raise Conflict(str(exc)) from exc
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc
        known = self._already_annotated(prompt.image, found)
        found = found[np.nonzero(~known)[0]]  # keeps the RLEs encoded for the test above
        named = self.engine.text_query(names, threshold).named  # the query find_all used
        self.found = Found(
            prompt.image,
            found,
            list(named),
            int(known.sum()),
            reused,
            time.perf_counter() - t0,
            self.engine.labels_unavailable,
        )
        return self.found

    def accept_found(
        self, indices: list[int], key: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> tuple[list[Annotation], list[int]]:
        """Store found candidates (by index into :attr:`Found.instances`) as annotations (a
        repeated ``request_id`` is answered with the first result).

        Returns:
            (the annotations added, the indices, sorted).
        Raises:
            Conflict: no candidates on this image, or one accepted already. BadRequest: bad indices.
        """
        found = self.found
        if found is None or (key is not None and found.key != key):
            raise Conflict("nothing found on this image: run Find all first")
        try:
            idx = sorted({int(i) for i in indices})
        except (TypeError, ValueError) as exc:
            raise BadRequest("indices must be a list of found candidates' indices") from exc
        if not idx or idx[0] < 0 or idx[-1] >= len(found.instances):
            raise BadRequest(f"indices must lie in 0..{len(found.instances) - 1}")
        with self._storing:
            prior = self._replay(request_id, "add")
            if prior is not None:
                return prior, idx
            if found.accepted.intersection(idx):
                raise Conflict(f"already accepted: {sorted(found.accepted.intersection(idx))}")
            self.ws.store.set_last_image(found.key)
            try:
                added = self.ws.store.add_instances(
                    found.key, found.instances[idx], request_id, author, state=State.PREDICTED
                )
            except ValueError as exc:  # a label outside the project's class list: nothing stored
                raise Unprocessable(str(exc)) from exc
            found.accepted.update(idx)
        return added, idx


class Tabs:
    """Every tab on one workspace, and the edits that are not a tab's own (by annotation id).

    Args:
        ws: the folder, engine and store.
        prefetch: how many of the following images to embed in the background when one opens.
    """

    def __init__(self, ws: Workspace, prefetch: int = 1):
        self.ws = ws
        self.prefetch_count = prefetch
        self.engine_lock = threading.Lock()
        self._tabs: dict[str, Tab] = {}
        self._lock = threading.Lock()

    def tab(self, tab_id: str) -> Tab:
        """The tab of this id, made on first use; tabs unseen for :data:`TAB_IDLE_S` are forgotten.

        Raises:
            BadRequest: no id, or one longer than 100 characters.
        """
        if not tab_id or not isinstance(tab_id, str) or len(tab_id) > 100:
            raise BadRequest("a session id is required")
        now = time.monotonic()
        with self._lock:
            tab = self._tabs.get(tab_id)
            if tab is None:
                for old in [k for k, t in self._tabs.items() if now - t.seen > TAB_IDLE_S]:
                    del self._tabs[old]
                tab = self._tabs[tab_id] = Tab(self)
            tab.seen = now
            return tab

    def prefetch_after(self, key: str) -> None:
        """Embed, in the background, the images Next and "next not done" would open."""
        if self.prefetch_count <= 0:
            return
        keys = self.ws.keys
        i = keys.index(key)
        after = keys[i + 1 :] + keys[:i]
        self.ws.prefetch(after, limit=self.prefetch_count)
        done = self.ws.store.done
        self.ws.prefetch([k for k in after if k not in done], limit=1)

    def images(self, keys: list[str] | None = None) -> list[tuple[str, int, bool]]:
        """(key, annotation count, done mark) of every image, or of ``keys`` only (once each)."""
        scope = self.ws.keys if keys is None else list(dict.fromkeys(keys))
        counts, done = self.ws.store.counts(None if keys is None else scope), self.ws.store.done
        return [(k, counts.get(k, 0), k in done) for k in scope]

    def _ids(self, ids) -> list[int]:
        try:
            return [int(i) for i in ids]
        except (TypeError, ValueError) as exc:
            raise BadRequest("ids must be a list of annotation ids") from exc

    def _edit(self, fn):
        """Run a store edit, its refusals as :class:`TabError`."""
        try:
            return fn()
        except KeyError as exc:
            raise NotFound(f"no annotation {exc.args[0]}") from exc
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc

    def delete(self, ids: list[int], request_id: str | None = None) -> tuple[list[int], list[str]]:
        """Delete annotations by id, all or none (a repeated ``request_id``: the first answer).

        Returns:
            (the ids, their images).
        Raises:
            NotFound: an unknown id (nothing deleted). BadRequest: not ids.
        """
        gone = self._edit(lambda: self.ws.store.delete(self._ids(ids), request_id))
        return [a.id for a in gone], [a.image for a in gone]

    def relabel(
        self, ids: list[int], label: str, request_id: str | None = None, author: str | None = None
    ) -> list[Annotation]:
        """Give annotations a new label (a new name becomes a new category), all or none.

        Raises:
            Unprocessable: empty label. NotFound, BadRequest: bad ids.
        """
        label = _label(label)
        return self._edit(lambda: self.ws.store.relabel(self._ids(ids), label, request_id, author))

    def merge(
        self, ids: list[int], label: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Merge two or more annotations of one image into one (their union), under ``label``
        or, without one, the label the parts share.

        Raises:
            Unprocessable: fewer than two, of different images, or of different labels and no
                ``label`` (the message names them). NotFound, BadRequest: bad ids.
        """
        ids = self._ids(ids)
        name = str(label).strip() if label and str(label).strip() else None
        return self._edit(lambda: self.ws.store.merge(ids, name, request_id, author))

    def intersect(
        self, ids: list[int], label: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Replace two or more annotations of one image by their intersection, under ``label`` or
        the label they share (as :meth:`merge`).

        Raises:
            Unprocessable: as :meth:`merge`, or no pixel in common. NotFound, BadRequest: bad ids.
        """
        ids = self._ids(ids)
        name = str(label).strip() if label and str(label).strip() else None
        return self._edit(lambda: self.ws.store.intersect(ids, name, request_id, author))

    def subtract(self, ids: list[int], request_id: str | None = None) -> Annotation:
        """Cut the masks of ``ids[1:]`` out of annotation ``ids[0]`` (it keeps its id and label;
        the others stay).

        Raises:
            Unprocessable: fewer than two, different images, no overlap, or nothing left.
            NotFound, BadRequest: bad ids.
        """
        ids = self._ids(ids)
        return self._edit(lambda: self.ws.store.subtract(ids, request_id))

    def edit(
        self,
        ann_id: int,
        op: str,
        points,
        radius: float | None = None,
        request_id: str | None = None,
        author: str | None = None,
    ) -> Annotation:
        """Edit a saved annotation's mask by hand (brush, eraser, polygon added or cut out; see
        :func:`~annotator.mask_edit.apply_edit`), in place: one undoable change.

        Raises:
            NotFound: no such annotation. Unprocessable: bad op, points or radius, or nothing
                left (delete it instead).
        """
        return self._edit(
            lambda: self.ws.store.edit(
                int(ann_id), lambda m: apply_edit(m, EditOp(op), points, radius), request_id, author
            )
        )

    def outline(self, ann_id: int) -> list[Ring]:
        """A saved annotation's outline as editable rings (outer boundaries and holes, original
        pixels; :func:`~annotator.mask_edit.outline_rings`).

        Raises:
            NotFound: no such annotation.
        """
        (ann,) = self._edit(lambda: self.ws.store.get([int(ann_id)]))
        return outline_rings(decode_rle(ann.rle))

    def move_outline(
        self, ann_id: int, old, new, hole: bool, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Move one ring of a saved annotation's outline (a vertex dragged, added or deleted):
        only the pixels between ``old`` and ``new`` change (:func:`~annotator.mask_edit.move_outline`);
        one undoable change.

        Raises:
            NotFound: no such annotation. Unprocessable: fewer than 3 vertices, or nothing left.
        """
        return self._edit(
            lambda: self.ws.store.edit(int(ann_id), lambda m: move_outline(m, old, new, bool(hole)), request_id, author)
        )

    def travel(self, key: str, way: str, request_id: str | None = None) -> Change | None:
        """Undo (``way="undo"``) or redo (``"redo"``) the last change of image ``key``'s
        annotations, from the store's history (shared by every tab and user of the dataset).

        Returns:
            What changed, ``None`` when there is nothing to undo (redo).
        Raises:
            NotFound: unknown image. BadRequest: another ``way``. Unprocessable: the change's
                annotations were changed since outside the history (nothing changed).
        """
        if key not in self.ws.keys:
            raise NotFound(f"no image {key!r} in this folder")
        if way not in ("undo", "redo"):
            raise BadRequest("way is 'undo' or 'redo'")
        store = self.ws.store
        return self._edit(lambda: store.undo(key, request_id) if way == "undo" else store.redo(key, request_id))

    # ------------------------------------------------------------------ the project's classes
    def listed(self, names: list[str]) -> list[str]:
        """``names`` as the project's class list spells them (case aside), when one is declared
        (``--classes FILE``); else as they are.

        Raises:
            ValueError: a name not in the list (the message names a few of it).
        """
        allowed = self.ws.store.allowed
        if allowed is None:
            return names
        spelt = {n.lower(): n for n in allowed}
        return [self.ws.store.check_class(spelt.get(n.lower(), n)) for n in names]

    def classes(self) -> list[ClassInfo]:
        """Every class of the project with its id and count (0 included), by id."""
        return self.ws.store.category_counts()

    def _classes_edit(self, fn) -> ClassChange | None:
        try:
            return fn()
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from exc
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc

    def rename_class(self, old: str, new: str, request_id: str | None = None, author: str | None = None) -> ClassChange:
        """Rename a class on every image (into an existing class: a merge); one step of the
        dataset-wide class history (see :mod:`annotator.store.classes`).

        Raises:
            NotFound: no such class. Unprocessable: empty, too long or the same name, or one
                outside the class list.
        """
        store = self.ws.store
        return self._classes_edit(lambda: store.rename_category(old, new, request_id, author))

    def merge_classes(
        self, names: list[str], into: str, request_id: str | None = None, author: str | None = None
    ) -> ClassChange:
        """Merge classes into one (``into``: one of them, another class or a new name).

        Raises:
            NotFound: a name that is no class. Unprocessable: nothing to merge, a refused ``into``.
        """
        store = self.ws.store
        return self._classes_edit(lambda: store.merge_categories(list(names), into, request_id, author))

    def travel_classes(self, way: str, request_id: str | None = None) -> ClassChange | None:
        """Undo (``way="undo"``) or redo the last class rename or merge.

        Returns:
            What changed, ``None`` when there is nothing to undo (redo).
        Raises:
            BadRequest: another ``way``. Unprocessable: the rows changed since (nothing changed).
        """
        if way not in ("undo", "redo"):
            raise BadRequest("way is 'undo' or 'redo'")
        store = self.ws.store
        return self._classes_edit(
            lambda: store.undo_classes(request_id) if way == "undo" else store.redo_classes(request_id)
        )

    def set_done(self, key: str, done: bool) -> None:
        """Mark an image done (or not). A done image is part of the dataset even with no
        annotation (a negative: listed in every export). Not done is not reviewed either.

        Raises:
            NotFound: unknown image. Unprocessable: unreadable image.
        """
        w, h = self._size(key)
        with self.ws.store.batch():
            if done:
                self.ws.store.add_image(key, w, h)
            elif key in self.ws.store.reviewed:
                self.ws.store.set_reviewed(key, False)
            self.ws.store.set_done(key, bool(done))

    def _size(self, key: str) -> tuple[int, int]:
        """(width, height) of image ``key`` in pixels.

        Raises:
            NotFound: unknown image. Unprocessable: unreadable image.
        """
        try:
            h, w = self.ws.load(key).shape[:2]
        except KeyError as exc:
            raise NotFound(f"no image {key!r}") from exc
        except ImageLoadError as exc:
            raise Unprocessable(str(exc)) from exc
        return w, h

    # ------------------------------------------------------------------ review of predictions
    def set_state(
        self,
        ids: list[int],
        state: str,
        key: str | None = None,
        request_id: str | None = None,
        author: str | None = None,
    ) -> list[Annotation]:
        """Set annotations' review state (``predicted``, ``accepted`` or ``rejected``): one
        undoable ``review`` step of their image's history (see :mod:`annotator.store.review`).

        Args:
            key: the image the page shows: every annotation must be one of it (else nothing
                changes).
        Returns:
            The annotations as they are now, in the order given.
        Raises:
            NotFound: an unknown id. Conflict: an annotation of another image than ``key``.
            Unprocessable: an unknown state, or no id. BadRequest: not ids.
        """
        ids = self._ids(ids)
        if not ids:
            raise Unprocessable("name the annotations to review")
        store = self.ws.store
        if key is not None:
            elsewhere = [a for a in self._edit(lambda: store.get(ids)) if a.image != key]
            if elsewhere:
                a = elsewhere[0]
                raise Conflict(f"annotation {a.id} is on {a.image!r}, not on {key!r}: nothing changed")
        return self._edit(lambda: store.set_state(ids, state, request_id, author))

    def accept_image(self, key: str, request_id: str | None = None, author: str | None = None) -> list[Annotation]:
        """Accept every ``predicted`` annotation of image ``key`` (rejected ones stay): one
        undoable step; the annotations accepted now (none: nothing was predicted).

        Raises:
            NotFound: unknown image.
        """
        if key not in self.ws.keys:
            raise NotFound(f"no image {key!r} in this folder")
        return self._edit(lambda: self.ws.store.accept_image(key, request_id, author))

    def set_reviewed(self, key: str, reviewed: bool = True) -> None:
        """Mark an image reviewed (which marks it done too), or not reviewed (it stays done).

        Raises:
            NotFound: unknown image. Unprocessable: unreadable image.
        """
        w, h = self._size(key)
        with self.ws.store.batch():
            if reviewed:
                self.ws.store.add_image(key, w, h)
            elif key not in self.ws.store.images:
                return
            self.ws.store.set_reviewed(key, bool(reviewed))


def _label(label: str | None) -> str:
    label = str(label or "").strip()
    if not label:
        raise Unprocessable("choose a label first")
    try:
        return check_label_text(label)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise BadRequest(f"unknown everything pass {method!r}: one of {', '.join(METHODS)}")


__all__ = [
    "DUPLICATE_IOU",
    "MAX_POINTS",
    "BadRequest",
    "Conflict",
    "Decoded",
    "Everything",
    "Found",
    "NotFound",
    "Opened",
    "PassFailed",
    "Tab",
    "TabError",
    "Tabs",
    "Unprocessable",
]
