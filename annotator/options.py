"""The model options of the app and the CLI, declared once.

Choices come from the registries (:data:`annotator.sam.SAM_BUILDERS`,
:data:`annotator.vocabulary.VOCABULARIES`, :data:`annotator.clip_regions.LABEL_MODES`), so a
model added there is offered everywhere.
"""

from __future__ import annotations

import argparse

from .backends import BACKENDS, PRECISIONS
from .clip_regions import LABEL_MODES
from .engine import DEVICES, EngineConfig
from .sam import SAM_BUILDERS
from .vocabulary import VOCABULARIES

DEFAULTS = EngineConfig()


def add_engine_arguments(parser: argparse.ArgumentParser, vocab_default: str | None = DEFAULTS.vocab) -> None:
    """Add ``--sam``, ``--sam-checkpoint``, ``--clip``, ``--clip-pretrained``, ``--vocab``,
    ``--label-mode``, ``--device``, ``--backend``, ``--precision`` (``--int8``), ``--threads``, ``--refine`` and ``--candidate-margin`` to ``parser`` (read back by :func:`engine_config_from_args`).

    Args:
        vocab_default: the default ``--vocab``; ``None`` leaves it to the command (``eval``
            takes the ground truth's categories).
    """
    g = parser.add_argument_group("models")
    g.add_argument("--sam", default=DEFAULTS.sam, choices=list(SAM_BUILDERS),
                   help="SAM model: vit_t = MobileSAM (fast on CPU), vit_b/l/h = SAM")  # fmt: skip
    g.add_argument(
        "--sam-checkpoint", help="SAM weights file (default: download into the checkpoints folder and verify)"
    )
    g.add_argument("--clip", default=DEFAULTS.clip_model,
                   help="open_clip model for labels; 'auto' = convnext_large_d_320 on GPU, RN50 on CPU; 'none' = masks only")  # fmt: skip
    g.add_argument("--clip-pretrained", help="open_clip pretrained tag or weights file (default: the preset's tag)")
    g.add_argument("--vocab", default=vocab_default,
                   help=f"vocabulary: {', '.join(VOCABULARIES)}, or a .txt / COCO .json file")  # fmt: skip
    g.add_argument("--label-mode", default=DEFAULTS.label_mode, choices=list(LABEL_MODES),
                   help="dense = mask pooling of CLIP features (fast); crop = CLIP on the masked crop")  # fmt: skip
    g.add_argument("--device", default=DEFAULTS.device, choices=list(DEVICES))
    g.add_argument("--backend", default=DEFAULTS.backend, choices=list(BACKENDS),
                   help="where SAM's image encoder and CLIP's dense pass run: auto = OpenVINO on a CPU "
                        "(graphs exported once from the weights and checked against torch), torch on CUDA")  # fmt: skip
    g.add_argument("--precision", default=DEFAULTS.precision, choices=list(PRECISIONS),
                   help="inference precision on the CPU runtime: auto = SAM's image encoder and batched prompt "
                        "decoder in bf16 where the CPU has AMX or AVX-512 BF16 (f32 elsewhere), CLIP in f32; "
                        "f32; bf16 (all of them; OpenVINO); int8 (SAM's encoder, OpenVINO + NNCF: faster, "
                        "point mIoU -0.6 on COCO)")  # fmt: skip
    g.add_argument("--int8", dest="precision", action="store_const", const="int8", default=argparse.SUPPRESS,
                   help="the same as --precision int8")  # fmt: skip
    g.add_argument("--threads", type=positive_int, default=DEFAULTS.threads,
                   help="CPU threads for torch and the runtime (default: all cores)")  # fmt: skip
    g.add_argument("--refine", type=non_negative_int, default=DEFAULTS.refine,
                   help="extra SAM decoder passes per click or box, each fed the last mask "
                        "(see docs/benchmarks.md, Masks against SamPredictor)")  # fmt: skip
    g.add_argument("--candidate-margin", type=unit_interval, default=DEFAULTS.candidate_margin,
                   help="a click's mask: the largest of SAM's candidates within this predicted IoU "
                        "of the best (0 = SAM's own choice, the best predicted IoU)")  # fmt: skip


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an int of 0 or more (``ArgumentTypeError`` otherwise)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def unit_interval(text: str) -> float:
    """argparse type: a float from 0 to 1 (``ArgumentTypeError`` otherwise)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {value}")
    return value


def engine_config_from_args(args: argparse.Namespace, vocab: str | None = None) -> EngineConfig:
    """The :class:`~annotator.engine.EngineConfig` of parsed :func:`add_engine_arguments` options.

    Args:
        vocab: overrides ``args.vocab`` (e.g. a default the command computed).
    """
    return EngineConfig(
        sam=args.sam,
        sam_checkpoint=args.sam_checkpoint,
        clip_model=args.clip,
        clip_pretrained=args.clip_pretrained,
        vocab=vocab or args.vocab or DEFAULTS.vocab,
        device=args.device,
        label_mode=args.label_mode,
        backend=args.backend,
        threads=args.threads,
        precision=args.precision,
        refine=args.refine,
        candidate_margin=args.candidate_margin,
    )
