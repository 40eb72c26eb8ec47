"""The OV-SAM engine: one image embedding per image, a mask and a label per prompt.

``embed`` runs SAM's image encoder and CLIP's dense pass once per image and keeps both (LRU by
image content, bounded memory) on the model's device; it returns an :class:`ImageEmbedding`
handle that the caller passes to every later call (``predict``, ``predict_boxes``,
``everything``), so the engine keeps no "current image": whoever holds the handle (a page
session, a bulk worker) says which image a prompt is for.  ``predict`` decodes a point / box
prompt into a mask at the original resolution and ranks the vocabulary for it (the OV-SAM
feature-crop baseline: :mod:`annotator.clip_regions` pools the region, :mod:`annotator.classifier`
names it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from .allocator import retain_freed_memory
from .backends import BACKENDS, BackendError, backend_summary, plan_precisions, resolve_backend
from .classifier import LabelScore, RegionClassifier
from .clip_regions import DEFAULT_TEMPLATES, ClipRegionEncoder, ClipSpec, ClipUnavailable
from .everything.patches import PatchConfig, generate_patches
from .everything.pipeline import EverythingConfig, EverythingResult, SegmentedImage, run_everything
from .instances import UNLABELLED, Instances, Source
from .sam import DecodedMasks, SamImageEmbedding, SamPromptDecoder, load_sam, resample_logits, upsample_logits
from .text_prompts import LabelsUnavailable, TextQueryClassifier, resolve_classes
from .vocabulary import Vocabulary, load_vocabulary

log = logging.getLogger(__name__)

# CLIP defaults: convolutional CLIPs pool region features far better than ViTs.
# On a GPU the ConvNeXt-L of FC-CLIP / OV-SAM; on a CPU the much lighter RN50.
CLIP_PRESETS: dict[str, ClipSpec] = {
    "cuda": ClipSpec("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup", dense_size=1024),
    "cpu": ClipSpec("RN50", "openai", dense_size=672),
}


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a CUDA GPU is visible, else ``cpu``; other values pass through.

    Raises:
        ValueError: ``cuda`` was asked for but none is available.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was given but no CUDA GPU is available")
    return device


CANDIDATE_MARGIN = 0.02
"""Default margin of :func:`choose_candidate`: on COCO (``coco_tiny_val``, 815 instances, one click
each) +0.67 mIoU over SAM's own choice at the farthest interior point and +1.4 at a random
interior point (README, "Masks against SamPredictor")."""


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


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


@dataclass
class _Embeddings:
    """What the cache holds per image: SAM's embedding, and CLIP's dense map once it is computed
    (a :class:`~concurrent.futures.Future`: the page's first click on an image does not wait
    for it, see :meth:`Engine.embed`)."""

    sam: SamImageEmbedding
    clip_dense: Future
    segmented: SegmentedImage | None = None  # the last everything pass's patches

    @property
    def nbytes(self) -> int:
        dense = self.clip_dense.result() if self.clip_dense.done() and not self.clip_dense.exception() else None
        size = 0 if dense is None else dense.numel() * dense.element_size()
        return self.sam.nbytes + size + (0 if self.segmented is None else self.segmented.nbytes)


@dataclass(frozen=True)
class ImageEmbedding:
    """One image's embeddings, the handle every prompt and pass of :class:`Engine` takes.

    Attributes:
        key: the image's content key (:func:`image_key`).
        image: (H, W, 3) uint8 RGB pixels (the crop classifier and everything mode need them).
        sam: SAM's image embedding and the decoder's image-only terms.
        dense: CLIP's dense map as a :class:`~concurrent.futures.Future` (done unless the
            handle came from ``embed(image, defer_labels=True)``); read :attr:`clip_dense`.
    """

    key: str
    image: np.ndarray
    sam: SamImageEmbedding
    dense: Future

    @property
    def clip_dense(self) -> torch.Tensor | None:
        """(C, Hf, Wf) CLIP dense map on the model's device (dense label mode), else ``None``;
        waits for the pass if it is still running (and raises what it raised)."""
        return self.dense.result()

    @property
    def labels_ready(self) -> bool:
        """Whether label suggestions can be computed without waiting for CLIP's dense pass."""
        return self.dense.done()

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image in pixels."""
        return self.sam.original_size


def image_key(image: np.ndarray) -> str:
    """Content hash of an image array (shape + pixels), the cache key of :class:`Engine`."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


