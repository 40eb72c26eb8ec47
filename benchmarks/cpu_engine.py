"""The engine the CPU benchmarks time, built as the app builds it: the backend and precision
asked for, and when a graph cannot run (``BackendError``) with ``--backend auto``, torch, said
in the output instead of a crash. Every figure names the backend and precisions that ran.

CLIP weights do not reach every machine: ``--clip-weights random`` (the default when the real
ones are missing) runs RN50's exact architecture with random weights and random unit text
embeddings of the vocabulary's size, so the label ranking costs what it costs with real weights;
the labels themselves are then meaningless and not reported.
"""

from __future__ import annotations

import argparse

import torch

from annotator.backends import BACKENDS, PRECISIONS, BackendError, backend_summary, cpu_summary, resolve_backend
from annotator.clip_regions import ClipRegionEncoder, ClipSpec, ClipUnavailable
from annotator.engine import Engine, precision_summary
from annotator.sam import load_sam
from annotator.vocabulary import load_vocabulary


def add_engine_options(ap: argparse.ArgumentParser, clip: bool = True) -> None:
    """``--backend``, ``--precision`` (``--int8`` its alias) and, with ``clip``, ``--vocab`` and
    ``--clip-weights``."""
    ap.add_argument("--backend", default="auto", choices=list(BACKENDS), help="where our encoders run")
    ap.add_argument("--precision", default="auto", choices=list(PRECISIONS), help="their inference precision")
    ap.add_argument("--int8", dest="precision", action="store_const", const="int8", help="= --precision int8")
    if clip:
        ap.add_argument("--vocab", default="imagenet21k")
        ap.add_argument("--clip-weights", choices=["auto", "random", "none"], default="auto")


def build(args: argparse.Namespace, sam: torch.nn.Module | None = None) -> tuple[Engine, str, str]:
    """The engine of the parsed options, a line saying what it runs (CPU, backend, precisions,
    CLIP, any fallback) and one saying which CLIP labels."""
    sam = sam if sam is not None else load_sam("vit_t", device="cpu")
    backend = resolve_backend(args.backend, "cpu")
    try:
        engine, clip_note = _engine(sam, args, backend, args.precision)
    except BackendError as exc:
        if args.backend != "auto":
            raise
        print(f"{exc}; running on torch instead")
        backend = "torch"
        engine, clip_note = _engine(sam, args, backend, "f32")
    note = f"{cpu_summary()}; {backend_summary(backend)}; {precision_summary(engine)}; {clip_note}"
    for fallback in engine.notes:
        note += f"; fallback: {fallback}"
    return engine, note, clip_note


def _engine(sam, args, backend: str, precision: str) -> tuple[Engine, str]:
    clip_weights = getattr(args, "clip_weights", "none")
    if clip_weights == "none":
        vocab = load_vocabulary(getattr(args, "vocab", "coco"))
        return Engine(sam, vocabulary=vocab, backend=backend, precision=precision), "no CLIP (masks only)"
    vocab = load_vocabulary(args.vocab)
    try:
        if clip_weights == "random":
            raise ClipUnavailable("random weights asked for")
        clf = ClipRegionEncoder(ClipSpec("RN50", "openai", 672), "cpu", backend=backend, precision=precision)
        return Engine(sam, clf, vocab, backend=backend, precision=precision), "CLIP RN50/openai"
    except ClipUnavailable:
        torch.manual_seed(0)
        clf = ClipRegionEncoder(ClipSpec("RN50", None, 672), "cpu", backend=backend, precision=precision)
        dim = clf.model.text_projection.shape[1]
        text = torch.nn.functional.normalize(torch.randn(len(vocab), dim), dim=-1)
        engine = Engine(sam, clf, vocab, text_embeddings=text, backend=backend, precision=precision)
        return engine, "CLIP RN50 architecture, random weights (timing only)"
