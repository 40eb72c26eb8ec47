"""SAM models and a per-click prompt decoder that does only the work a click needs.

Models come from ``segment-anything`` (``vit_b``, ``vit_l``, ``vit_h``) and from
``mobilesam-mirror`` (``vit_t``, MobileSAM); both share SAM's prompt encoder and mask decoder.

:class:`SamPromptDecoder` follows ``segment_anything.SamPredictor`` (Kirillov et al., 2023):
``encode`` once per image, ``decode`` many times.  It returns the same masks, faster:

- the first two-way-transformer block's image-side projections (token→image keys/values and
  image→token queries) and ``image_embedding + no_mask_embed`` depend only on the image, so
  they are computed once in :meth:`SamPromptDecoder.encode` instead of on every click;
- the mask upscaler (2×2/stride-2 transposed convolutions, per-pixel LayerNorm, GELU) runs on
  the unpadded part of the embedding only, which is exact because the kernels do not overlap;
- masks are upsampled once, straight from low-res logits to the original resolution, and only
  the ones asked for.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backends import compile_module, plan_precisions
from .checkpoints import ensure_checkpoint
from .sam_blocks import heads, image_to_token, merge_heads, self_attention, token_to_image, two_way_block
from .sam_frame import LOW_RES, ResizeLongestSide, padded, valid_cells, valid_low_res

# model type -> (module, builder function); both packages expose the same Sam class layout.
SAM_BUILDERS: dict[str, tuple[str, str]] = {
    "vit_t": ("mobile_sam", "build_sam_vit_t"),
    "vit_b": ("segment_anything", "build_sam_vit_b"),
    "vit_l": ("segment_anything", "build_sam_vit_l"),
    "vit_h": ("segment_anything", "build_sam_vit_h"),
}

AUTO_BF16_DECODER = True
"""Whether ``--precision auto`` may run the batched prompt decoder graph (everything mode, find
all, bulk boxes) in bf16 (OpenVINO, AMX or AVX-512 BF16). Measured through the graph on the 804
non-empty ``coco_tiny_val`` instances (image encoder in bf16 for both; docs/benchmarks.md, "Masks, bf16 against f32"):
box mIoU 74.55 in bf16 and in f32, one-click mIoU 54.27 vs 54.19, within the 0.3 points allowed;
4 prompts decode in 42 ms instead of 62 ms (f32) and 81 ms (torch)."""
AUTO_BF16 = True
"""Whether ``--precision auto`` may run SAM's image encoder in bf16 (OpenVINO, on a CPU with AMX or
AVX-512 BF16). Measured on the 815 ``coco_tiny_val`` instances (MobileSAM, OpenVINO 2026.4 on an
Intel Xeon with AMX; docs/benchmarks.md, "Masks, bf16 against f32"): bf16 against f32, box mIoU 73.75 vs 73.80, one-click
mIoU 53.67 vs 53.77, within the 0.3 points allowed, for an encoder 2.4x faster (0.16 vs 0.38 s)."""


class _ChannelsLastUpscaler:
    """SAM's ``output_upscaling`` + hypernetwork product, evaluated channels-last.

    ``ConvTranspose2d(k=2, s=2)`` is a matmul per input pixel (no overlap), so with the
    weights reordered once the whole upscaler runs on the decoder's token layout without
    transposing the big tensors; only the final (K, 4h, 4w) logits are put in pixel order.
    Same arithmetic as ``MaskDecoder.predict_masks``.
    """

    def __init__(self, w1, b1, ln_w, ln_b, ln_eps, act1, w2, b2, act2):
        self.w1, self.b1, self.ln_w, self.ln_b, self.ln_eps = w1, b1, ln_w, ln_b, ln_eps
        self.act1, self.w2, self.b2, self.act2 = act1, w2, b2, act2

    @classmethod
    def from_sequential(cls, seq: torch.nn.Sequential) -> _ChannelsLastUpscaler:
        ct1, ln, act1, ct2, act2 = seq
        for ct in (ct1, ct2):
            if tuple(ct.kernel_size) != (2, 2) or tuple(ct.stride) != (2, 2):
                raise ValueError("expected SAM's 2x2 stride-2 transposed convolutions")

        def reorder(ct):  # (Cin, Cout, 2, 2) -> (Cin, 4 * Cout) with columns [di, dj, cout]
            w = ct.weight.detach()
            return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1).contiguous(), ct.bias.detach()

        w1, b1 = reorder(ct1)
        w2, b2 = reorder(ct2)
        return cls(w1, b1.repeat(4), ln.weight.detach(), ln.bias.detach(), ln.eps, act1, w2, b2.repeat(4), act2)

    def __call__(self, tokens: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """tokens: (B, h, w, C) decoder image tokens; hyper: (B, K, C2) → (B, K, 4h, 4w) logits."""
        b, h, w, c = tokens.shape
        c1 = self.ln_w.shape[0]
        x = torch.addmm(self.b1, tokens.reshape(-1, c), self.w1).reshape(-1, c1)  # (B*h*w*4, C1)
        x = self.act1(F.layer_norm(x, (c1,), self.ln_w, self.ln_b, self.ln_eps))
        x = self.act2(torch.addmm(self.b2, x, self.w2)).reshape(b, -1, hyper.shape[2])  # (B, h*w*16, C2)
        logits = x @ hyper.transpose(1, 2)  # (B, h*w*16, K) in order [i, j, di, dj, ei, ej]
        k = hyper.shape[1]
        logits = logits.reshape(b, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return logits.reshape(b, k, 4 * h, 4 * w)


def load_sam(model_type: str = "vit_t", checkpoint: str | Path | None = None, device: str = "cpu") -> torch.nn.Module:
    """Build a SAM model and load its weights.

    Args:
        model_type: a key of :data:`SAM_BUILDERS`.
        checkpoint: weights file; ``None`` fetches the registry's verified file.
        device: torch device string.
    Returns:
        The ``Sam`` module in eval mode on ``device``.
    Raises:
        ValueError: unknown ``model_type`` or weights that do not fit the model.
        annotator.checkpoints.CheckpointError: the weights could not be downloaded.
    """
    if model_type not in SAM_BUILDERS:
        raise ValueError(f"unknown SAM model {model_type!r}; choose from {', '.join(SAM_BUILDERS)}")
    module_name, fn_name = SAM_BUILDERS[model_type]
    with warnings.catch_warnings():
        # mobile_sam imports timm's deprecated paths and re-registers TinyViT names: warnings about
        # that package, not about anything the user can change, printed on every start.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"timm\.")
        warnings.filterwarnings("ignore", message=r"Overwriting tiny_vit_", category=UserWarning)
        builder = getattr(importlib.import_module(module_name), fn_name)
    path = Path(checkpoint) if checkpoint else ensure_checkpoint(model_type)
    model = builder(checkpoint=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold {model_type} weights: {str(exc)[:300]}") from exc
    return model.to(device).eval()


@dataclass
class SamImageEmbedding:
    """Everything the decoder needs about one image, computed once by ``encode``.

    Attributes:
        original_size: (H, W) of the image in pixels.
        input_size: (h, w) after resizing the longest side to 1024 (before padding).
        image_embedding: (1, 256, 64, 64) float32, SAM's image embedding.
        keys: (1, 4096, 256) ``image_embedding + no_mask_embed`` as tokens.
        t2i_k, t2i_v: (1, heads, 4096, c) first block's token→image keys and values.
        i2t_q: (1, heads, 4096, c) first block's image→token queries.
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    image_embedding: torch.Tensor
    keys: torch.Tensor
    t2i_k: torch.Tensor
    t2i_v: torch.Tensor
    i2t_q: torch.Tensor

    @property
    def nbytes(self) -> int:
        """Memory held by the tensors, in bytes."""
        ts = (self.image_embedding, self.keys, self.t2i_k, self.t2i_v, self.i2t_q)
        return sum(t.numel() * t.element_size() for t in ts)

    @property
    def valid_cells(self) -> tuple[int, int]:
        """(rows, cols) of the 64x64 embedding grid that cover the image (the rest is padding)."""
        return valid_cells(self.input_size)

    @property
    def valid_low_res(self) -> tuple[int, int]:
        """(rows, cols) of the 256x256 low-res grid that cover the image (the rest is padding)."""
        return valid_low_res(self.input_size)


