"""Open-vocabulary labels for masks: CLIP region features against CLIP text embeddings.

This is the feature-crop baseline of Open-Vocabulary SAM (Yuan et al., 2024): the image goes
through CLIP's visual tower once (a dense feature map), each mask pools that map, the pooled
feature goes through the tower's head into the joint space, and cosine similarity against the
text embeddings of the vocabulary (prompt-template ensemble) ranks the classes.

Dense features per tower type (open_clip):

- ``ModifiedResNet`` (RN50, RN50x16, ...): the stage-5 map plus the attention pool's
  positional embedding, through the pool's value and output projections (the MaskCLIP
  reading of the attention pool).  Those projections are affine, so they commute with mask
  pooling: they are applied once per image, and a click only averages.
- ``TimmModel`` (ConvNeXt): the trunk's feature map; a region goes through the trunk's head
  (norm) and the projection, exactly as CLIP's own global pooling does.

ViT towers pool poorly (no locality in the last layer); for them use the image-crop variant
(``mode="crop"``), which embeds the masked crop with the whole tower.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .backends import compile_module, plan_precisions
from .checkpoints import checkpoints_dir
from .fileio import atomic_write_bytes
from .masks import masks_to_boxes
from .vocabulary import Vocabulary, prompt_phrase

log = logging.getLogger(__name__)

# A small ensemble of the ImageNet prompt templates (Radford et al., 2021), as used for
# region classification by OV-SAM / FC-CLIP style pipelines.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "there is a {} in the scene.",
)
MAX_SYNONYMS = 3  # per class, phrases averaged into its text embedding
LABEL_MODES = ("dense", "crop")  # mask pooling of the dense map; CLIP on the masked crop
AUTO_BF16 = False
"""Whether ``--precision auto`` may run CLIP's dense pass in bf16. No: bf16 is 5x faster for RN50
here (0.044 vs 0.24 s at 480×672) and close on random weights (relative L2 0.0035), but what it
does to labels depends on the trained weights' activations (large outlier channels are what
bf16 rounds worst), and no CLIP weights reach our machines to measure label accuracy with.
``--precision bf16`` opts in."""

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipUnavailable(RuntimeError):
    """CLIP weights cannot be had (offline, not cached); ``str()`` tells the user what to do."""


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP to load.

    Attributes:
        model: open_clip model name (``RN50``, ``convnext_large_d_320``, ...).
        pretrained: open_clip pretrained tag, a path to a weights file, or ``None`` for random
            weights (tests only: the labels are then meaningless and flagged as such).
        dense_size: the image's longest side, in pixels, for the dense feature pass.
    """

    model: str = "RN50"
    pretrained: str | None = "openai"
    dense_size: int = 672


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _resolve_weights(spec: ClipSpec, cache_dir: Path) -> tuple[str | None, bool]:
    """Find weights without touching the network when they are local.

    Returns:
        (pretrained argument for open_clip, quick_gelu flag).
    Raises:
        ClipUnavailable: a tag whose file is not cached while the hub is unreachable.
    """
    import open_clip

    if spec.pretrained is None:
        return None, False
    if Path(spec.pretrained).is_file():
        return spec.pretrained, "quickgelu" in spec.model.lower()
    cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
    if not cfg:
        raise ClipUnavailable(f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.model!r}")
    quick_gelu = bool(cfg.get("quick_gelu", False))
    hub = cfg.get("hf_hub", "").strip("/")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(hub, fname, cache_dir=str(cache_dir))
            if isinstance(hit, str):
                return hit, quick_gelu
    if not _hub_reachable():
        raise ClipUnavailable(
            f"CLIP weights {spec.model}/{spec.pretrained} are not in {cache_dir} and huggingface.co "
            f"cannot be reached. Masks work; pick labels by hand. To get suggestions, start once "
            f"with internet access (the weights are then kept) or pass "
            f"--clip-pretrained /path/to/open_clip_pytorch_model.bin."
        )
    return spec.pretrained, quick_gelu


