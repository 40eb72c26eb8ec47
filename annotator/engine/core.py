"""The engine: the predictor facade over SAM, CLIP and the vocabulary.

``embed`` runs SAM's image encoder and CLIP's dense pass once per image and keeps both
(:mod:`annotator.engine.embeddings`: LRU by image digest, bounded memory) on the model's device;
it returns an :class:`~annotator.engine.embeddings.ImageEmbedding` handle that the caller passes
to every later call (``predict``, ``predict_boxes``, ``everything``), so the engine keeps no
"current image": whoever holds the handle (a page tab, a bulk worker) says which image a prompt
is for. ``predict`` decodes a point / box prompt into a mask at the original resolution and
ranks the vocabulary for it (the OV-SAM feature-crop baseline, :mod:`annotator.labelling`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from ..classifier import LabelScore, RegionClassifier
from ..clip_regions import DEFAULT_TEMPLATES, ClipRegionEncoder
from ..everything.patches import PatchConfig, generate_patches
from ..everything.pipeline import EverythingConfig, EverythingResult, run_everything
from ..instances import UNLABELLED, Instances, Source
from ..labelling import RegionLabeller, TextQueries
from ..sam import DecodedMasks, SamImageEmbedding, SamPromptDecoder
from ..sam_frame import resample_logits, upsample_logits
from ..text_prompts import LabelsUnavailable, TextQueryClassifier
from ..vocabulary import Vocabulary
from .embeddings import EmbeddingCache, ImageEmbedding
from .prompts import CANDIDATE_MARGIN, PromptResult, choose_candidate, clip_box

log = logging.getLogger(__name__)


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
        self.topk = topk
        self.embeddings = EmbeddingCache(cache_bytes)
        self.classifier: RegionClassifier | None = None
        self.labeller: RegionLabeller | None = None
        self._queries: TextQueries | None = None
        self.labels_unavailable = labels_unavailable
        self.notes: list[str] = [*self.decoder.notes, *(clip.notes if clip is not None else [])]
        if clip is not None:
            if vocabulary is None:
                raise ValueError("a CLIP needs a vocabulary")
            if text_embeddings is None:
                text_embeddings = clip.class_embeddings(vocabulary, templates)
            self.classifier = RegionClassifier(text_embeddings.to(clip.device), vocabulary)
            self.labeller = RegionLabeller(clip, self.classifier, topk)
            self._queries = TextQueries(clip, self.classifier, vocabulary, templates)
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
    @property
    def cache_bytes(self) -> int:
        """Memory bound of the per-image embedding cache, in bytes."""
        return self.embeddings.max_bytes

    def embed(self, image: np.ndarray, defer_labels: bool = False) -> ImageEmbedding:
        """The image's embeddings, computed unless cached.

        If another thread is computing the same image's embeddings (a :meth:`prefetch`), this
        waits for that result instead of computing it twice.

        Args:
            image: (H, W, 3) uint8 RGB. A read-only array is hashed once (its digest is
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
        digest, state = self._embedded(image, keep_in_use=False, defer_labels=defer_labels)
        self.embeddings.in_use = digest
        return ImageEmbedding(digest, image, state.sam, state.clip_dense)

    def prefetch(self, image: np.ndarray) -> str:
        """Compute and cache ``image``'s embeddings for later (for a background thread: the
        image the user will open next). The cache bound holds as for :meth:`embed`, and the
        image last embedded is never the one evicted for it.

        Thread safety: may run beside :meth:`embed` / :meth:`predict` of another thread;
        the cache is locked only to look up and to insert, never while computing.

        Returns:
            The image's digest.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        return self._embedded(image, keep_in_use=True)[0]

    def is_cached(self, image: np.ndarray) -> bool:
        """Whether ``image``'s embeddings are held (``embed`` would cost a hash at most)."""
        return self.embeddings.is_cached(image)

    @property
    def cached_images(self) -> int:
        """How many images' embeddings are held."""
        return len(self.embeddings)

    def clear_cache(self) -> None:
        """Drop every cached embedding (benchmarks time the encoders this way)."""
        self.embeddings.clear()

    def _embedded(self, image: np.ndarray, keep_in_use: bool, defer_labels: bool = False):
        dense_mode = self.clip is not None and self.clip.mode == "dense"
        return self.embeddings.embedded(
            image, self.decoder.encode, self.clip.dense_features if dense_mode else None, defer_labels, keep_in_use
        )

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
        return self._result(emb, logits, iou, decoded, chosen, wait_for_labels)

    def _result(
        self,
        emb: ImageEmbedding,
        logits: np.ndarray,
        iou: float,
        decoded: DecodedMasks,
        chosen: int,
        wait_for_labels: bool,
    ) -> PromptResult:
        """A :class:`PromptResult` of (256, 256) low-res ``logits``: the mask at the image's
        resolution, and its labels (now, or pending while the CLIP pass runs)."""
        mask = upsample_logits(logits, emb.sam.input_size, emb.sam.original_size)
        result = PromptResult(mask, iou, logits[None], decoded, chosen)
        if self.has_labels:
            if wait_for_labels or emb.labels_ready:
                result.labels = self._labels_from_low_res(emb, logits, mask)
            else:
                result.labels_pending = True
        return result

    def next_candidate(
        self,
        emb: ImageEmbedding,
        result: PromptResult,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        wait_for_labels: bool = True,
    ) -> PromptResult:
        """SAM's next candidate mask for the prompt that gave ``result`` (segment-anything's
        ``multimask_output``: three masks, subpart / part / whole for a lone click).

        Where ``result`` came from one mask (a box, several points, a refined mask) the prompt
        is decoded once more with multimask output (no ``mask_input``, as SAM gives its
        candidates) and the candidate after the one :func:`choose_candidate` picks comes first;
        otherwise the candidate after ``result.chosen``, cycling. A candidate is SAM's raw
        mask: no refinement passes.

        Args:
            emb: the image, from :meth:`embed`; ``result``: the current mask.
            point_coords, point_labels, box: ``result``'s prompt, as for :meth:`predict`.
        Returns:
            :class:`PromptResult` with ``candidates`` (K = 3) and ``chosen`` its index.
        """
        decoded, current = result.candidates, result.chosen
        if len(decoded.iou_predictions) < 2:
            if box is not None:
                box = clip_box(box, emb.size[1], emb.size[0])
            decoded = self.decoder.decode(emb.sam, point_coords, point_labels, box, None, True)
            current = choose_candidate(decoded, self.candidate_margin)
        k = (current + 1) % len(decoded.iou_predictions)
        logits, iou = decoded.low_res_logits[k], float(decoded.iou_predictions[k])
        return self._result(emb, logits, iou, decoded, k, wait_for_labels)

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
        return self.labeller.from_low_res(logits, emb.sam.valid_low_res, emb.clip_dense, emb.image, mask)

    def suggest_labels(self, emb: ImageEmbedding, mask: np.ndarray) -> list[LabelScore]:
        """Top-k labels for any (H, W) bool mask of an image (e.g. an edited one); empty
        without CLIP or for an empty mask."""
        return self.labeller.from_mask(emb.clip_dense, emb.image, mask) if self.has_labels else []

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
        state = self.embeddings.get(emb.digest)
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
        self.embeddings.set_segmented(emb.digest, result.segmented)
        return result

    def is_segmented(self, emb: ImageEmbedding, config: EverythingConfig | None = None) -> bool:
        """Whether the engine holds the image's patches for ``config``'s patch settings (an
        everything pass or a find-all on it skips SAM)."""
        patches = (config.patches if config else None) or self.default_patch_config()
        state = self.embeddings.get(emb.digest)
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
        return self._queries.query(list(classes), threshold)

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


__all__ = ["Engine"]