class Engine:
    """Interactive OV-SAM: ``embed`` once per image, ``predict`` per click.

    Args:
        sam_model: a loaded SAM (see :func:`annotator.sam.load_sam`).
        clip: CLIP region encoder, or ``None`` (masks only).
        vocabulary: class names for suggestions (needed with a CLIP).
        topk: number of suggestions per mask.
        cache_bytes: memory bound of the per-image cache (embeddings of recent images).
        templates: prompt templates for the text embeddings.
        labels_unavailable: why there is no CLIP, shown to the user.
        text_embeddings: (K, D) unit-norm class embeddings to use instead of encoding the
            vocabulary with CLIP's text tower (e.g. precomputed elsewhere).
        backend: where SAM's image encoder runs (``torch``, ``openvino``, ``onnxruntime``; see
            :mod:`annotator.backends`); the CLIP's own ``backend`` says where its dense pass runs.
        threads: the CPU runtime's threads (``None`` = all cores).
        precision: SAM's image encoder's precision on a CPU runtime (``auto``, ``f32``,
            ``bf16``, ``int8``; see :class:`~annotator.sam.SamPromptDecoder`); the CLIP's own
            ``precision`` says that of its dense pass.
        refine: extra decoder passes per prompt by default (see :meth:`predict`).
        candidate_margin: how :meth:`predict` picks among SAM's candidates
            (:func:`choose_candidate`; 0 = SAM's own rule, the best predicted IoU).
    Raises:
        ValueError: a CLIP without a vocabulary, embeddings of the wrong length, or a negative
            ``refine``, or a ``candidate_margin`` outside [0, 1].
        annotator.backends.BackendError: SAM's image encoder cannot run on ``backend``.
    Attributes:
        notes: what runs other than asked (a failed precision check, a runtime fallback), one
            sentence each, for the log and the page's status.
    """

    def __init__(
        self,
        sam_model: torch.nn.Module,
        clip: ClipRegionEncoder | None = None,
        vocabulary: Vocabulary | None = None,
        topk: int = 5,
        cache_bytes: int = 1 << 30,
        templates: tuple[str, ...] = DEFAULT_TEMPLATES,
        labels_unavailable: str | None = None,
        text_embeddings: torch.Tensor | None = None,
        backend: str = "torch",
        threads: int | None = None,
        precision: str = "auto",
        refine: int = 0,
        candidate_margin: float = CANDIDATE_MARGIN,
    ):
        if refine < 0:
            raise ValueError(f"refine is a number of passes, not {refine}")
        if not 0.0 <= candidate_margin <= 1.0:
            raise ValueError(f"candidate_margin is a predicted-IoU margin in [0, 1], not {candidate_margin}")
        self.refine = refine
        self.candidate_margin = candidate_margin
        self.decoder = SamPromptDecoder(sam_model, backend, threads, precision)
        self.backend = backend
        self.clip = clip
        self.vocabulary = vocabulary
        self.templates = templates
        self._free_text: OrderedDict[str, torch.Tensor] = OrderedDict()  # phrase -> (D,) text embedding
        self._queries: OrderedDict[tuple, TextQueryClassifier] = OrderedDict()  # (classes, threshold) -> query
        self.topk = topk
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Embeddings] = OrderedDict()
        self._cache_lock = threading.Lock()  # guards _cache and _pending, never held while computing
        self._pending: dict[str, threading.Event] = {}  # embeddings being computed, by image key
        self._keys: dict[int, tuple[weakref.ref, str]] = {}  # id of a read-only array -> its content key
        self._in_use: str | None = None  # the key last asked for by embed(): a prefetch never evicts it
        self._labeller: ThreadPoolExecutor | None = None  # deferred CLIP dense passes (embed(defer_labels=True))
        self.classifier: RegionClassifier | None = None
        self.labels_unavailable = labels_unavailable
        self.notes: list[str] = [*self.decoder.notes, *(clip.notes if clip is not None else [])]
        if clip is not None:
            if vocabulary is None:
                raise ValueError("a CLIP needs a vocabulary")
            if text_embeddings is None:
                text_embeddings = clip.class_embeddings(vocabulary, templates)
            self.classifier = RegionClassifier(text_embeddings.to(clip.device), vocabulary)
            if clip.random_weights:
                self.labels_unavailable = "CLIP has random weights (test mode): suggestions are meaningless"
        elif self.labels_unavailable is None:
            self.labels_unavailable = "no CLIP model loaded"

    @property
    def device(self) -> torch.device:
        """Device the models and cached embeddings live on."""
        return self.decoder.device

    @property
    def precisions(self) -> dict[str, str]:
        """What each heavy pass runs on: ``{"sam": "openvino bf16", "sam_prompts": "openvino
        f32", "clip": "openvino f32"}``: SAM's image encoder, its batched prompt decoder
        (everything mode, find all, bulk boxes, and a click or box without a mask input) and
        CLIP's dense pass (absent without one)."""
        out = {"sam": f"{self.decoder.backend} {self.decoder.precision}"}
        if self.decoder.backend != "torch":
            out["sam_prompts"] = f"{self.decoder.backend} {self.decoder.decoder_precision}"
        if self.clip is not None and self.clip.dense_tower is not None:
            out["clip"] = f"{self.clip.backend} {self.clip.precision}"
        return out

    @property
    def has_labels(self) -> bool:
        """Whether ``predict`` returns label suggestions."""
        return self.classifier is not None

    @property
    def text_embeddings(self) -> torch.Tensor | None:
        """(K, D) unit-norm float32 class embeddings of the vocabulary, or ``None`` without CLIP."""
        return None if self.classifier is None else self.classifier.text

    # ------------------------------------------------------------------ embeddings
    def embed(self, image: np.ndarray, defer_labels: bool = False) -> ImageEmbedding:
        """The image's embeddings, computed unless cached.

        If another thread is computing the same image's embeddings (a :meth:`prefetch`), this
        waits for that result instead of computing it twice.

        Args:
            image: (H, W, 3) uint8 RGB. A read-only array is hashed once (its key is
                remembered), so later calls with it cost a dictionary lookup.
            defer_labels: return as soon as SAM's image encoder is done; CLIP's dense pass
                then runs on the engine's labelling thread, right after (the mask before the
                labels: the page's first click on a new photo waits for SAM only). Whatever
                reads the dense map waits for it (:attr:`ImageEmbedding.clip_dense`);
                :meth:`predict` with ``wait_for_labels=False`` does not.
        Returns:
            :class:`ImageEmbedding`, the handle to pass to :meth:`predict` and the passes.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        key, state = self._embedded(image, keep_in_use=False, defer_labels=defer_labels)
        self._in_use = key
        return ImageEmbedding(key, image, state.sam, state.clip_dense)

    def prefetch(self, image: np.ndarray) -> str:
        """Compute and cache ``image``'s embeddings for later (for a background thread: the
        image the user will open next). The cache bound holds as for :meth:`embed`, and the
        image last embedded is never the one evicted for it.

        Thread safety: may run beside :meth:`embed` / :meth:`predict` of another thread;
        the cache is locked only to look up and to insert, never while computing.

        Returns:
            The image's content key.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        return self._embedded(image, keep_in_use=True)[0]

    def is_cached(self, image: np.ndarray) -> bool:
        """Whether ``image``'s embeddings are held (``embed`` would cost a hash at most)."""
        key = self._key_of(image)
        with self._cache_lock:
            return key in self._cache

    @property
    def cached_images(self) -> int:
        """How many images' embeddings are held."""
        with self._cache_lock:
            return len(self._cache)

    def clear_cache(self) -> None:
        """Drop every cached embedding (benchmarks time the encoders this way)."""
        with self._cache_lock:
            self._cache.clear()

    def _key_of(self, image: np.ndarray) -> str:
        """:func:`image_key`, computed once per read-only array (its pixels cannot change; the
        workspace's images are read-only), so a click does not hash the whole photo again."""
        if image.flags.writeable:
            return image_key(image)
        ident = id(image)
        hit = self._keys.get(ident)
        if hit is not None and hit[0]() is image:
            return hit[1]
        key = image_key(image)
        self._keys[ident] = (weakref.ref(image, lambda _ref: self._keys.pop(ident, None)), key)
        return key

    def _embedded(self, image: np.ndarray, keep_in_use: bool, defer_labels: bool = False) -> tuple[str, _Embeddings]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        key = self._key_of(image)
        while True:
            with self._cache_lock:
                state = self._cache.get(key)
                if state is not None:
                    self._cache.move_to_end(key)
                    return key, state
                pending = self._pending.get(key)
                mine = pending is None
                if mine:
                    pending = self._pending[key] = threading.Event()
            if not mine:  # computed by another thread: wait, then read the cache again
                pending.wait()
                continue
            try:
                dense_mode = self.clip is not None and self.clip.mode == "dense"
                dense = _done(self.clip.dense_features(image) if dense_mode and not defer_labels else None)
                sam = self.decoder.encode(image)
                if dense_mode and defer_labels:  # SAM first: the mask does not wait for CLIP
                    dense = self._labelling().submit(self.clip.dense_features, image)
                state = _Embeddings(sam, dense)
                with self._cache_lock:
                    self._cache[key] = state
                    self._evict(keep_in_use)
            finally:
                with self._cache_lock:
                    self._pending.pop(key).set()
            return key, state

    def _evict(self, keep_in_use: bool) -> None:
        """Drop least recently used embeddings beyond ``cache_bytes`` (caller holds the lock);
        the newest entry is kept, and with ``keep_in_use`` the image last embedded."""
        total = sum(s.nbytes for s in self._cache.values())
        for key in list(self._cache)[:-1]:
            if total <= self.cache_bytes:
                break
            if keep_in_use and key == self._in_use:
                continue
            total -= self._cache.pop(key).nbytes

    def _labelling(self) -> ThreadPoolExecutor:
        """The one thread that runs deferred CLIP dense passes, in order (made on first use)."""
        with self._cache_lock:
            if self._labeller is None:
                self._labeller = ThreadPoolExecutor(1, thread_name_prefix="clip-dense")
            return self._labeller

    # ------------------------------------------------------------------ prompts
    def predict(
        self,
        emb: ImageEmbedding,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool | None = None,
        refine: int | None = None,
        wait_for_labels: bool = True,
    ) -> PromptResult:
        """Decode a prompt on an image into a mask and label suggestions.

        Args:
            emb: the image, from :meth:`embed`.
            point_coords: (N, 2) float (X, Y) pixels of the original image.
            point_labels: (N,) int, 1 = positive, 0 = negative.
            box: (4,) float XYXY pixels of the original image.
            mask_input: (1, 256, 256) low-res logits of an earlier result, to refine it.
            multimask_output: ``None`` = SAM's advice: three candidates for a lone point
                (ambiguous), one otherwise; :func:`choose_candidate` picks one, with the
                engine's ``candidate_margin``.
            refine: extra decoder passes, each given the same points and box and the last
                pass's low-res logits as ``mask_input``, one mask out (``None`` = the engine's
                ``refine``). Each pass costs one decode (~20 ms on a 2-core CPU, MobileSAM).
            wait_for_labels: ``False``: if the image's CLIP dense pass is still running (see
                :meth:`embed`'s ``defer_labels``), return the mask at once, without labels and
                with ``labels_pending`` set; :meth:`suggest_for` gives them when it is done.
        Returns:
            :class:`PromptResult`.
        Raises:
            ValueError: no prompt, mismatched points, or a point / box outside the image.
        """
        h, w = emb.size
        if point_coords is not None:
            pc = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
            if ((pc < 0) | (pc[:, :1] > w) | (pc[:, 1:] > h)).any():
                raise ValueError(f"point outside the {w}x{h} image")
        if box is not None:
            box = clip_box(box, w, h)
        if multimask_output is None:
            n_points = 0 if point_coords is None else len(np.asarray(point_coords).reshape(-1, 2))
            multimask_output = box is None and mask_input is None and n_points == 1
        decoded = self.decoder.decode(emb.sam, point_coords, point_labels, box, mask_input, multimask_output)
        chosen = choose_candidate(decoded, self.candidate_margin)
        logits, iou = decoded.low_res_logits[chosen], float(decoded.iou_predictions[chosen])
        for _ in range(self.refine if refine is None else refine):
            again = self.decoder.decode(emb.sam, point_coords, point_labels, box, logits[None], False)
            logits, iou = again.low_res_logits[0], float(again.iou_predictions[0])
        mask = upsample_logits(logits, emb.sam.input_size, emb.sam.original_size)
        result = PromptResult(mask, iou, logits[None], decoded, chosen)
        if self.has_labels:
            if wait_for_labels or emb.labels_ready:
                result.labels = self._labels_from_low_res(emb, logits, mask)
            else:
                result.labels_pending = True
        return result

    def suggest_for(self, emb: ImageEmbedding, result: PromptResult) -> list[LabelScore]:
        """The label suggestions of a :meth:`predict` result, waiting for the image's CLIP
        dense pass if it is still running; they are also stored in ``result`` (its
        ``labels_pending`` cleared), so accepting it keeps their scores.

        Returns:
            Top-k :class:`LabelScore`, best first; empty without CLIP.
        """
        if self.has_labels and (result.labels_pending or not result.labels):
            result.labels = self._labels_from_low_res(emb, result.low_res_logits[0], result.mask)
        result.labels_pending = False
        return result.labels

    def flipped(self, emb: ImageEmbedding) -> SamImageEmbedding:
        """SAM's embedding of the image mirrored left to right, for :meth:`predict_boxes`'s
        flip test-time augmentation: one more image encoder pass, not cached."""
        return self.decoder.encode(np.ascontiguousarray(emb.image[:, ::-1]))

    def predict_boxes(
        self,
        emb: ImageEmbedding,
        boxes: np.ndarray,
        with_labels: bool = True,
        flipped: SamImageEmbedding | None = None,
    ) -> Instances:
        """Decode many box prompts on an image in batched decoder passes (one mask each, as
        :meth:`predict` gives for a lone box); for bulk work, where a GPU pays off.

        Args:
            emb: the image, from :meth:`embed`.
            boxes: (B, 4) float XYXY pixels of the original image.
            with_labels: name each mask by its best suggestion (skip when labels are given).
            flipped: :meth:`flipped` of ``emb`` for flip test-time augmentation: each box is
                also decoded on the mirrored image (box mirrored), the two full-resolution
                logit maps are averaged (the mirrored one mirrored back) and thresholded at 0,
                and the two predicted IoUs averaged. Labels still come from the unmirrored
                pass's low-res mask. ``None``: one pass.
        Returns:
            B instances in box order (source ``BOX``): class name and score of the best
            suggestion (``object``, no score without labels), predicted IoU, the box prompt in
            ``data["prompt"]``.
        Raises:
            ValueError: a box lies outside the image (check first with :func:`clip_box`).
        """
        h, w = emb.size
        b = (
            np.stack([clip_box(x, w, h) for x in np.asarray(boxes, dtype=np.float64).reshape(-1, 4)])
            if len(boxes)
            else np.zeros((0, 4))
        )
        decoded = self.decoder.decode_boxes(emb.sam, b)
        predicted_iou = decoded.iou_predictions
        mirrored = None
        if flipped is not None:
            mirrored = self.decoder.decode_boxes(flipped, np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1))
            predicted_iou = (predicted_iou + mirrored.iou_predictions) / 2
        masks = np.zeros((len(b), h, w), bool)
        names, scores, ids = [], [], []
        for i, logits in enumerate(decoded.low_res_logits):
            if mirrored is None:
                masks[i] = upsample_logits(logits, emb.sam.input_size, emb.sam.original_size)
            else:
                both = resample_logits(logits, emb.sam.input_size, emb.sam.original_size)
                both += resample_logits(mirrored.low_res_logits[i], flipped.input_size, flipped.original_size)[:, ::-1]
                masks[i] = both > 0
            best = self._labels_from_low_res(emb, logits, masks[i])[:1] if with_labels and self.has_labels else []
            names.append(best[0].name if best else UNLABELLED)
            scores.append(best[0].score if best else None)
            ids.append(best[0].category_id if best else -1)
        return Instances(
            masks,
            scores=scores,
            predicted_iou=predicted_iou,
            class_names=names,
            class_ids=ids,
            source=Source.BOX,
            data={"prompt": [{"box": [float(v) for v in x]} for x in b]},
        )

    # ------------------------------------------------------------------ labels
    def _labels_from_low_res(self, emb: ImageEmbedding, logits: np.ndarray, mask: np.ndarray) -> list[LabelScore]:
        if emb.clip_dense is None:  # crop mode needs the full-resolution mask
            return self._labels_from_mask(emb, mask)
        hv, wv = emb.sam.valid_low_res
        coverage = (logits[:hv, :wv] > 0).astype(np.float32)
        return self.classifier.suggestions(self._pool(emb, coverage), self.topk)

    def _pool(self, emb: ImageEmbedding, coverage: np.ndarray) -> torch.Tensor:
        """Mask coverage at any resolution over the image → pooled region embedding (1, D)."""
        hf, wf = emb.clip_dense.shape[1:]
        weights = cv2.resize(coverage, (wf, hf), interpolation=cv2.INTER_AREA)
        return self.clip.mask_embeddings(emb.clip_dense, weights[None])

    def _labels_from_mask(self, emb: ImageEmbedding, mask: np.ndarray) -> list[LabelScore]:
        if not mask.any():
            return []
        if emb.clip_dense is None:
            return self.classifier.suggestions(self.clip.crop_embedding(emb.image, mask), self.topk)
        return self.classifier.suggestions(self._pool(emb, mask.astype(np.float32)), self.topk)

    def suggest_labels(self, emb: ImageEmbedding, mask: np.ndarray) -> list[LabelScore]:
        """Top-k labels for any (H, W) bool mask of an image (e.g. an edited one); empty
        without CLIP or for an empty mask."""
        return self._labels_from_mask(emb, mask) if self.has_labels else []

    # ------------------------------------------------------------------ everything
    def segment_everything(self, emb: ImageEmbedding, config: PatchConfig | None = None, progress=None) -> Instances:
        """Automatic SAM patches of an image (see :mod:`annotator.everything.patches`).

        Args:
            config: grid and thresholds; ``None`` = :meth:`default_patch_config`.
            progress: optional callable taking the fraction done.
        """
        return generate_patches(self.decoder, emb.sam, config or self.default_patch_config(), progress, emb.image)

    def default_patch_config(self) -> PatchConfig:
        """SAM's 32×32 grid on CUDA. On a CPU, one prompt per unexplained image segment
        (~110 decoder passes per COCO photo instead of 1024) with predicted-IoU and stability
        thresholds 0.8 / 0.9, which together reach the 32×32 grid's class-agnostic AR@100 (see
        benchmarks/everything.py). Holes and islands under 100 px removed."""
        if self.device.type == "cuda":
            return PatchConfig(points_per_side=32, min_mask_region_area=100)
        return PatchConfig(
            sampler="segments", pred_iou_thresh=0.8, stability_score_thresh=0.9, min_mask_region_area=100
        )

    def everything(
        self, emb: ImageEmbedding, config: EverythingConfig | None = None, progress=None
    ) -> EverythingResult:
        """Segment and label a whole image (see :mod:`annotator.everything`).

        Args:
            emb: the image, from :meth:`embed`.
            config: method (``samcp``, ``possam``, ``patches``) and thresholds; ``None`` = SAM-CP
                with the device's default grid.
            progress: optional callable taking the fraction done.
        Returns:
            :class:`~annotator.everything.pipeline.EverythingResult`; its ``note`` says why the
            instances are unlabelled or their labels meaningless.
        """
        return self._everything(emb, config, progress, self.classifier)

    def _everything(
        self, emb: ImageEmbedding, config: EverythingConfig | None, progress, classifier: RegionClassifier | None
    ) -> EverythingResult:
        """An everything pass with ``classifier`` as Prompt I, on the image's patches of an
        earlier pass when the engine still holds them (same patch settings); keeps the new ones."""
        config = config or EverythingConfig()
        if config.patches is None:
            config = replace(config, patches=self.default_patch_config())
        with self._cache_lock:
            state = self._cache.get(emb.key)
            segmented = None if state is None else state.segmented
        result = run_everything(
            emb.image,
            self.decoder,
            emb.sam,
            config,
            clip=self.clip if self.has_labels else None,
            clip_dense=emb.clip_dense,
            classifier=classifier,
            note=self.labels_unavailable,
            progress=progress,
            segmented=segmented,
        )
        with self._cache_lock:
            state = self._cache.get(emb.key)
            if state is not None and state.segmented is not result.segmented:
                state.segmented = result.segmented
                self._cache.move_to_end(emb.key)  # the newest entry: the bound evicts others first
                self._evict(keep_in_use=True)
        return result

    def is_segmented(self, emb: ImageEmbedding, config: EverythingConfig | None = None) -> bool:
        """Whether the engine holds the image's patches for ``config``'s patch settings (an
        everything pass or a find-all on it skips SAM)."""
        patches = (config.patches if config else None) or self.default_patch_config()
        with self._cache_lock:
            state = self._cache.get(emb.key)
            return state is not None and state.segmented is not None and state.segmented.config == patches

    # ------------------------------------------------------------------ find all
    def text_query(self, classes: list[str], threshold: float | None = None) -> TextQueryClassifier:
        """Prompt I for a find-all: the named classes against the rest of the vocabulary (see
        :mod:`annotator.text_prompts`). A name the vocabulary lacks gets its text embedding
        now (the engine's prompt templates; kept in memory and, by CLIP, on disk). The query
        is kept for the same classes and threshold (the last 16 asked).

        Args:
            classes: the names (see :func:`~annotator.text_prompts.parse_classes`).
            threshold: see :class:`~annotator.text_prompts.TextQueryClassifier`.
        Raises:
            LabelsUnavailable: no CLIP (the reason is the one label suggestions give).
            ValueError: no class, two names of one class, a threshold outside [0, 1].
        """
        if not self.has_labels:
            raise LabelsUnavailable(f"find all needs CLIP to name regions, and {self.labels_unavailable}")
        key = (tuple(classes), threshold)
        query = self._queries.get(key)
        if query is None:  # built once per question: a bulk run or a page asks it for image after image
            query = self._queries[key] = self._build_query(list(classes), threshold)
            while len(self._queries) > 16:
                self._queries.popitem(last=False)
        return query

    def _build_query(self, classes: list[str], threshold: float | None) -> TextQueryClassifier:
        named = resolve_classes(classes, self.vocabulary)
        vocab_text = self.classifier.text
        new = list(dict.fromkeys(c.name for c in named if not c.in_vocabulary and c.name not in self._free_text))
        if new:
            free = Vocabulary("free text", tuple(new), tuple((n,) for n in new), tuple(range(1, len(new) + 1)))
            for name, row in zip(new, self.clip.class_embeddings(free, self.templates), strict=True):
                self._free_text[name] = row
            while len(self._free_text) > 4096:
                self._free_text.popitem(last=False)
        rows = [vocab_text[c.vocab_indices[0]] if c.in_vocabulary else self._free_text[c.name] for c in named]
        text = torch.stack([r.to(vocab_text.device) for r in rows])
        return TextQueryClassifier(named, text, vocab_text, threshold, self.classifier.logit_scale)

    def find_all(
        self,
        emb: ImageEmbedding,
        classes: list[str],
        threshold: float | None = None,
        config: EverythingConfig | None = None,
        progress=None,
    ) -> Instances:
        """Every instance of the named classes in an image: the everything pass (its patches
        reused when the image was segmented before) with the names as Prompt I's text
        queries against the rest of the vocabulary as background (see
        :mod:`annotator.text_prompts`).

        Args:
            emb: the image, from :meth:`embed`.
            classes: class names, from the vocabulary or free text, e.g. ``["car", "person"]``.
            threshold: also keep a region whose best named class loses to a background class
                when that class's probability reaches this (0 to 1); ``None`` = winners only.
            config: the pass (``samcp``, ``possam``, ``patches``) and its settings.
            progress: optional callable taking the fraction done.
        Returns:
            :class:`~annotator.instances.Instances`, best score first: the named classes only
            (``class_names`` as :func:`~annotator.text_prompts.resolve_classes` names them),
            ``scores`` their probability against named + background classes, ``data["prompt"]``
            the pass and the classes; masks may overlap.
        Raises:
            LabelsUnavailable: no CLIP.
            ValueError: bad classes or threshold.
        """
        query = self.text_query(classes, threshold)
        result = self._everything(emb, config, progress, query)
        found = result.instances[np.nonzero(np.nan_to_num(result.instances.scores) > 0)[0]]
        prompt = {"everything": result.method, "classes": [c.name for c in query.named]}
        found.data["prompt"] = [dict(prompt) for _ in range(len(found))]
        return found


