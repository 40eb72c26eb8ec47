"""The OV-SAM engine: one image embedding per image, a mask and a label per prompt.

Its parts, one job each:

- :mod:`~annotator.engine.embeddings`: :class:`ImageEmbedding` (the handle every call takes),
  the image digest and the bounded cache of embeddings.
- :mod:`~annotator.engine.prompts`: :class:`PromptResult`, the candidate rule, box clipping.
- :mod:`~annotator.engine.core`: :class:`Engine`, the predictor facade (prompts, boxes,
  everything mode, find all) over SAM (:mod:`annotator.sam`) and the label path
  (:mod:`annotator.labelling`).
- :mod:`~annotator.engine.builder`: :class:`EngineConfig`, the CLIP presets and
  :func:`build_engine` with its runtime fallbacks.
"""

from ..backends import BACKENDS
from ..classifier import LabelScore
from .builder import (
    CLIP_PRESETS,
    DEVICES,
    EngineConfig,
    build_engine,
    clip_spec_for,
    engine_summary,
    precision_summary,
    resolve_device,
)
from .core import Engine
from .embeddings import ImageEmbedding, image_digest
from .prompts import CANDIDATE_MARGIN, PromptResult, choose_candidate, clip_box

__all__ = [
    "BACKENDS",
    "CANDIDATE_MARGIN",
    "CLIP_PRESETS",
    "DEVICES",
    "Engine",
    "EngineConfig",
    "ImageEmbedding",
    "LabelScore",
    "PromptResult",
    "build_engine",
    "choose_candidate",
    "clip_box",
    "clip_spec_for",
    "engine_summary",
    "image_digest",
    "precision_summary",
    "resolve_device",
]
