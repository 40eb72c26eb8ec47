"""Everything mode: seconds per image and class-agnostic AR@100, ours vs SamAutomaticMaskGenerator.

    python benchmarks/everything.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 4 --grids 16 20 --ref-grid 32

Everything runs MobileSAM on the CPU on the same images, in one run.  For each of our grids:
the raw patches (image encoder + patch generation; same thresholds as the reference) and the
SAM-CP and PosSAM passes on top of them (class-agnostic without CLIP: merging from SAM features
and adjacency, then panoptic assembly).  The reference is ``generate`` (which also encodes the
image) at ``--ref-grid`` (32, its default).  ``--ref-grid 0`` skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import torch

from annotator.engine import Engine
from annotator.evaluation import class_agnostic_scores
from annotator.everything.patches import PatchConfig
from annotator.everything.pipeline import EverythingConfig
from annotator.images import load_image
from annotator.masks import encode_rle
from annotator.sam import load_sam


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--grids", type=int, nargs="+", default=[16, 20], help="our points per side")
    ap.add_argument("--ref-grid", type=int, default=32, help="reference points per side (0: skip)")
    ap.add_argument("--methods", nargs="+", default=["patches", "samcp", "possam"], help="our passes to run")
    args = ap.parse_args()

    from mobile_sam import SamAutomaticMaskGenerator
    from pycocotools.coco import COCO

    torch.set_grad_enabled(False)
    sam = load_sam("vit_t", device="cpu")
    engine = Engine(sam)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.gt)
    ids = sorted(coco.getImgIds())[: args.limit]
    rows: dict[str, dict] = {}

    def record(name: str, img_id: int, seconds: float, masks_scores) -> None:
        row = rows.setdefault(name, {"seconds": [], "dets": []})
        row["seconds"].append(seconds)
        row["dets"] += [{"image_id": img_id, "segmentation": encode_rle(m), "score": float(s)} for m, s in masks_scores]

    for img_id in ids:
        name = coco.loadImgs(img_id)[0]["file_name"]
        image = load_image(Path(args.images) / name)
        for grid in args.grids:
            engine.clear_cache()  # time the image encoder every time
            start = time.perf_counter()
            emb = engine.embed(image)
            encode = time.perf_counter() - start
            for method in args.methods:
                config = EverythingConfig(method=method, patches=PatchConfig(points_per_side=grid))
                result = engine.everything(emb, config)
                total = encode + sum(result.seconds.values())
                if method == "patches":
                    record(f"ours {grid}x{grid} patches", img_id, encode + result.seconds["patches"],
                           zip(result.patches.masks, result.patches.predicted_iou, strict=True))  # fmt: skip
                found = result.instances
                record(f"ours {grid}x{grid} {method} instances", img_id, total,
                       ((found.mask(i), found.scores[i]) for i in range(len(found))))  # fmt: skip
                if method != "patches":
                    pan = result.panoptic
                    record(f"ours {grid}x{grid} {method} panoptic", img_id, total,
                           ((pan.mask(s.id), s.score) for s in pan.segments))  # fmt: skip
        if args.ref_grid:
            reference = SamAutomaticMaskGenerator(sam, points_per_side=args.ref_grid)
            start = time.perf_counter()
            out = reference.generate(image)
            record(f"reference {args.ref_grid}x{args.ref_grid}", img_id, time.perf_counter() - start,
                   ((r["segmentation"], r["predicted_iou"]) for r in out))  # fmt: skip
        print(name, {k: round(v["seconds"][-1], 1) for k, v in rows.items()}, flush=True)

    print(f"\nMobileSAM on CPU ({torch.get_num_threads()} threads), {len(ids)} COCO photos, class-agnostic")
    print(f"{'':34}{'s/image':>9}{'masks':>7}{'AR@10':>8}{'AR@100':>8}{'AP':>7}")
    for key, row in rows.items():
        with contextlib.redirect_stdout(io.StringIO()):
            s = class_agnostic_scores(coco, row["dets"], ids)
        sec = sum(row["seconds"]) / len(row["seconds"])
        print(f"{key:34}{sec:>9.1f}{len(row['dets']):>7}{s['AR@10']:>8.2f}{s['AR@100']:>8.2f}{s['AP']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