@dataclass(frozen=True)
class EngineConfig:
    """How to build an :class:`Engine` (the launcher's and CLI's options).

    Attributes:
        sam: SAM model type (``vit_t`` MobileSAM, ``vit_b``, ``vit_l``, ``vit_h``).
        sam_checkpoint: weights file; ``None`` downloads the verified registry file.
        clip_model: open_clip model name, or ``auto`` (by device, see :data:`CLIP_PRESETS`),
            or ``none`` for masks only.
        clip_pretrained: open_clip tag or weights path; ``None`` with ``auto`` takes the preset.
        vocab: vocabulary name or file (see :func:`annotator.vocabulary.load_vocabulary`).
        device: ``auto``, ``cpu`` or ``cuda``.
        label_mode: ``dense`` (mask pooling) or ``crop`` (image-crop variant).
        cache_mb: memory bound of the per-image embedding cache, in MiB.
        backend: ``auto`` (a CPU runtime on a CPU, torch on CUDA), ``torch``, ``openvino`` or
            ``onnxruntime``: where SAM's image encoder and CLIP's dense pass run.
        threads: CPU threads for torch and the runtime; ``None`` = all cores.
        precision: ``auto``, ``f32``, ``bf16`` or ``int8`` (see
            :func:`annotator.backends.plan_precisions`): ``auto`` = SAM's image encoder and
            batched prompt decoder in bf16 on a CPU with AMX or AVX-512 BF16 (f32 elsewhere),
            CLIP in f32; ``bf16`` all of them in bf16;
            ``int8`` SAM's encoder in int8 (opt-in: slightly worse masks), CLIP in f32.
        refine: extra decoder passes per prompt (see :meth:`Engine.predict`).
        candidate_margin: how a click's candidate mask is picked (:func:`choose_candidate`).
    """

    sam: str = "vit_t"
    sam_checkpoint: str | None = None
    clip_model: str = "auto"
    clip_pretrained: str | None = None
    vocab: str = "imagenet21k"
    device: str = "auto"
    label_mode: str = "dense"
    cache_mb: int = 1024
    backend: str = "auto"
    threads: int | None = None
    precision: str = "auto"
    refine: int = 0
    candidate_margin: float = CANDIDATE_MARGIN


