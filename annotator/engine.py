"""The OV-SAM engine: one image embedding per image, a mask and a label per prompt.

``set_image`` runs SAM's image encoder and CLIP's dense pass once and keeps both (LRU by
image content, bounded memory) on the model's device; ``predict`` decodes a point / box prompt
into a mask at the original resolution and ranks the vocabulary for it (the OV-SAM
feature-crop baseline, see :mod:`annotator.clip_regions`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from .clip_regions import DEFAULT_TEMPLATES, ClipRegionClassifier, ClipSpec, ClipUnavailable
from .everything.patches import PatchConfig, Patches, generate_patches
from .everything.pipeline import EverythingConfig, EverythingResult, run_everything
from .sam import DecodedMasks, SamImageEmbedding, SamPromptDecoder, load_sam, upsample_logits
from .vocabulary import Vocabulary, load_vocabulary

log = logging.getLogger(__name__)

# Large vocabularies are scanned in float16 (half the memory traffic per click), then the best
# RESCORE candidates are scored again in float32, so the top-k and their scores are exact.
HALF_SCAN_MIN_CLASSES = 2048
RESCORE = 32

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


@dataclass(frozen=True)
class LabelScore:
    """One label suggestion: ``name`` of the vocabulary, its ``category_id``, ``score`` in [0, 1]
    (softmax over the whole vocabulary of CLIP cosine similarities × 100)."""

    name: str
    category_id: int
    score: float


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
    """A decoded prompt.

    Attributes:
        mask: (H, W) bool at the original resolution, the chosen candidate.
        predicted_iou: SAM's predicted IoU of ``mask``.
        low_res_logits: (1, 256, 256) float32 logits of ``mask`` (for ``mask_input``).
        candidates: all decoded candidates (K = 3 with multimask output, else 1).
        chosen: index of ``mask`` in ``candidates`` (highest predicted IoU).
        labels: top-k label suggestions, best first; empty without CLIP.
    """

    mask: np.ndarray
    predicted_iou: float
    low_res_logits: np.ndarray
    candidates: DecodedMasks
    chosen: int
    labels: list[LabelScore] = field(default_factory=list)

    @property
    def area(self) -> int:
        """Mask pixel count."""
        return int(self.mask.sum())


@dataclass
class _ImageState:
    sam: SamImageEmbedding
    clip_dense: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        dense = 0 if self.clip_dense is None else self.clip_dense.numel() * self.clip_dense.element_size()
        return self.sam.nbytes + dense


def image_key(image: np.ndarray) -> str:
    """Content hash of an image array (shape + pixels), the cache key of :class:`Engine`."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