@dataclass
class DecodedMasks:
    """Output of one prompt decode.

    Attributes:
        low_res_logits: (K, 256, 256) float32 mask logits over the padded 1024 input frame
            (SAM's ``mask_input`` format); padding cells hold ``PAD_LOGIT``.
        iou_predictions: (K,) float32, SAM's predicted IoU per mask.
    """

    low_res_logits: np.ndarray
    iou_predictions: np.ndarray


class _PromptDecoderGraph(torch.nn.Module):
    """:class:`SamPromptDecoder`'s batched decode without a mask input, as one module to export
    for a CPU runtime: the same arithmetic (cached first block, reassociated attentions,
    channels-last upscaler), all four mask tokens.

    Inputs: sparse prompt tokens (B, T, C); the image's cached terms ``keys`` (1, N, C),
    ``t2i_k``, ``t2i_v``, ``i2t_q`` (1, heads, N, c) (:class:`SamImageEmbedding`); ``valid``
    (hv, wv), whose shape alone says how many embedding cells cover the image. Outputs:
    predicted IoU (B, 4) and low-res logits (B, 4, 4hv, 4wv) of the unpadded region.
    """

    def __init__(self, decoder: SamPromptDecoder):
        super().__init__()
        self.prompt_encoder = decoder.model.prompt_encoder  # registered: the graph's cache key hashes them
        self.mask_decoder = decoder.model.mask_decoder
        self._decoder = (decoder,)  # not a submodule

    def forward(self, sparse, keys, t2i_k, t2i_v, i2t_q, valid):
        decoder = self._decoder[0]
        # only the cached terms are read on this path (no mask input): image_embedding is unused
        emb = SamImageEmbedding((0, 0), (0, 0), keys, keys, t2i_k, t2i_v, i2t_q)
        hs, out_keys = decoder._run_transformer(emb, sparse, None)
        iou = self.mask_decoder.iou_prediction_head(hs[:, 0])
        logits = decoder._upscaled(
            hs, out_keys, list(range(self.mask_decoder.num_mask_tokens)), valid.shape[0], valid.shape[1]
        )
        return iou, logits