class DenseTower(torch.nn.Module):
    """CLIP's visual tower read densely (see module doc), as a module that can be exported.

    ``forward``: (1, 3, H, W) normalised float32 image, H and W multiples of 32 →
    (1, C, H/32, W/32) float32 dense map (for ResNet towers C is the joint embedding size D).
    """

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual
        self.resnet = type(visual).__name__ == "ModifiedResNet"
        if self.resnet:  # the attention pool's positional grid side, a constant of the model
            self.pos_side = round((visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        if not self.resnet:
            return visual.trunk.forward_features(x)
        feats = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))
        ap = visual.attnpool
        s = self.pos_side
        pos = ap.positional_embedding[1:].reshape(1, s, s, -1).permute(0, 3, 1, 2)  # (1, C, s, s)
        pos = F.interpolate(pos, size=feats.shape[2:], mode="bicubic", align_corners=False)
        tokens = (feats + pos).flatten(2).transpose(1, 2)  # (1, Hf*Wf, C)
        proj = ap.c_proj(ap.v_proj(tokens))  # (1, Hf*Wf, D): affine, commutes with mask pooling
        return proj.transpose(1, 2).reshape(1, -1, feats.shape[2], feats.shape[3])


class ClipRegionEncoder:
    """CLIP visual + text towers for labelling masks (see module doc).

    Args:
        spec: which CLIP.
        device: torch device string.
        cache_dir: open_clip's weights cache (default ``<checkpoints>/open_clip``).
        mode: ``dense`` (mask pooling) or ``crop`` (CLIP on the masked crop).
        backend: where the dense pass runs: ``torch`` or a CPU runtime (``openvino``,
            ``onnxruntime``, see :mod:`annotator.backends`); text and crops stay in torch.
        threads: the CPU runtime's threads (``None`` = all cores).
        precision: the dense pass's inference precision on the CPU runtime
            (:data:`annotator.backends.PRECISIONS`): ``auto`` is f32 (:data:`AUTO_BF16`),
            ``bf16`` is opt-in, ``int8`` runs CLIP in f32 (only SAM's encoder is quantized).

    Attributes:
        precision: the precision the dense pass runs in; ``notes``: what ran instead of what
            was asked for.

    Raises (constructor):
        ClipUnavailable: weights cannot be found or downloaded.
        ValueError: the visual tower has no dense reading (ViT) and ``mode="dense"``.
        annotator.backends.BackendError: the dense pass cannot run on ``backend``.
    """

    def __init__(
        self,
        spec: ClipSpec,
        device: str = "cpu",
        cache_dir: Path | None = None,
        mode: str = "dense",
        backend: str = "torch",
        threads: int | None = None,
        precision: str = "auto",
    ):
        import open_clip

        self.spec = spec
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir or checkpoints_dir() / "open_clip")
        if mode not in LABEL_MODES:
            raise ValueError(f"label mode must be one of {LABEL_MODES}, not {mode!r}")
        self.mode = mode
        pretrained, quick_gelu = _resolve_weights(spec, self.cache_dir)
        try:
            model = open_clip.create_model(
                spec.model,
                pretrained=pretrained,
                device=self.device,
                force_quick_gelu=quick_gelu,
                cache_dir=str(self.cache_dir),
            )
        except RuntimeError as exc:
            raise ClipUnavailable(f"could not load CLIP {spec.model}/{spec.pretrained}: {exc}") from exc
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(spec.model)
        self.random_weights = pretrained is None
        visual = model.visual
        self.kind = type(visual).__name__
        if mode == "dense" and self.kind not in ("ModifiedResNet", "TimmModel"):
            raise ValueError(f"{spec.model}: {self.kind} towers have no dense reading; use mode='crop'")
        mean = getattr(visual, "image_mean", None) or OPENAI_MEAN
        std = getattr(visual, "image_std", None) or OPENAI_STD
        self._mean = torch.tensor(mean, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(3, 1, 1)
        size = visual.image_size
        self.native_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.weights_id = self._weights_id(pretrained)
        self.backend = backend
        self.dense_tower = DenseTower(visual).eval() if mode == "dense" else None
        self._dense_graph = None
        plan = plan_precisions(precision, backend, AUTO_BF16)
        self.precision, self.notes = plan[0], []
        if backend != "torch" and self.dense_tower is not None:
            side = max(32, spec.dense_size // 32 * 32)
            self._dense_graph = compile_module(
                self.dense_tower,
                torch.zeros(1, 3, side * 3 // 4 // 32 * 32 or 32, side),  # a 4:3 photo
                f"clip-{spec.model}-dense",
                backend,
                threads,
                dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "rows", 3: "cols"}},
                precisions=plan,
            )
            self.precision, self.notes = self._dense_graph.precision, self._dense_graph.notes

    def _weights_id(self, pretrained: str | None) -> str:
        if pretrained is None:  # random weights: fingerprint the parameters themselves
            h = hashlib.sha256()
            for p in list(self.model.parameters())[:8]:
                h.update(p.detach().float().cpu().numpy().tobytes())
            return f"random-{h.hexdigest()[:16]}"
        return f"{self.spec.model}/{self.spec.pretrained}"

    def _to_tensor(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        resized = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).float() / 255.0
        return ((x - self._mean) / self._std)[None]

    @torch.inference_mode()
    def dense_features(self, image: np.ndarray) -> torch.Tensor:
        """CLIP dense feature map of an image (dense mode).

        Args:
            image: (H, W, 3) uint8 RGB.
        Returns:
            (C, Hf, Wf) float32 on the model's device, covering the whole image; Hf/Wf ≈
            H/W × dense_size / max(H, W) / 32.  For ResNet towers C is already the joint
            embedding size D (projected per cell).
        """
        h, w = image.shape[:2]
        scale = self.spec.dense_size / max(h, w)
        size = (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))
        x = self._to_tensor(image, size)
        if self._dense_graph is not None:
            return torch.from_numpy(self._dense_graph(x.numpy()))[0]
        return self.dense_tower(x)[0].float()

    @torch.inference_mode()
    def embed_regions(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled dense features (N, C) → unit-norm joint-space embeddings (N, D)."""
        visual = self.model.visual
        if self.kind == "ModifiedResNet":
            out = pooled  # projected per cell in dense_features
        else:
            out = visual.head(visual.trunk.forward_head(pooled[:, :, None, None], pre_logits=True))
        return F.normalize(out.float(), dim=-1)

    @torch.inference_mode()
    def mask_embeddings(self, dense: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
        """Mask pooling: weighted mean of the dense map per mask, then :meth:`embed_regions`.

        Args:
            dense: (C, Hf, Wf) from :meth:`dense_features`.
            weights: (N, Hf, Wf) float32 in [0, 1], each mask's coverage of each feature cell.
        Returns:
            (N, D) unit-norm embeddings; a mask with no coverage gets a zero row.
        """
        w = torch.as_tensor(weights, dtype=torch.float32, device=dense.device).flatten(1)
        total = w.sum(dim=1, keepdim=True)
        pooled = (w @ dense.flatten(1).T) / total.clamp_min(1e-6)
        emb = self.embed_regions(pooled)
        return emb * (total > 0)

    def _crop(self, image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """(1, 3, S, S) normalised input of a mask's padded bounding-box crop, background greyed."""
        if not mask.any():
            raise ValueError("cannot embed an empty mask")
        x0, y0, x1, y1 = (int(v) for v in masks_to_boxes(mask[None])[0])
        pad_y, pad_x = int(0.1 * (y1 - y0)) + 1, int(0.1 * (x1 - x0)) + 1
        y0, x0 = max(0, y0 - pad_y), max(0, x0 - pad_x)
        y1, x1 = min(mask.shape[0], y1 + pad_y), min(mask.shape[1], x1 + pad_x)
        crop = image[y0:y1, x0:x1].copy()
        crop[~mask[y0:y1, x0:x1]] = (np.array(OPENAI_MEAN) * 255).astype(np.uint8)
        return self._to_tensor(crop, (self.native_size, self.native_size))

    @torch.inference_mode()
    def crop_embedding(self, image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """Image-crop variant: embed the mask's bounding-box crop, background greyed out.

        Args:
            image: (H, W, 3) uint8 RGB; mask: (H, W) bool.
        Returns:
            (1, D) unit-norm embedding.
        Raises:
            ValueError: the mask is empty.
        """
        return F.normalize(self.model.encode_image(self._crop(image, mask)).float(), dim=-1)

    @torch.inference_mode()
    def crop_embeddings(self, image: np.ndarray, masks: np.ndarray, batch_size: int = 16) -> torch.Tensor:
        """:meth:`crop_embedding` of many masks of one image, in batches.

        Args:
            image: (H, W, 3) uint8 RGB; masks: (N, H, W) bool.
        Returns:
            (N, D) unit-norm float32 on the model's device; zero rows for empty masks.
        """
        out = None
        todo = [i for i, m in enumerate(masks) if m.any()]
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            emb = F.normalize(
                self.model.encode_image(torch.cat([self._crop(image, masks[i]) for i in idx])).float(), dim=-1
            )
            if out is None:  # the embedding width differs between CLIP towers: learn it here
                out = torch.zeros(len(masks), emb.shape[1], device=self.device)
            out[idx] = emb
        if out is None:  # no non-empty mask
            out = torch.zeros(len(masks), self.encode_texts(["object"]).shape[1], device=self.device)
        return out

    @torch.inference_mode()
    def encode_texts(self, texts: list[str], batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """Unit-norm text embeddings (M, D), float32 on CPU.

        Padding after the end-of-text token is trimmed per batch: with CLIP's causal mask this
        gives the same embeddings as the full 77-token pass, several times faster.
        """
        out = []
        for i in tqdm(range(0, len(texts), batch_size), desc="text embeddings", disable=not progress):
            tokens = self.tokenizer(texts[i : i + batch_size]).to(self.device)
            out.append(F.normalize(self._encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)

    def _encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        trimmable = (
            hasattr(m, "positional_embedding")
            and getattr(m, "text_pool_type", "argmax") == "argmax"
            and getattr(m, "attn_mask", None) is not None
        )
        if not trimmable:
            return m.encode_text(tokens)
        length = int((tokens != 0).sum(dim=1).max())
        tokens = tokens[:, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        from open_clip.transformer import text_global_pool

        x = text_global_pool(x, tokens, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        proj = m.text_projection
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    def class_embeddings(
        self, vocab: Vocabulary, templates: tuple[str, ...] = DEFAULT_TEMPLATES, cache: bool = True
    ) -> torch.Tensor:
        """One unit-norm text embedding per class: the mean over templates × synonyms.

        Cached on disk under ``<cache_dir>/text_embeddings/`` keyed by (weights, templates,
        vocabulary fingerprint), so a 22k vocabulary is encoded once.

        Returns:
            (K, D) float32 on the model's device, K = ``len(vocab)``.
        """
        key_src = "|".join([self.weights_id, *templates, vocab.fingerprint, str(MAX_SYNONYMS)])
        key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
        path = self.cache_dir / "text_embeddings" / f"{key}.npy"
        if cache and path.exists():
            try:
                arr = np.load(path)
                if arr.shape[0] == len(vocab):
                    return torch.as_tensor(arr, device=self.device)
            except (OSError, ValueError):
                log.warning("text embedding cache %s is unreadable; recomputing", path)
        texts, owner = [], []
        for k, syns in enumerate(vocab.synonyms):
            for phrase in syns[:MAX_SYNONYMS]:
                for t in templates:
                    texts.append(t.format(prompt_phrase(phrase)))
                    owner.append(k)
        log.info("encoding %d prompts for %d classes of %s (once; cached)", len(texts), len(vocab), vocab.name)
        emb = self.encode_texts(texts, progress=len(texts) > 2000)
        sums = torch.zeros(len(vocab), emb.shape[1]).index_add_(0, torch.as_tensor(owner), emb)
        result = F.normalize(sums, dim=-1).numpy().astype(np.float32)
        if cache:
            import io

            buf = io.BytesIO()
            np.save(buf, result)
            atomic_write_bytes(path, buf.getvalue())
        return torch.as_tensor(result, device=self.device)
