"""Building an engine: its config (the launcher's and CLI's options), the CLIP presets, the
device and runtime fallbacks, and one-line summaries for logs and the page."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..allocator import retain_freed_memory
from ..backends import BackendError, backend_summary, plan_precisions, resolve_backend
from ..clip_regions import ClipRegionEncoder, ClipSpec, ClipUnavailable
from ..sam import load_sam
from ..vocabulary import load_vocabulary
from .core import Engine
from .prompts import CANDIDATE_MARGIN

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
        engine = _assemble(config, sam_model, spec, vocabulary, device, backend, "f32", quiet=True)
        engine.notes.insert(0, note)
    log.info("inference backend: %s; %s", backend_summary(backend, config.threads), precision_summary(engine))
    return engine


def precision_summary(engine: Engine) -> str:
    """``SAM image encoder openvino bf16, CLIP dense pass openvino f32``, for logs and figures."""
    names = {"sam": "SAM image encoder", "sam_prompts": "batched prompts", "clip": "CLIP dense pass"}
    return ", ".join(f"{names[k]} {v}" for k, v in engine.precisions.items())


def _assemble(
    config: EngineConfig, sam_model, spec, vocabulary, device: str, backend: str, precision: str, quiet: bool = False
) -> Engine:
    """The engine on one backend and precision; ``quiet``: a second try after a fallback, whose
    missing CLIP was logged by the first."""
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
    if reason and not quiet:
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
    "CLIP_PRESETS",
    "DEVICES",
    "EngineConfig",
    "build_engine",
    "clip_spec_for",
    "engine_summary",
    "precision_summary",
    "resolve_device",
]