class SamPromptDecoder:
    """Point/box prompts to masks for one SAM model (see module doc for what is cached).

    Coordinates are pixels of the original image, (X, Y); boxes are XYXY.

    Args:
        model: a loaded SAM (:func:`load_sam`).
        backend: where the image encoder and the prompt decoder run: ``torch``, or a CPU
            runtime (``openvino``, ``onnxruntime``) through graphs exported from ``model``'s
            weights and checked against torch (:func:`annotator.backends.compile_module`). On a
            runtime, prompts without a ``mask_input`` go through the decoder graph (one click:
            21.2 vs 23.4 ms p50 in torch, bf16, 2 cores with AMX); refining prompts, which
            feed the last mask back, are decoded in torch.
        threads: the CPU runtime's threads (``None`` = all cores).
        precision: the image encoder's inference precision on the CPU runtime, one of
            :data:`annotator.backends.PRECISIONS`: ``auto`` (bf16 where the CPU has AMX or
            AVX-512 BF16 and :data:`AUTO_BF16`, else f32; f32 if bf16's check fails), ``f32``,
            ``bf16``, or ``int8`` (OpenVINO; NNCF post-training quantization calibrated on
            scikit-image's bundled sample photos, see :func:`annotator.backends.quantize_int8`:
            faster, slightly worse masks). torch runs f32.
    Attributes:
        precision: the precision the image encoder runs in (``f32``, ``bf16``, ``int8``).
        notes: what ran instead of what was asked for (a failed bf16 check), one sentence each.
    Raises:
        annotator.backends.BackendError: the image encoder cannot run on ``backend`` at
            ``precision``.
        ValueError: a precision that cannot run on ``backend`` or this CPU.
    """

    def __init__(
        self, model: torch.nn.Module, backend: str = "torch", threads: int | None = None, precision: str = "auto"
    ):
        self.model = model
        self.device = next(model.parameters()).device
        self.backend = backend
        size = model.image_encoder.img_size
        self.transform = ResizeLongestSide(size)
        self._encoder_graph = None
        plan = plan_precisions(precision, backend, AUTO_BF16, quantizable=True)
        self.precision, self.notes = plan[0], []
        if backend != "torch":
            self._encoder_graph = compile_module(
                model.image_encoder,
                torch.zeros(1, 3, size, size),
                f"sam-{type(model.image_encoder).__name__}",
                backend,
                threads,
                precisions=plan,
                int8_calibration=self._calibration_inputs if "int8" in plan else None,
            )
            self.precision, self.notes = self._encoder_graph.precision, self._encoder_graph.notes
        with torch.inference_mode():
            pe = model.prompt_encoder.get_dense_pe()  # (1, 256, 64, 64), constant per model
            self._key_pe = pe.flatten(2).permute(0, 2, 1).contiguous()
            self._no_mask = model.prompt_encoder.no_mask_embed.weight.reshape(1, 1, -1)
        self._upscaler = _ChannelsLastUpscaler.from_sequential(model.mask_decoder.output_upscaling)
        self._decoder_graph = None
        self.decoder_precision = "f32"
        if backend != "torch":
            self._decoder_graph = compile_module(
                _PromptDecoderGraph(self),
                self._decoder_example(),
                f"sam-{type(model.image_encoder).__name__}-prompt-decoder",
                backend,
                threads,
                dynamic_axes={
                    "input0": {0: "prompts", 1: "tokens"},
                    "input5": {0: "rows", 1: "cols"},
                    "output0": {0: "prompts"},
                    "output1": {0: "prompts", 2: "height", 3: "width"},
                },
                precisions=plan_precisions(precision, backend, AUTO_BF16_DECODER),
                check_inputs=self._decoder_check_inputs,
                outputs=2,
            )
            self.decoder_precision = self._decoder_graph.precision
            self.notes += self._decoder_graph.notes

    def _graph_decode(self, emb: SamImageEmbedding, sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts (sparse tokens (B, T, C)) through the runtime's decoder graph: predicted IoU
        (B, 4) and low-res logits (B, 4, 4hv, 4wv) of all four mask tokens, float32 CPU tensors."""
        iou, logits = self._decoder_graph(
            sparse.numpy(),
            emb.keys.numpy(),
            emb.t2i_k.numpy(),
            emb.t2i_v.numpy(),
            emb.i2t_q.numpy(),
            np.zeros(emb.valid_cells),
        )
        return torch.from_numpy(iou), torch.from_numpy(logits)

    @torch.no_grad()
    def _decoder_example(self) -> tuple[torch.Tensor, ...]:
        """Inputs of the decoder graph's shapes (4 prompts of 2 tokens, a 3:4 image), for export."""
        n, c = self._key_pe.shape[1:]
        layer = self.model.mask_decoder.transformer.layers[0]
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        z = torch.zeros(1, n, c)
        k, v, q = (
            heads(t2i.k_proj(z), t2i.num_heads),
            heads(t2i.v_proj(z), t2i.num_heads),
            heads(i2t.q_proj(z), i2t.num_heads),
        )
        return torch.zeros(4, 2, c), z, k, v, q, torch.zeros(48, 64)

    def _decoder_check_inputs(self) -> list[np.ndarray]:
        """The decoder graph's check: four point prompts on scikit-image's first sample photo."""
        from .images import sample_photos

        image = sample_photos()[0]
        emb = self.encode(image)
        h, w = image.shape[:2]
        points = np.array([[w / 2, h / 2], [w / 4, h / 3], [3 * w / 4, h / 2], [w / 3, 3 * h / 4]])
        coords = torch.as_tensor(self.transform.apply_coords(points, emb.original_size), dtype=torch.float)[:, None]
        with torch.inference_mode():
            sparse, _ = self.model.prompt_encoder(
                points=(coords, torch.ones(4, 1, dtype=torch.int)), boxes=None, masks=None
            )
        terms = (sparse, emb.keys, emb.t2i_k, emb.t2i_v, emb.i2t_q, torch.zeros(emb.valid_cells))
        return [t.numpy() for t in terms]

    def _model_input(self, image: np.ndarray) -> tuple[tuple[int, int], torch.Tensor]:
        """(h, w) of the resized image and the image encoder's input (1, 3, 1024, 1024) float32,
        normalised and zero-padded, for an (H, W, 3) uint8 RGB image."""
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        return (resized.shape[0], resized.shape[1]), self.model.preprocess(x)

    @torch.inference_mode()
    def _calibration_inputs(self) -> list[np.ndarray]:
        """The image encoder's inputs (1, 3, 1024, 1024) float32 for scikit-image's sample photos."""
        from .images import sample_photos

        return [self._model_input(image)[1].cpu().numpy() for image in sample_photos()]

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> SamImageEmbedding:
        """Run the image encoder once and precompute the image-only decoder terms.

        Args:
            image: (H, W, 3) uint8 RGB.
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        input_size, x = self._model_input(image)
        if self._encoder_graph is None:
            emb = self.model.image_encoder(x)
        else:
            emb = torch.from_numpy(self._encoder_graph(x.numpy()))
        keys = emb.flatten(2).permute(0, 2, 1) + self._no_mask
        layer = self.model.mask_decoder.transformer.layers[0]
        k_pe = keys + self._key_pe
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        return SamImageEmbedding(
            original_size=(image.shape[0], image.shape[1]),
            input_size=input_size,
            image_embedding=emb,
            keys=keys.contiguous(),
            t2i_k=heads(t2i.k_proj(k_pe), t2i.num_heads).contiguous(),
            t2i_v=heads(t2i.v_proj(keys), t2i.num_heads).contiguous(),
            i2t_q=heads(i2t.q_proj(k_pe), i2t.num_heads).contiguous(),
        )

    def _prompt_tensors(self, emb, point_coords, point_labels, box):
        pts = None
        if point_coords is not None:
            coords = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
            labels = np.asarray(point_labels, dtype=np.int64).reshape(-1)
            if len(coords) != len(labels):
                raise ValueError("point_coords and point_labels differ in length")
            coords = self.transform.apply_coords(coords, emb.original_size)
            pts = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device)[None],
                torch.as_tensor(labels, dtype=torch.int, device=self.device)[None],
            )
        boxes = None
        if box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(1, 4)
            boxes = torch.as_tensor(
                self.transform.apply_boxes(b, emb.original_size), dtype=torch.float, device=self.device
            )
        return pts, boxes

    def _first_block(self, emb: SamImageEmbedding, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first TwoWayAttentionBlock with the cached image-side projections."""
        layer = self.model.mask_decoder.transformer.layers[0]
        queries = self_attention(layer, tokens, tokens)
        t2i = layer.cross_attn_token_to_image
        q = heads(t2i.q_proj(queries + tokens), t2i.num_heads)
        out = F.scaled_dot_product_attention(q, emb.t2i_k, emb.t2i_v)
        queries = layer.norm2(queries + t2i.out_proj(merge_heads(out)))
        queries = layer.norm3(queries + layer.mlp(queries))
        i2t = layer.cross_attn_image_to_token
        qt = queries + tokens
        keys = layer.norm4(image_to_token(i2t, None, qt, queries, emb.keys, q=emb.i2t_q))
        return queries, keys

    @torch.inference_mode()
    def decode(
        self,
        emb: SamImageEmbedding,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> DecodedMasks:
        """Decode masks for one prompt (like ``SamPredictor.predict``, low-res only).

        Args:
            emb: from :meth:`encode`.
            point_coords: (N, 2) float, (X, Y) pixels of the original image.
            point_labels: (N,) int, 1 = foreground, 0 = background.
            box: (4,) float, XYXY pixels of the original image.
            mask_input: (1, 256, 256) low-res logits of an earlier decode, for refinement.
            multimask_output: three masks (whole / part / subpart) instead of one.
        Returns:
            :class:`DecodedMasks` with K = 3 or 1 masks.
        Raises:
            ValueError: no prompt at all, or mismatched point arrays.
        """
        if point_coords is None and box is None and mask_input is None:
            raise ValueError("decode needs at least one point, a box or a mask_input")
        model = self.model
        dec = model.mask_decoder
        pts, boxes = self._prompt_tensors(emb, point_coords, point_labels, box)
        masks_t = None
        if mask_input is not None:
            masks_t = torch.as_tensor(np.asarray(mask_input, dtype=np.float32), device=self.device).reshape(
                1, 1, LOW_RES, LOW_RES
            )
        sparse, dense = model.prompt_encoder(points=pts, boxes=boxes, masks=masks_t)
        idx = list(range(1, dec.num_mask_tokens)) if multimask_output else [0]
        if masks_t is None and self._decoder_graph is not None:  # measured faster for one prompt too
            iou, logits = self._graph_decode(emb, sparse)
            return DecodedMasks(padded(logits[0, idx]), iou[0, idx].numpy())
        hs, keys = self._run_transformer(emb, sparse, None if masks_t is None else dense)
        logits = self._mask_logits(emb, hs, keys, idx)[0]
        iou = dec.iou_prediction_head(hs[:, 0])[0, idx]
        return DecodedMasks(padded(logits), iou.float().cpu().numpy())

    def _run_transformer(self, emb: SamImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor | None):
        """Two-way transformer for B prompts: sparse (B, T, C) → hs (B, 5 + T, C), keys (B, 4096, C).

        ``dense=None`` means no mask input: the cached first block applies.
        """
        dec = self.model.mask_decoder
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)[None]
        tokens = torch.cat([out_tokens.expand(sparse.shape[0], -1, -1), sparse], dim=1)
        tr = dec.transformer
        key_pe = self._key_pe
        if dense is None:
            queries, keys = self._first_block(emb, tokens)
            layers = tr.layers[1:]
        else:
            queries, keys = tokens, (emb.image_embedding + dense).flatten(2).permute(0, 2, 1)
            layers = tr.layers
        for layer in layers:
            queries, keys = two_way_block(layer, queries, keys, tokens, key_pe)
        attn_out = token_to_image(tr.final_attn_token_to_image, queries + tokens, keys + key_pe, keys)
        return tr.norm_final_attn(queries + attn_out), keys

    def _mask_logits(self, emb: SamImageEmbedding, hs: torch.Tensor, keys: torch.Tensor, idx: list[int]):
        """(B, K, 4hv, 4wv) low-res logits over the unpadded region for mask tokens ``idx``."""
        return self._upscaled(hs, keys, idx, *emb.valid_cells)

    def _upscaled(self, hs: torch.Tensor, keys: torch.Tensor, idx: list[int], hv, wv) -> torch.Tensor:
        """(B, K, 4hv, 4wv) logits of mask tokens ``idx`` over the first hv × wv embedding cells."""
        dec = self.model.mask_decoder
        side = self.model.prompt_encoder.image_embedding_size
        hyper = torch.stack([dec.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in idx], dim=1)  # (B, K, 32)
        tokens = keys.reshape(keys.shape[0], side[0], side[1], -1)[:, :hv, :wv]
        return self._upscaler(tokens, hyper)

    @torch.inference_mode()
    def decode_boxes(self, emb: SamImageEmbedding, boxes: np.ndarray, batch_size: int | None = None) -> DecodedMasks:
        """Decode B box prompts in batches, one mask each: what B calls of
        ``decode(emb, box=b, multimask_output=False)`` give (SAM's advice for a box), at once.

        Args:
            boxes: (B, 4) float, XYXY pixels of the original image.
            batch_size: prompts per decoder pass (memory: ~4 MB of image tokens per prompt);
                default 64 on CUDA; on a CPU 8 through the runtime's decoder graph, else 1,
                where batching measured slower in torch (2 cores, MobileSAM: 24.8 ms per box
                one at a time, 26.7 by 8, 35 by 32: the batch's image tokens no longer fit
                the caches).
        Returns:
            :class:`DecodedMasks` with K = B: one mask per box, in order.
        """
        dec = self.model.mask_decoder
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if batch_size is None:
            batch_size = 64 if self.device.type == "cuda" else 8 if self._decoder_graph is not None else 1
        out_logits, out_iou = [], []
        for start in range(0, len(b), batch_size):
            chunk = self.transform.apply_boxes(b[start : start + batch_size], emb.original_size)
            sparse, _ = self.model.prompt_encoder(
                points=None, boxes=torch.as_tensor(chunk, dtype=torch.float, device=self.device), masks=None
            )
            if self._decoder_graph is not None:
                iou, logits = self._graph_decode(emb, sparse)
                out_logits.append(padded(logits[:, 0]))
                out_iou.append(iou[:, 0].numpy())
                continue
            hs, keys = self._run_transformer(emb, sparse, None)
            logits = self._mask_logits(emb, hs, keys, [0])[:, 0]
            out_logits.append(padded(logits))
            out_iou.append(dec.iou_prediction_head(hs[:, 0])[:, 0].float().cpu().numpy())
        if not out_logits:
            return DecodedMasks(np.zeros((0, LOW_RES, LOW_RES), np.float32), np.zeros(0, np.float32))
        return DecodedMasks(np.concatenate(out_logits), np.concatenate(out_iou))

    @torch.inference_mode()
    def decode_points(
        self, emb: SamImageEmbedding, point_coords: np.ndarray, min_iou: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode B single-point prompts at once (three candidates each), for automatic masks.

        Candidates whose predicted IoU is below ``min_iou`` are dropped before the mask
        upscaler runs, so their masks are never computed.

        Args:
            point_coords: (B, 2) float, (X, Y) pixels of the original image, one positive each.
        Returns:
            ``(logits, iou, prompt_index)``: (M, 4hv, 4wv) float32 low-res logits of the
            unpadded region (see :meth:`SamImageEmbedding.valid_low_res`), (M,) predicted IoU,
            (M,) index of the prompt each candidate came from.
        """
        dec = self.model.mask_decoder
        coords = self.transform.apply_coords(
            np.asarray(point_coords, dtype=np.float64).reshape(-1, 2), emb.original_size
        )
        pts = torch.as_tensor(coords, dtype=torch.float, device=self.device)[:, None]
        labels = torch.ones(pts.shape[0], 1, dtype=torch.int, device=self.device)
        sparse, _ = self.model.prompt_encoder(points=(pts, labels), boxes=None, masks=None)
        idx = list(range(1, dec.num_mask_tokens))
        if self._decoder_graph is not None:  # every candidate's mask comes out of the graph: filter after
            iou, logits = self._graph_decode(emb, sparse)
            keep = torch.nonzero(iou[:, 1:].max(dim=1).values >= min_iou)[:, 0]
            prompt = keep[:, None].expand(-1, len(idx)).reshape(-1)
            return logits[keep][:, 1:].flatten(0, 1), iou[keep][:, 1:].reshape(-1), prompt
        hs, keys = self._run_transformer(emb, sparse, None)
        iou = dec.iou_prediction_head(hs[:, 0])[:, idx]  # (B, 3)
        keep = iou.max(dim=1).values >= min_iou
        b_idx = torch.nonzero(keep)[:, 0]
        if len(b_idx) == 0:
            empty = torch.zeros(0, device=self.device)
            return empty.reshape(0, 0, 0), empty, empty.long()
        if len(b_idx) < len(keep):
            hs, keys = hs[b_idx], keys[b_idx]
        logits = self._mask_logits(emb, hs, keys, idx)  # (B', 3, h, w)
        prompt = b_idx[:, None].expand(-1, len(idx)).reshape(-1)
        return logits.flatten(0, 1), iou[b_idx].reshape(-1), prompt
