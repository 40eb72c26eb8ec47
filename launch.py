"""Launch the OV-SAM annotator: ``python launch.py --help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Click or box an object, get its mask and an open-vocabulary label, export COCO JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", help="folder of images to annotate (default: bundled sample photos from scikit-image)")
    p.add_argument("--out", default=str(ROOT / "exports"), help="folder for the annotation store and exports")
    p.add_argument("--sam", default="vit_t", choices=["vit_t", "vit_b", "vit_l", "vit_h"],
                   help="SAM model: vit_t = MobileSAM (fast on CPU), vit_b/l/h = SAM")  # fmt: skip
    p.add_argument("--sam-checkpoint", help="SAM weights file (default: download into checkpoints/ and verify)")
    p.add_argument("--clip", default="auto",
                   help="open_clip model for labels; 'auto' = convnext_large_d_320 on GPU, RN50 on CPU; 'none' = masks only")  # fmt: skip
    p.add_argument("--clip-pretrained", help="open_clip pretrained tag or weights file (default: the preset's tag)")
    p.add_argument("--vocab", default="imagenet21k",
                   help="vocabulary: imagenet21k, coco, coco_panoptic, or a .txt / COCO .json file")  # fmt: skip
    p.add_argument("--label-mode", default="dense", choices=["dense", "crop"],
                   help="dense = mask pooling of CLIP features (fast); crop = CLIP on the masked crop")  # fmt: skip
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=7860)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from annotator.checkpoints import CheckpointError
    from annotator.engine import EngineConfig, build_engine, engine_summary
    from annotator.images import write_sample_images
    from annotator.store import StoreError
    from annotator.vocabulary import VocabularyError
    from annotator.workspace import Workspace

    images = args.images
    if images is None:
        images = Path(args.out) / "sample_images"
        write_sample_images(images)
    config = EngineConfig(
        sam=args.sam,
        sam_checkpoint=args.sam_checkpoint,
        clip_model=args.clip,
        clip_pretrained=args.clip_pretrained,
        vocab=args.vocab,
        device=args.device,
        label_mode=args.label_mode,
    )
    try:
        engine = build_engine(config)
        ws = Workspace.open_folder(engine, images, args.out)
    except (CheckpointError, VocabularyError, StoreError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("launch").info("%s; %d images in %s", engine_summary(engine), len(ws.keys), ws.root)
    from app.page import serve

    serve(ws, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