def clip_spec_for(config: EngineConfig, device: str) -> ClipSpec | None:
    """The CLIP to load for ``config`` on ``device`` (``None`` for ``clip_model='none'``)."""
    if config.clip_model.lower() == "none":
        return None
    if config.clip_model == "auto":
        preset = CLIP_PRESETS["cuda" if device.startswith("cuda") else "cpu"]
        if config.clip_pretrained is None:
            return preset
        return ClipSpec(preset.model, config.clip_pretrained, preset.dense_size)
    return ClipSpec(config.clip_model, config.clip_pretrained or "openai", CLIP_PRESETS["cpu"].dense_size)


def build_engine(config: EngineConfig) -> Engine:
    """Load SAM, CLIP (when it can be had) and the vocabulary into an :class:`Engine`.

    CLIP weights that cannot be had do not stop the engine: it runs masks-only and
    ``Engine.labels_unavailable`` says why (also logged once). With ``precision="auto"`` a graph
    whose bf16 check fails runs in f32 on the same runtime; with ``backend="auto"`` a CPU
    runtime that cannot run a graph in f32 (:class:`~annotator.backends.BackendError`) falls
    back to torch. Each fallback is logged once, as a warning, and kept in ``Engine.notes`` for
    the page; the log says which backend and precisions run.

    Raises:
        annotator.checkpoints.CheckpointError: SAM weights cannot be had.
        annotator.vocabulary.VocabularyError: bad vocabulary.
        annotator.backends.BackendError: the backend or precision asked for by name cannot run
            a graph.
        ValueError: bad device, backend, precision or model name.
    """
    device = resolve_device(config.device)
    backend = resolve_backend(config.backend, device)
    plan_precisions(config.precision, backend, auto_bf16=True, quantizable=True)  # cheap checks first
    if config.threads:
        torch.set_num_threads(config.threads)
    retain_freed_memory()  # the decoder's tensors: reused, not mapped again (see annotator.allocator)
    vocabulary = load_vocabulary(config.vocab)
    sam_model = load_sam(config.sam, config.sam_checkpoint, device)
    spec = clip_spec_for(config, device)
    try:
        engine = _assemble(config, sam_model, spec, vocabulary, device, backend, config.precision)
    except BackendError as exc:
        if config.backend != "auto" or config.precision not in ("auto", "f32"):  # asked for by name: no fallback
            raise
        note = f"{exc}; running on torch instead (--backend torch skips the {backend} graphs)"
        log.warning("%s", note)
        backend = "torch"
        engine = _assemble(config, sam_model, spec, vocabulary, device, backend, "f32")
        engine.notes.insert(0, note)
    log.info("inference backend: %s; %s", backend_summary(backend, config.threads), precision_summary(engine))
    return engine