class Engine:
    """Interactive OV-SAM: ``set_image`` once, ``predict`` per click.

    Args:
        sam_model: a loaded SAM (see :func:`annotator.sam.load_sam`).
        classifier: CLIP region classifier, or ``None`` (masks only).
        vocabulary: class names for suggestions (needed with a classifier).
        topk: number of suggestions per mask.
        cache_bytes: memory bound of the per-image cache (embeddings of recent images).
        templates: prompt templates for the text embeddings.
        labels_unavailable: why there is no classifier, shown to the user.
        text_embeddings: (K, D) unit-norm class embeddings to use instead of encoding the
            vocabulary with the classifier (e.g. precomputed elsewhere).
    Raises:
        ValueError: a classifier without a vocabulary, or embeddings of the wrong length.
    """

    def __init__(
        self,
        sam_model: torch.nn.Module,
        classifier: ClipRegionClassifier | None = None,
        vocabulary: Vocabulary | None = None,
        topk: int = 5,
        cache_bytes: int = 1 << 30,
        templates: tuple[str, ...] = DEFAULT_TEMPLATES,
        labels_unavailable: str | None = None,
        text_embeddings: torch.Tensor | None = None,
    ):
        self.decoder = SamPromptDecoder(sam_model)
        self.classifier = classifier
        self.vocabulary = vocabulary
        self.topk = topk
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _ImageState] = OrderedDict()
        self._cache_lock = threading.Lock()  # guards _cache and _pending, never held while computing
        self._pending: dict[str, threading.Event] = {}  # embeddings being computed, by image key
        self._keys: dict[int, tuple[weakref.ref, str]] = {}  # id of a read-only array -> its content key
        self._current: _ImageState | None = None
        self._current_image: np.ndarray | None = None
        self.text_embeddings: torch.Tensor | None = None
        self._text_half: torch.Tensor | None = None
        self.labels_unavailable = labels_unavailable
        if classifier is not None:
            if vocabulary is None:
                raise ValueError("a classifier needs a vocabulary")
            if text_embeddings is None:
                text_embeddings = classifier.class_embeddings(vocabulary, templates)
            if len(text_embeddings) != len(vocabulary):
                raise ValueError(f"{len(text_embeddings)} text embeddings for {len(vocabulary)} classes")
            self.text_embeddings = text_embeddings.to(classifier.device).float().contiguous()
            if len(vocabulary) > HALF_SCAN_MIN_CLASSES:
                self._text_half = self.text_embeddings.half()
            if classifier.random_weights:
                self.labels_unavailable = "CLIP has random weights (test mode): suggestions are meaningless"
        elif self.labels_unavailable is None:
            self.labels_unavailable = "no CLIP model loaded"

    @property
    def device(self) -> torch.device:
        """Device the models and cached embeddings live on."""
        return self.decoder.device

    @property
    def has_labels(self) -> bool:
        """Whether ``predict`` returns label suggestions."""
        return self.text_embeddings is not None

    def set_image(self, image: np.ndarray) -> str:
        """Make ``image`` current, computing its embeddings unless cached.

        If another thread is computing the same image's embeddings (a :meth:`prefetch`), this
        waits for that result instead of computing it twice.

        Args:
            image: (H, W, 3) uint8 RGB.
        Returns:
            The image's content key.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        key, state = self._embedded(image, keep_current=False)
        self._current = state
        self._current_image = image
        return key

    def prefetch(self, image: np.ndarray) -> str:
        """Compute and cache ``image``'s embeddings without making it current (for a background
        thread: the image the user will open next). The cache bound holds as for
        :meth:`set_image`, and the current image is never the one evicted for it.

        Thread safety: may run beside :meth:`set_image` / :meth:`predict` of another thread;
        the cache is locked only to look up and to insert, never while computing.

        Returns:
            The image's content key.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        return self._embedded(image, keep_current=True)[0]

    def is_cached(self, image: np.ndarray) -> bool:
        """Whether ``image``'s embeddings are held (``set_image`` would cost a hash only)."""
        key = self._key_of(image)
        with self._cache_lock:
            return key in self._cache

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

    def _embedded(self, image: np.ndarray, keep_current: bool) -> tuple[str, _ImageState]:
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
                dense = None
                if self.classifier is not None and self.classifier.mode == "dense":
                    dense = self.classifier.dense_features(image)
                state = _ImageState(self.decoder.encode(image), dense)
                with self._cache_lock:
                    self._cache[key] = state
                    self._evict(keep_current)
            finally:
                with self._cache_lock:
                    self._pending.pop(key).set()
            return key, state

    def _evict(self, keep_current: bool) -> None:
        """Drop least recently used embeddings beyond ``cache_bytes`` (caller holds the lock);
        the newest entry is kept, and the current image's with ``keep_current``."""
        total = sum(s.nbytes for s in self._cache.values())
        for key in list(self._cache)[:-1]:
            if total <= self.cache_bytes:
                break
            if keep_current and self._cache[key] is self._current:
                continue
            total -= self._cache.pop(key).nbytes

    @property
    def current_size(self) -> tuple[int, int]:
        """(H, W) of the current image in pixels.

        Raises:
            RuntimeError: ``set_image`` was not called.
        """
        if self._current is None:
            raise RuntimeError("call set_image first")
        return self._current.sam.original_size

    @property
    def cached_images(self) -> int:
        """How many images' embeddings are held."""
        with self._cache_lock:
            return len(self._cache)

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool | None = None,
    ) -> PromptResult:
        """Decode a prompt on the current image into a mask and label suggestions.

        Args:
            point_coords: (N, 2) float (X, Y) pixels of the original image.
            point_labels: (N,) int, 1 = positive, 0 = negative.
            box: (4,) float XYXY pixels of the original image.
            mask_input: (1, 256, 256) low-res logits of an earlier result, to refine it.
            multimask_output: ``None`` = SAM's advice: three candidates for a lone point
                (ambiguous), one otherwise; the candidate with the best predicted IoU is chosen.
        Returns:
            :class:`PromptResult`.
        Raises:
            RuntimeError: ``set_image`` was not called.
            ValueError: no prompt, mismatched points, or a point / box outside the image.
        """
        state = self._current
        if state is None:
            raise RuntimeError("call set_image before predict")
        h, w = state.sam.original_size
        if point_coords is not None:
            pc = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
            if ((pc < 0) | (pc[:, :1] > w) | (pc[:, 1:] > h)).any():
                raise ValueError(f"point outside the {w}x{h} image")
        if box is not None:
            box = clip_box(box, w, h)
        if multimask_output is None:
            n_points = 0 if point_coords is None else len(np.asarray(point_coords).reshape(-1, 2))
            multimask_output = box is None and mask_input is None and n_points == 1
        decoded = self.decoder.decode(state.sam, point_coords, point_labels, box, mask_input, multimask_output)
        chosen = int(decoded.iou_predictions.argmax())
        logits = decoded.low_res_logits[chosen]
        mask = upsample_logits(logits, state.sam.input_size, state.sam.original_size)
        labels = self._labels_from_low_res(state, logits, mask) if self.has_labels else []
        return PromptResult(mask, float(decoded.iou_predictions[chosen]), logits[None], decoded, chosen, labels)

    def predict_boxes(self, boxes: np.ndarray, with_labels: bool = True) -> list[PromptResult]:
        """Decode many box prompts on the current image in batched decoder passes (one mask
        each, as :meth:`predict` gives for a lone box); for bulk work, where a GPU pays off.

        Args:
            boxes: (B, 4) float XYXY pixels of the original image.
            with_labels: compute label suggestions (skip them when labels are given).
        Returns:
            One :class:`PromptResult` per box, in order.
        Raises:
            RuntimeError: ``set_image`` was not called.
            ValueError: a box lies outside the image (check first with :func:`clip_box`).
        """
        state = self._current
        if state is None:
            raise RuntimeError("call set_image before predict_boxes")
        h, w = state.sam.original_size
        b = (
            np.stack([clip_box(x, w, h) for x in np.asarray(boxes, dtype=np.float64).reshape(-1, 4)])
            if len(boxes)
            else np.zeros((0, 4))
        )
        decoded = self.decoder.decode_boxes(state.sam, b)
        results = []
        for i, logits in enumerate(decoded.low_res_logits):
            mask = upsample_logits(logits, state.sam.input_size, state.sam.original_size)
            labels = self._labels_from_low_res(state, logits, mask) if with_labels and self.has_labels else []
            one = DecodedMasks(logits[None], decoded.iou_predictions[i : i + 1])
            results.append(PromptResult(mask, float(decoded.iou_predictions[i]), logits[None], one, 0, labels))
        return results

    def _rank(self, embedding: torch.Tensor) -> list[LabelScore]:
        """(1, D) unit-norm region embedding → top-k suggestions."""
        if float(embedding.norm()) == 0:
            return []
        e = embedding[0].float()
        k = min(self.topk, len(self.text_embeddings))
        if self._text_half is None:
            sims = torch.mv(self.text_embeddings, e) * 100.0
            log_z = torch.logsumexp(sims, dim=0)
            top = torch.topk(sims, k)
            values, indices = top.values, top.indices
        else:
            sims = torch.mv(self._text_half, e.half()).float() * 100.0
            cand = torch.topk(sims, min(RESCORE, len(sims))).indices
            exact = torch.mv(self.text_embeddings[cand], e) * 100.0
            sims[cand] = exact  # the terms that dominate the normaliser are now exact
            log_z = torch.logsumexp(sims, dim=0)
            order = torch.topk(exact, k)
            values, indices = order.values, cand[order.indices]
        probs = torch.exp(values - log_z)
        vocab = self.vocabulary
        return [
            LabelScore(vocab.names[i], vocab.ids[i], float(p))
            for p, i in zip(probs.tolist(), indices.tolist(), strict=True)
        ]

    def _labels_from_low_res(self, state: _ImageState, logits: np.ndarray, mask: np.ndarray) -> list[LabelScore]:
        if state.clip_dense is None:  # crop mode needs the full-resolution mask
            return self._labels_from_mask(state, mask)
        hv, wv = state.sam.valid_low_res
        coverage = (logits[:hv, :wv] > 0).astype(np.float32)
        return self._rank(self._pool(state, coverage))

    def _pool(self, state: _ImageState, coverage: np.ndarray) -> torch.Tensor:
        """Mask coverage at any resolution over the image → pooled region embedding (1, D)."""
        hf, wf = state.clip_dense.shape[1:]
        weights = cv2.resize(coverage, (wf, hf), interpolation=cv2.INTER_AREA)
        return self.classifier.mask_embeddings(state.clip_dense, weights[None])

    def _labels_from_mask(self, state: _ImageState, mask: np.ndarray) -> list[LabelScore]:
        if not mask.any():
            return []
        if state.clip_dense is None:
            return self._rank(self.classifier.crop_embedding(self._current_image, mask))
        return self._rank(self._pool(state, mask.astype(np.float32)))

    def segment_everything(self, config: PatchConfig | None = None, progress=None) -> Patches:
        """Automatic SAM patches of the current image (see :mod:`annotator.everything.patches`).

        Args:
            config: grid and thresholds; ``None`` = a 32×32 grid on CUDA, 16×16 on a CPU.
            progress: optional callable taking the fraction done.
        Raises:
            RuntimeError: ``set_image`` was not called.
        """
        if self._current is None:
            raise RuntimeError("call set_image before segment_everything")
        return generate_patches(self.decoder, self._current.sam, config or self.default_patch_config(), progress)

    def default_patch_config(self) -> PatchConfig:
        """SAM's 32×32 grid on CUDA; 16×16 on a CPU (a quarter of the prompts: ~8 s per COCO
        photo on 2 cores, AR@100 29.1 vs 30.9 at 32×32, see benchmarks/everything.py); holes and
        islands under 100 px removed."""
        return PatchConfig(points_per_side=32 if self.device.type == "cuda" else 16, min_mask_region_area=100)

    def everything(self, config: EverythingConfig | None = None, progress=None) -> EverythingResult:
        """Segment and label the whole current image (see :mod:`annotator.everything`).

        Args:
            config: method (``samcp``, ``possam``, ``patches``) and thresholds; ``None`` = SAM-CP
                with the device's default grid.
            progress: optional callable taking the fraction done.
        Returns:
            :class:`~annotator.everything.pipeline.EverythingResult`; its ``note`` says why the
            instances are unlabelled or their labels meaningless.
        Raises:
            RuntimeError: ``set_image`` was not called.
        """
        if self._current is None:
            raise RuntimeError("call set_image before everything")
        config = config or EverythingConfig()
        if config.patches is None:
            config = replace(config, patches=self.default_patch_config())
        return run_everything(
            self._current_image,
            self.decoder,
            self._current.sam,
            config,
            classifier=self.classifier if self.has_labels else None,
            clip_dense=self._current.clip_dense,
            text_embeddings=self.text_embeddings,
            vocabulary=self.vocabulary,
            note=self.labels_unavailable,
            progress=progress,
        )

    def suggest_labels(self, mask: np.ndarray) -> list[LabelScore]:
        """Top-k labels for any (H, W) bool mask of the current image (e.g. an edited one).

        Raises:
            RuntimeError: ``set_image`` was not called.
        """
        if self._current is None:
            raise RuntimeError("call set_image before suggest_labels")
        return self._labels_from_mask(self._current, mask) if self.has_labels else []


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
    """

    sam: str = "vit_t"
    sam_checkpoint: str | None = None
    clip_model: str = "auto"
    clip_pretrained: str | None = None
    vocab: str = "imagenet21k"
    device: str = "auto"
    label_mode: str = "dense"
    cache_mb: int = 1024


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
    ``Engine.labels_unavailable`` says why (also logged once).

    Raises:
        annotator.checkpoints.CheckpointError: SAM weights cannot be had.
        annotator.vocabulary.VocabularyError: bad vocabulary.
        ValueError: bad device or model name.
    """
    device = resolve_device(config.device)
    vocabulary = load_vocabulary(config.vocab)  # cheap checks first
    sam_model = load_sam(config.sam, config.sam_checkpoint, device)
    spec = clip_spec_for(config, device)
    classifier, reason = None, None
    if spec is None:
        reason = "CLIP is switched off (--clip none)"
    else:
        try:
            classifier = ClipRegionClassifier(spec, device, mode=config.label_mode)
        except ClipUnavailable as exc:
            reason = str(exc)
    if reason:
        log.warning("label suggestions are off: %s", reason)
    return Engine(
        sam_model,
        classifier,
        vocabulary,
        cache_bytes=config.cache_mb << 20,
        labels_unavailable=reason,
    )


def engine_summary(engine: Engine) -> str:
    """One line describing the loaded engine, for logs and the UI."""
    parts = [f"device {engine.device}"]
    if engine.classifier is not None:
        parts.append(f"CLIP {engine.classifier.spec.model}/{engine.classifier.spec.pretrained or 'random'}")
    if engine.vocabulary is not None:
        parts.append(f"vocabulary {engine.vocabulary.name} ({len(engine.vocabulary)} classes)")
    return ", ".join(parts)


__all__ = [
    "Engine",
    "EngineConfig",
    "LabelScore",
    "PromptResult",
    "build_engine",
    "engine_summary",
    "resolve_device",
]
