"""Everything mode: seconds per image and class-agnostic AR@100, ours vs SamAutomaticMaskGenerator.

    python benchmarks/everything.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 3 --points-per-side 32

Both run MobileSAM on the same images with the same grid and thresholds (the reference's
defaults), in one run. Ours = image encoder + patches; reference = ``generate`` (which also
encodes the image).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.engine import Engine
from annotator.evaluation import class_agnostic_scores
from annotator.everything.patches import PatchConfig
from annotator.images import load_image
from annotator.masks import encode_rle
from annotator.sam import load_sam


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()

    from mobile_sam import SamAutomaticMaskGenerator
    from pycocotools.coco import COCO

    torch.set_grad_enabled(False)
    sam = load_sam("vit_t", device="cpu")
    engine = Engine(sam)
    reference = SamAutomaticMaskGenerator(sam, points_per_side=args.points_per_side)
    config = PatchConfig(points_per_side=args.points_per_side)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.gt)
    ids = sorted(coco.getImgIds())[: args.limit]
    ours, theirs, t_ours, t_ref = [], [], [], []
    for img_id in ids:
        name = coco.loadImgs(img_id)[0]["file_name"]
        image = load_image(Path(args.images) / name)
        start = time.perf_counter()
        engine.set_image(image)
        patches = engine.segment_everything(config)
        t_ours.append(time.perf_counter() - start)
        ours += [
            {"image_id": img_id, "segmentation": encode_rle(m), "score": float(s)}
            for m, s in zip(patches.masks, patches.predicted_iou, strict=True)
        ]
        line = f"{name}: ours {t_ours[-1]:.1f} s, {len(patches)} patches"
        if not args.skip_reference:
            start = time.perf_counter()
            out = reference.generate(image)
            t_ref.append(time.perf_counter() - start)
            theirs += [
                {"image_id": img_id, "segmentation": encode_rle(r["segmentation"]), "score": r["predicted_iou"]}
                for r in out
            ]
            line += f"; reference {t_ref[-1]:.1f} s, {len(out)} masks"
        print(line, flush=True)
    with contextlib.redirect_stdout(io.StringIO()):
        s_ours = class_agnostic_scores(coco, ours, ids)
        s_ref = class_agnostic_scores(coco, theirs, ids) if theirs else None
    print(f"\nMobileSAM on CPU ({torch.get_num_threads()} threads), {len(ids)} COCO photos, "
          f"{args.points_per_side}x{args.points_per_side} grid")  # fmt: skip
    print(f"{'':22}{'ours':>10}{'reference':>12}")
    ref_t = f"{sum(t_ref) / len(t_ref):>12.1f}" if t_ref else f"{'-':>12}"
    print(f"{'seconds per image':22}{sum(t_ours) / len(t_ours):>10.1f}{ref_t}")
    for key in ("AR@10", "AR@100", "AP"):
        ref_v = f"{s_ref[key]:>12.2f}" if s_ref else f"{'-':>12}"
        print(f"{key:22}{s_ours[key]:>10.2f}{ref_v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
