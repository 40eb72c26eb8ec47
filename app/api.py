"""The annotation page's HTTP API: a lean round trip per click.

The browser holds the picture and draws everything itself; per click it sends one point (or a
box) and gets back only the new mask, as COCO compressed RLE at the displayed resolution plus
its outline, with the label suggestions and scores. The image itself travels once per image.

Routes (mounted under ``/ovsam/api`` by :func:`app.page.build_app`), JSON in and out:

- ``GET  state?session=S``: the images (key, annotation count, done mark), the image the session
  (or, for a new session, the store) worked on last, vocabulary size, label availability.
- ``POST open {session, key}``: make an image the session's own (embeddings computed or taken
  from the cache), prefetch the next ones; the image's size, display scale and annotations.
- ``GET  image?key=K``: the image at the displayed resolution (PNG or JPEG).
- ``POST click {session, x, y, positive}``, ``POST box {session, box}``, ``POST undo``,
  ``POST clear``: the prompt, in original image pixels; each answers with the pending mask and
  a ``token`` naming it. The mask comes before the labels: on an image whose CLIP dense pass
  is still running (``open`` waits for SAM's encoder only) the answer has no labels and
  ``labels_pending`` set.
- ``POST suggest {session, key}``: the label suggestions of the tab's pending mask (and its
  ``token``), once the image's CLIP dense pass is done.
- ``POST accept {session, label}``: store the pending mask; a label not in the vocabulary
  becomes a new category.
- ``GET  labels?q=TEXT``: the vocabulary ranked on the server (exact, prefix, substring;
  synonyms count), the best 20 names.
- ``POST delete {ids}``, ``POST relabel {ids, label}``, ``POST merge {ids, label?}``,
  ``POST done {key, done}``, ``POST everything {session, method}``, ``GET progress?session=S``.
- ``POST find {session, key, classes, threshold, method}``: find all instances of the named
  classes (comma-separated; vocabulary names or free text) on the tab's image; they are held
  as the tab's found candidates (nothing stored yet), each with its mask, label and score.
- ``POST find_accept {session, key, indices}``: store those candidates as annotations.

Each browser tab is a session (an id it makes itself); sessions never share prompts, and each
holds the embedding of its own image (the engine keeps no current image). Decodes are
serialised (they share the CPU); the store serialises its own writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from annotator.engine import PromptResult
from annotator.everything.pipeline import METHOD_TITLES, METHODS, EverythingConfig
from annotator.images import ImageLoadError
from annotator.instances import Instances, Source
from annotator.masks import decode_rle, encode_rle, rle_iou
from annotator.session import PromptSession
from annotator.store import Annotation
from annotator.text_prompts import LabelsUnavailable, parse_classes
from annotator.workspace import Workspace

log = logging.getLogger(__name__)

MAX_DISPLAY_SIDE = 4096  # larger photos travel downscaled; clicks are mapped back exactly
LABEL_RESULTS = 20
LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".webp")
DUPLICATE_IOU = 0.9  # a find-all candidate this close to an annotation of the image is not offered again
TAB_IDLE_S = 12 * 3600  # a tab unseen this long is forgotten (its pending prompt with it)


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


@dataclass
class _Tab:
    """What one browser tab is doing: its image and the prompt on it."""

    image: str | None = None
    prompt: PromptSession | None = None
    progress: float | None = None
    found: tuple[str, Instances, set[int]] | None = None  # find-all candidates: image, instances, indices accepted
    seen: float = field(default_factory=time.monotonic)


class PageAPI:
    """Serves the page's requests for one :class:`~annotator.workspace.Workspace`.

    Args:
        ws: the folder, engine and store.
        prefetch: how many of the following images to embed in the background when one opens.
    """

    def __init__(self, ws: Workspace, prefetch: int = 1):
        self.ws = ws
        self.engine = ws.engine
        self.prefetch_count = prefetch
        self._engine_lock = threading.Lock()
        self._tabs: dict[str, _Tab] = {}
        self._tabs_lock = threading.Lock()
        self._shown: OrderedDict[int, dict] = OrderedDict()  # annotation id -> mask payload
        self._encoded: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    # ------------------------------------------------------------------ helpers
    def _tab(self, session: str) -> _Tab:
        if not session or not isinstance(session, str) or len(session) > 100:
            raise ApiError(400, "a session id is required")
        now = time.monotonic()
        with self._tabs_lock:
            tab = self._tabs.get(session)
            if tab is None:
                for sid in [k for k, t in self._tabs.items() if now - t.seen > TAB_IDLE_S]:
                    del self._tabs[sid]
                tab = self._tabs[session] = _Tab()
            tab.seen = now
            return tab

    def _prompt(self, session: str, key: str | None = None) -> PromptSession:
        """The tab's prompt; with ``key``, only if the tab still shows that image (a click sent
        just before the user moved on must not land on the next image)."""
        tab = self._tab(session)
        if tab.prompt is None:
            raise ApiError(409, "open an image first")
        if key is not None and key != tab.image:
            raise ApiError(409, f"this tab now shows {tab.image!r}, not {key!r}")
        return tab.prompt

    def _scale(self, key: str) -> float:
        return display_scale(*self.ws.load(key).shape[:2])

    def _annotation(self, ann: Annotation) -> dict:
        shown = self._shown.get(ann.id)
        if shown is None:
            h, w = ann.rle["size"]
            shown = mask_payload(decode_rle(ann.rle), display_scale(h, w), ann.rle)
            self._shown[ann.id] = shown
            while len(self._shown) > 2000:
                self._shown.popitem(last=False)
        return {
            "id": ann.id,
            "label": ann.label,
            "score": ann.score,
            "predicted_iou": ann.predicted_iou,
            "area": ann.area,
            "bbox": ann.bbox,
            **shown,
        }

    def _result(
        self, session: PromptSession | None, result: PromptResult | None, engine_ms: float | None = None
    ) -> dict:
        prompt = session.prompt.as_dict() if session is not None else {"points": [], "labels": [], "box": None}
        if result is None:
            return {"mask": None, "prompt": prompt, "labels": [], "token": None}
        return {
            "mask": mask_payload(result.mask, self._scale(session.image)),
            "token": _token(result),
            "area": result.area,
            "predicted_iou": round(result.predicted_iou, 4),
            "labels": _labels(result.labels),
            "labels_pending": result.labels_pending,
            "engine_ms": None if engine_ms is None else round(engine_ms, 2),
            "prompt": prompt,
        }

    def _decode(self, session: str, key: str | None, step) -> dict:
        prompt = self._prompt(session, key)  # holds its own image's embedding, whatever the tab opens meanwhile
        with self._engine_lock:
            t0 = time.perf_counter()
            try:
                result = step(prompt)
            except ValueError as exc:
                raise ApiError(422, str(exc)) from exc
            ms = (time.perf_counter() - t0) * 1000
        return self._result(prompt, result, ms)

    def images(self) -> list[dict]:
        """Every image: ``key``, annotation count ``n``, ``done`` mark."""
        counts, done = self.ws.store.counts(), self.ws.store.done
        return [{"key": k, "n": counts.get(k, 0), "done": k in done} for k in self.ws.keys]

    def _changed(self, keys) -> list[dict]:
        """The image-list entries of ``keys`` only (after an edit: the page updates those rows)."""
        counts, done = self.ws.store.counts(), self.ws.store.done
        return [{"key": k, "n": counts.get(k, 0), "done": k in done} for k in dict.fromkeys(keys)]

    # ------------------------------------------------------------------ routes
    def state(self, session: str) -> dict:
        """The page's start-up state for a tab (see the module docstring); ``notes`` says what
        runs other than asked (a precision check that failed, a runtime fallback)."""
        tab = self._tab(session)
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
        }

    def open(self, session: str, key: str) -> dict:
        """Make ``key`` the tab's image; start embedding the next images in the background.

        Raises:
            ApiError: 404 unknown image; 422 unreadable file (the reason in the message).
        """
        tab = self._tab(session)
        if key not in self.ws.keys:
            raise ApiError(404, f"no image {key!r} in this folder")
        t0 = time.perf_counter()
        try:
            image = self.ws.load(key)
        except ImageLoadError as exc:
            raise ApiError(422, str(exc)) from exc
        cached = self.engine.is_cached(image)
        with self._engine_lock:
            embedding = self.engine.embed(image, defer_labels=True)  # SAM's encoder only: CLIP follows
        ms = (time.perf_counter() - t0) * 1000
        h, w = image.shape[:2]
        tab.image, tab.prompt, tab.found = key, PromptSession(key, embedding, wait_for_labels=False), None
        self.ws.store.set_last_image(key)
        self._prefetch_after(key)
        return {
            "key": key,
            "width": w,
            "height": h,
            "scale": display_scale(h, w),
            "ready_ms": round(ms, 1),
            "cached": cached,
            "labels_ready": embedding.labels_ready,
            "annotations": [self._annotation(a) for a in self.ws.store.for_image(key)],
        }

    def _prefetch_after(self, key: str) -> None:
        """Embed, in the background, the images Next and "next not done" would open."""
        if self.prefetch_count <= 0:
            return
        keys = self.ws.keys
        i = keys.index(key)
        after = keys[i + 1 :] + keys[:i]
        self.ws.prefetch(after, limit=self.prefetch_count)
        done = self.ws.store.done
        self.ws.prefetch([k for k in after if k not in done], limit=1)

    def image_bytes(self, key: str) -> tuple[bytes, str]:
        """The image at its displayed resolution: PNG for lossless sources (PNG, BMP, TIFF,
        WebP: exact pixels when zoomed in), JPEG for the rest.

        Returns:
            (encoded bytes, media type).

        Raises:
            ApiError: 404 unknown image; 422 unreadable file.
        """
        cached = self._encoded.get(key)
        if cached is not None:
            return cached
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
        out = (buf.tobytes(), "image/png" if lossless else "image/jpeg")
        self._encoded[key] = out
        while len(self._encoded) > 16:
            self._encoded.popitem(last=False)
        return out

    def click(self, session: str, x: float, y: float, positive: bool = True, key: str | None = None) -> dict:
        """Add a point (original pixels) and decode.

        Args:
            key: the image the click was made on; refused (409) if the tab shows another now.
        Raises:
            ApiError: 422 outside the image; 409 no image open, or another one.
        """
        return self._decode(session, key, lambda p: p.add_point(self.engine, float(x), float(y), bool(positive)))

    def box(self, session: str, box: list[float], key: str | None = None) -> dict:
        """Set the box (XYXY original pixels, any corner order) and decode (``key`` as for :meth:`click`)."""
        if not isinstance(box, list) or len(box) != 4:
            raise ApiError(400, "box must be [x0, y0, x1, y1]")
        return self._decode(session, key, lambda p: p.set_box(self.engine, [float(v) for v in box]))

    def undo(self, session: str) -> dict:
        """Drop the last prompt step; the previous mask comes back without decoding."""
        prompt = self._prompt(session)
        return self._result(prompt, prompt.undo())

    def clear(self, session: str) -> dict:
        """Forget the prompt."""
        tab = self._tab(session)
        if tab.prompt is not None:
            tab.prompt.clear()
        return self._result(tab.prompt, None)

    def accept(self, session: str, label: str, key: str | None = None) -> dict:
        """Store the pending mask under ``label`` (any text; new names become new categories).

        Args:
            key: the image the mask was made on; refused (409) if the tab shows another now.
        Raises:
            ApiError: 409 nothing to accept, or another image shown; 422 empty label.
        """
        prompt = self._prompt(session, key)
        result = prompt.result
        if result is None or not result.mask.any():
            raise ApiError(409, "nothing to accept: click an object first")
        label = str(label or "").strip()
        if not label:
            raise ApiError(422, "choose a label first")
        self.ws.store.set_last_image(prompt.image)  # another tab may have opened an image since
        source = Source.CLICK if prompt.prompt.points else Source.BOX
        (ann,) = self.ws.store.add_instances(prompt.image, result.to_instances(source, label, prompt.prompt.as_dict()))
        prompt.clear()
        return {"annotation": self._annotation(ann), "changed_images": self._changed([prompt.image])}

    def suggest(self, session: str, key: str | None = None) -> dict:
        """The label suggestions of the tab's pending mask, waiting for the image's CLIP dense
        pass if it is still running (outside the engine lock: clicks go on meanwhile).

        Returns:
            ``{"token", "labels"}``: the pending mask's token (as the click answered it; the
            page shows the labels only if it still shows that mask) and its top-5 labels
            (empty without CLIP, or with nothing pending).
        Raises:
            ApiError: 409 no image open, or another one; 500 CLIP's dense pass failed.
        """
        prompt = self._prompt(session, key)
        try:
            prompt.embedding.dense.result()
        except Exception as exc:  # the pass's own error, e.g. the runtime's
            raise ApiError(500, f"CLIP's dense pass failed: {exc}") from exc
        result = prompt.result  # the mask shown now (the user may have clicked while this waited)
        if result is None:
            return {"token": None, "labels": []}
        with self._engine_lock:
            labels = self.engine.suggest_for(prompt.embedding, result)
        return {"token": _token(result), "labels": _labels(labels)}

    def labels(self, query: str) -> dict:
        """The best :data:`LABEL_RESULTS` vocabulary names for what was typed."""
        vocab = self.engine.vocabulary
        found = vocab.search(query, LABEL_RESULTS) if vocab else []
        return {"results": [{"name": n, "synonym": s} for n, s in found]}

    def _ids(self, ids) -> list[int]:
        try:
            out = [int(i) for i in ids]
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "ids must be a list of annotation ids") from exc
        missing = [i for i in out if i not in self.ws.store.annotations]
        if missing:
            raise ApiError(404, f"no annotation {missing[0]}")
        return out

    def delete(self, ids) -> dict:
        """Delete annotations by id."""
        ids = self._ids(ids)
        keys = [self.ws.store.annotations[i].image for i in ids]
        for i in ids:
            self.ws.store.delete(i)
        return {"deleted": ids, "changed_images": self._changed(keys)}

    def relabel(self, ids, label: str) -> dict:
        """Give annotations a new label (a new name becomes a new category)."""
        label = str(label or "").strip()
        if not label:
            raise ApiError(422, "choose a label first")
        anns = [self.ws.store.relabel(i, label) for i in self._ids(ids)]
        return {"annotations": [self._annotation(a) for a in anns]}

    def merge(self, ids, label: str | None = None) -> dict:
        """Merge two or more annotations of one image into one (their union)."""
        ids = self._ids(ids)
        try:
            ann = self.ws.store.merge(ids, str(label).strip() if label and str(label).strip() else None)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        return {"annotation": self._annotation(ann), "removed": ids, "changed_images": self._changed([ann.image])}

    def set_done(self, key: str, done: bool) -> dict:
        """Mark an image done (or not). A done image is part of the dataset even with no
        annotation (a negative: listed in every export).

        Raises:
            ApiError: 404 unknown image; 422 unreadable image.
        """
        try:
            h, w = self.ws.load(key).shape[:2]
        except KeyError as exc:
            raise ApiError(404, f"no image {key!r}") from exc
        except ImageLoadError as exc:
            raise ApiError(422, str(exc)) from exc
        if done:
            self.ws.store.add_image(key, w, h, save=False)
        self.ws.store.set_done(key, bool(done))
        return {"images": self.images()}

    def everything(self, session: str, method: str) -> dict:
        """Segment the tab's whole image with a pass of the everything mode; each instance
        becomes an annotation. Progress is readable meanwhile through :meth:`progress`."""
        tab = self._tab(session)
        if tab.image is None or tab.prompt is None:
            raise ApiError(409, "open an image first")
        if method not in METHODS:
            raise ApiError(400, f"unknown everything pass {method!r}: one of {', '.join(METHODS)}")
        key, embedding = tab.image, tab.prompt.embedding
        t0 = time.perf_counter()
        tab.progress = 0.0
        try:
            with self._engine_lock:
                result = self.engine.everything(
                    embedding, EverythingConfig(method=method), progress=lambda f: setattr(tab, "progress", float(f))
                )
        finally:
            tab.progress = None
        added = self.ws.store.add_instances(key, result.annotations())
        how = "labelled by CLIP" if result.labelled else "labelled 'object'"
        if result.note:
            how += f": {result.note}"
        return {
            "annotations": [self._annotation(a) for a in added],
            "patches": len(result.patches),
            "seconds": round(time.perf_counter() - t0, 2),
            "how": how,
            "changed_images": self._changed([key]),
        }

    def find(self, session: str, classes, threshold=None, method: str = "samcp", key: str | None = None) -> dict:
        """Find all instances of the named classes on the tab's image (see
        :meth:`~annotator.engine.Engine.find_all`); they become the tab's found candidates,
        replacing earlier ones. A candidate whose mask IoU with an annotation of the image
        reaches :data:`DUPLICATE_IOU` is not offered (counted in ``already_annotated``).
        Progress is readable meanwhile through :meth:`progress`.

        Args:
            classes: ``"car, person"`` or a list of names.
            threshold: ``None`` (only where a named class beats every background class) or a
                probability in [0, 1] that also keeps a region.
            key: the image the user asked on; refused (409) if the tab shows another now.
        Raises:
            ApiError: 409 no image open, another image, or no CLIP (the reason); 422 no class
                named, or a bad threshold; 400 unknown pass.
        """
        tab, prompt = self._tab(session), self._prompt(session, key)
        if method not in METHODS:
            raise ApiError(400, f"unknown everything pass {method!r}: one of {', '.join(METHODS)}")
        try:
            names = parse_classes(", ".join(classes) if isinstance(classes, list) else str(classes or ""))
            threshold = None if threshold in (None, "") else float(threshold)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        config = EverythingConfig(method=method)
        t0 = time.perf_counter()
        tab.progress = 0.0
        try:
            with self._engine_lock:
                reused = self.engine.is_segmented(prompt.embedding, config)
                found = self.engine.find_all(
                    prompt.embedding, names, threshold, config, progress=lambda f: setattr(tab, "progress", float(f))
                )
        except LabelsUnavailable as exc:
            raise ApiError(409, str(exc)) from exc
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        finally:
            tab.progress = None
        stored = [a.rle for a in self.ws.store.for_image(prompt.image)]
        known = rle_iou(found.rles(), stored).max(axis=1, initial=0.0) >= DUPLICATE_IOU
        found = found[np.nonzero(~known)[0]]  # keeps the RLEs encoded for the test above
        tab.found = (prompt.image, found, set())
        scale, areas, rles = self._scale(prompt.image), found.areas, found.rles()
        return {
            "key": prompt.image,
            "found": [
                {
                    "index": i,
                    "label": str(found.class_names[i]),
                    "score": round(float(found.scores[i]), 4),
                    "area": int(areas[i]),
                    "bbox": [float(v) for v in found.boxes[i]],
                    **mask_payload(found.masks[i], scale, rles[i]),
                }
                for i in range(len(found))
            ],
            "classes": [
                {"name": c.name, "in_vocabulary": c.in_vocabulary}
                for c in self.engine.text_query(names, threshold).named  # the query find_all used
            ],
            "already_annotated": int(known.sum()),
            "reused_patches": reused,
            "seconds": round(time.perf_counter() - t0, 2),
            "note": self.engine.labels_unavailable,
        }

    def find_accept(self, session: str, indices, key: str | None = None) -> dict:
        """Store found candidates (by ``index`` of :meth:`find`'s answer) as annotations.

        Raises:
            ApiError: 409 no candidates on this image, or one already accepted; 400 bad indices.
        """
        tab = self._tab(session)
        if tab.found is None or (key is not None and tab.found[0] != key):
            raise ApiError(409, "nothing found on this image: run Find all first")
        image, found, accepted = tab.found
        try:
            idx = sorted({int(i) for i in indices})
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "indices must be a list of found candidates' indices") from exc
        if not idx or idx[0] < 0 or idx[-1] >= len(found):
            raise ApiError(400, f"indices must lie in 0..{len(found) - 1}")
        if accepted.intersection(idx):
            raise ApiError(409, f"already accepted: {sorted(accepted.intersection(idx))}")
        self.ws.store.set_last_image(image)
        added = self.ws.store.add_instances(image, found[idx])
        accepted.update(idx)
        return {
            "annotations": [self._annotation(a) for a in added],
            "indices": idx,
            "changed_images": self._changed([image]),
        }

    def progress(self, session: str) -> dict:
        """Fraction done of the tab's running everything pass (``None`` when none runs)."""
        return {"progress": self._tab(session).progress}


__all__ = ["ApiError", "PageAPI", "display_scale", "mask_payload"]
