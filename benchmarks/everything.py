"""Everything mode: seconds per photo, decoder passes and class-agnostic AR@10/100/1000 and AP, ours
against SamAutomaticMaskGenerator at 32×32 on the same photos.

    python benchmarks/everything.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 20 --json OUT.json

MobileSAM on the CPU. Ours: the engine's default everything patches on a CPU (one prompt per
unexplained image segment, see ``annotator/everything/prompts.py``; image encoder and batched
prompt decoder on ``--backend`` at ``--precision``) and, for comparison, SAM's uniform grid at ``--grids`` with the reference's thresholds. Each run
is timed from the pixels (image encoder included) and split into encoder, segmentation (the
segments sampler's), decoder passes and the rest (filters, NMS, upsampling, small-region clean-up).
``--methods samcp possam`` also times the SAM-CP and PosSAM passes on top (class-agnostic).

The reference is ``generate`` (which also encodes the image, in torch) at ``--ref-grid``; its masks
and seconds come from ``.cache/everything-reference/`` when a run has computed them before (see
``benchmarks/reference_masks.py``; ~3 min a photo otherwise). Its seconds are those measured when
it was computed, on this machine or the one that filled the cache: the table says how many.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from annotator.allocator import retain_freed_memory
from annotator.backends import weights_sha256
from annotator.engine import Engine
from annotator.evaluation import class_agnostic_scores
from annotator.everything import patches as patches_module
from annotator.everything.patches import PatchConfig
from annotator.everything.pipeline import EverythingConfig
from annotator.images import load_image
from annotator.sam import load_sam

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_engine import add_engine_options, build
from reference_masks import reference_masks


class _Timer:
    """Counts decoder passes (point prompts) and times the decoder and the segmentation by
    wrapping the two calls (instrumentation only; the code under test is unchanged)."""

    def __init__(self, engine: Engine):
        self.prompts = 0
        self.decode = 0.0
        self.segment = 0.0
        decode_points = engine.decoder.decode_points
        segment_image = patches_module.segment_image

        def timed_decode(emb, point_coords, min_iou=0.0):
            start = time.perf_counter()
            out = decode_points(emb, point_coords, min_iou=min_iou)
            self.decode += time.perf_counter() - start
            self.prompts += len(point_coords)
            return out

        def timed_segment(image, config):
            start = time.perf_counter()
            out = segment_image(image, config)
            self.segment += time.perf_counter() - start
            return out

        engine.decoder.decode_points = timed_decode
        patches_module.segment_image = timed_segment

    def reset(self) -> None:
        self.prompts, self.decode, self.segment = 0, 0.0, 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--offset", type=int, default=0, help="skip the first photos (e.g. 20: photos 21-40, not tuned on)")
    ap.add_argument("--grids", type=int, nargs="*", default=[16], help="uniform grids to compare (points per side)")
    ap.add_argument("--ref-grid", type=int, default=32, help="reference points per side (0: skip)")
    ap.add_argument("--methods", nargs="+", default=["patches"], help="passes to run: patches samcp possam")
    ap.add_argument("--ref-cached-only", action="store_true", help="skip photos whose reference is not cached")
    add_engine_options(ap, clip=False)  # --backend, --precision of the image encoder
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's mmap/trim thresholds alone (as builds before)"
    )
    args = ap.parse_args()

    from pycocotools.coco import COCO

    torch.set_grad_enabled(False)
    retained = False if args.default_malloc else retain_freed_memory()  # as build_engine does
    sam = load_sam("vit_t", device="cpu")
    engine, ran, _ = build(args, sam)
    print(ran, flush=True)
    timer = _Timer(engine)
    default = engine.default_patch_config()
    configs = {"ours segments (CPU default)": default}
    for grid in args.grids:
        configs[f"grid {grid}x{grid}"] = PatchConfig(points_per_side=grid, min_mask_region_area=100)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.gt)
    ids = sorted(coco.getImgIds())[args.offset : args.offset + args.limit]
    weights = weights_sha256(sam)
    refs = {}  # image id -> ReferenceMasks, read from the cache (or computed) once
    if args.ref_grid:
        for i in ids:
            path = Path(args.images) / coco.loadImgs(i)[0]["file_name"]
            refs[i] = reference_masks(sam, path, args.ref_grid, weights, compute=not args.ref_cached_only)
        ids = [i for i in ids if refs[i] is not None]
    rows: dict[str, dict] = {}

    def record(name: str, img_id: int, seconds: dict, masks_scores) -> None:
        row = rows.setdefault(name, {"seconds": [], "parts": [], "dets": []})
        row["seconds"].append(seconds["total"])
        row["parts"].append(seconds)
        row["dets"] += [{"image_id": img_id, "segmentation": s, "score": float(v)} for s, v in masks_scores]

    engine.embed(load_image(Path(args.images) / coco.loadImgs(ids[0])[0]["file_name"]))  # warm up
    ref_cached = 0
    for img_id in ids:
        name = coco.loadImgs(img_id)[0]["file_name"]
        image = load_image(Path(args.images) / name)
        for label, patch_config in configs.items():
            for method in args.methods:
                engine.clear_cache()  # time the image encoder every time
                timer.reset()
                start = time.perf_counter()
                emb = engine.embed(image)
                encode = time.perf_counter() - start
                result = engine.everything(emb, EverythingConfig(method=method, patches=patch_config))
                total = time.perf_counter() - start
                if method == "patches":
                    found = result.patches
                    seconds = {
                        "total": encode + result.seconds["patches"],
                        "encoder": encode,
                        "segmentation": timer.segment,
                        "decoder": timer.decode,
                        "other": result.seconds["patches"] - timer.segment - timer.decode,
                        "prompts": timer.prompts,
                    }
                else:
                    found = result.instances
                    seconds = {"total": total, "encoder": encode, "prompts": timer.prompts, **result.seconds}
                record(f"{label} {method}", img_id, seconds,
                       ((rle, found.scores[i]) for i, rle in enumerate(found.rles())))  # fmt: skip
        if args.ref_grid:
            ref = refs[img_id]
            ref_cached += ref.cached
            record(f"reference {args.ref_grid}x{args.ref_grid}", img_id,
                   {"total": ref.seconds, "prompts": args.ref_grid**2, "threads": ref.threads},
                   zip(ref.rles, ref.predicted_iou, strict=True))  # fmt: skip
        print(name, {k: round(v["seconds"][-1], 1) for k, v in rows.items()}, flush=True)

    print(
        f"\nMobileSAM on CPU ({torch.get_num_threads()} threads; {ran}; "
        f"freed memory {'retained' if retained else 'returned (glibc defaults)'}), "
        f"{len(ids)} COCO photos, class-agnostic; reference seconds from the cache for {ref_cached} of them"
    )
    head = f"{'':34}{'s/photo':>8}{'enc':>6}{'seg':>6}{'dec':>6}{'other':>6}{'prompts':>8}{'masks':>7}"
    print(head + f"{'AR@10':>7}{'AR@100':>8}{'AR@1000':>9}{'AP':>7}")
    summary = {
        "images": len(ids),
        "backend": engine.backend,
        "precision": engine.precisions,
        "engine": ran,
        "threads": torch.get_num_threads(),
        "retain_freed_memory": retained,
        "rows": {},
    }
    for key, row in rows.items():
        with contextlib.redirect_stdout(io.StringIO()):
            s = class_agnostic_scores(coco, row["dets"], ids)
        parts = {k: float(np.mean([p.get(k, np.nan) for p in row["parts"]])) for k in row["parts"][0]}
        masks = len(row["dets"]) / len(ids)
        cells = "".join(
            f"{parts[k]:>6.2f}" if k in parts else f"{'':>6}" for k in ("encoder", "segmentation", "decoder", "other")
        )
        print(
            f"{key:34}{parts['total']:>8.2f}{cells}{parts['prompts']:>8.0f}{masks:>7.1f}"
            f"{s['AR@10']:>7.2f}{s['AR@100']:>8.2f}{s['AR@1000']:>9.2f}{s['AP']:>7.2f}"
        )
        summary["rows"][key] = {"seconds": parts, "masks_per_photo": masks, **s}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