def precision_summary(engine: Engine) -> str:
    """``SAM image encoder openvino bf16, CLIP dense pass openvino f32``, for logs and figures."""
    names = {"sam": "SAM image encoder", "sam_prompts": "batched prompts", "clip": "CLIP dense pass"}
    return ", ".join(f"{names[k]} {v}" for k, v in engine.precisions.items())


def _assemble(config: EngineConfig, sam_model, spec, vocabulary, device: str, backend: str, precision: str) -> Engine:
    clip, reason = None, None
    if spec is None:
        reason = "CLIP is switched off (--clip none)"
    else:
        try:
            clip = ClipRegionEncoder(
                spec, device, mode=config.label_mode, backend=backend, threads=config.threads, precision=precision
            )
        except ClipUnavailable as exc:
            reason = str(exc)
    if reason:
        log.warning("label suggestions are off: %s", reason)
    return Engine(
        sam_model,
        clip,
        vocabulary,
        cache_bytes=config.cache_mb << 20,
        labels_unavailable=reason,
        backend=backend,
        threads=config.threads,
        precision=precision,
        refine=config.refine,
        candidate_margin=config.candidate_margin,
    )


def engine_summary(engine: Engine) -> str:
    """One line describing the loaded engine, for logs and the UI."""
    parts = [f"device {engine.device}", f"backend {engine.backend} ({precision_summary(engine)})"]
    if engine.clip is not None:
        parts.append(f"CLIP {engine.clip.spec.model}/{engine.clip.spec.pretrained or 'random'}")
    if engine.vocabulary is not None:
        parts.append(f"vocabulary {engine.vocabulary.name} ({len(engine.vocabulary)} classes)")
    return ", ".join(parts)


__all__ = [
    "BACKENDS",
    "Engine",
    "EngineConfig",
    "ImageEmbedding",
    "LabelScore",
    "PromptResult",
    "build_engine",
    "engine_summary",
    "precision_summary",
    "resolve_device",
]
