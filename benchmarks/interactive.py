"""Per-click latency and image-switch time: our engine vs the plain SamPredictor, same run.

    python benchmarks/interactive.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 20

A click is one positive point at the interior point of a ground-truth instance farthest
from its boundary. "Ours" times ``Engine.predict``: mask at the original resolution plus the
top-5 labels over the 21,843-class ImageNet-21k vocabulary (CLIP RN50 mask pooling). Each click
is also timed with SAM's own choice among the three candidates (``candidate_margin=0``, what the
engine did before ``choose_candidate``), the two interleaved, so the choice's cost shows.
"Plain" times ``SamPredictor.predict`` (mask only, multimask as SAM advises for one point).

CLIP weights do not reach every machine: ``--clip-weights random`` (the default when the
real ones are missing) runs RN50's exact architecture with random weights and random
unit text embeddings of the vocabulary's size.  The timings are then real; the labels are
not, and are not reported.

``--backend`` and ``--precision`` say where and how our SAM image encoder and CLIP dense pass
run (default ``auto``: OpenVINO on a CPU, SAM's encoder in bf16 where the CPU has AMX or AVX-512
BF16; see ``annotator/backends.py``); the plain SamPredictor is always eager torch f32, the
reference. The figures name the CPU, the backend, the precisions and the versions. "New image"
is both passes (SAM + CLIP); "SAM only" is what the page's first click on a new photo waits
for (``embed(defer_labels=True)``: the labels follow), timed on the photo mirrored, so that it
is not cached either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from cpu_engine import add_engine_options, build  # benchmarks/cpu_engine.py, beside this script

from annotator.allocator import retain_freed_memory
from annotator.backends import backend_summary, cpu_summary
from annotator.evaluation import farthest_interior_point
from annotator.images import load_image
from annotator.sam import load_sam


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True, help="COCO instances JSON for the click points")
    ap.add_argument("--limit", type=int, default=20, help="number of images")
    ap.add_argument("--clicks", type=int, default=5, help="clicks per image")
    add_engine_options(ap)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    from mobile_sam import SamPredictor
    from pycocotools.coco import COCO

    torch.set_grad_enabled(False)
    retain_freed_memory()  # as the app's build_engine does
    sam = load_sam("vit_t", device="cpu")
    engine, ran, clip_note = build(args, sam)
    vocab = engine.vocabulary
    plain = SamPredictor(sam)

    coco = COCO(args.gt)
    ours_click, plain_click, ours_set, plain_set, ours_switch, ours_sam_only = [], [], [], [], [], []
    sam_choice_click = []
    images = []
    for img_id in sorted(coco.getImgIds())[: args.limit]:
        info = coco.loadImgs(img_id)[0]
        image = load_image(Path(args.images) / info["file_name"])
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False)) if a["area"] > 0]
        points = [farthest_interior_point(coco.annToMask(a).astype(bool)) for a in anns[: args.clicks]]
        images.append(image)
        mirrored = np.ascontiguousarray(image[:, ::-1])  # the same photo, not cached yet
        t = time.perf_counter()
        deferred = engine.embed(mirrored, defer_labels=True)  # what the page's first click waits for
        ours_sam_only.append(time.perf_counter() - t)
        deferred.dense.result()  # CLIP's pass, left out of the figure, must not overlap the next one
        t = time.perf_counter()
        emb = engine.embed(image)
        ours_set.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain.set_image(image)
        plain_set.append(time.perf_counter() - t)
        for px, py in points:
            pc, pl = np.array([[px, py]]), np.array([1])
            margin = engine.candidate_margin
            engine.candidate_margin = 0.0
            t = time.perf_counter()
            engine.predict(emb, point_coords=pc, point_labels=pl)
            sam_choice_click.append(time.perf_counter() - t)
            engine.candidate_margin = margin
            t = time.perf_counter()
            engine.predict(emb, point_coords=pc, point_labels=pl)
            ours_click.append(time.perf_counter() - t)
            t = time.perf_counter()
            plain.predict(point_coords=pc, point_labels=pl, multimask_output=True)
            plain_click.append(time.perf_counter() - t)
    for image in images:  # switching back to an image seen before
        t = time.perf_counter()
        engine.embed(image)
        ours_switch.append(time.perf_counter() - t)

    figures = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "cpu": cpu_summary(),
        "backend": engine.backend,
        "precision": engine.precisions,
        "precision_asked": args.precision,
        "backend_detail": ran,
        "plain_backend": backend_summary("torch") + ", f32",
        "images": len(images),
        "clicks": len(ours_click),
        "labels": clip_note,
        "vocabulary": f"{vocab.name} ({len(vocab)} classes)",
        "ours_click_p50_ms": pct(ours_click, 50),
        "ours_click_p95_ms": pct(ours_click, 95),
        "candidate_margin": engine.candidate_margin,
        "ours_click_sam_choice_p50_ms": pct(sam_choice_click, 50),
        "ours_click_sam_choice_p95_ms": pct(sam_choice_click, 95),
        "plain_click_p50_ms": pct(plain_click, 50),
        "plain_click_p95_ms": pct(plain_click, 95),
        "ours_new_image_p50_ms": pct(ours_set, 50),
        "ours_new_image_sam_only_p50_ms": pct(ours_sam_only, 50),
        "plain_set_image_p50_ms": pct(plain_set, 50),
        "ours_switch_back_p50_ms": pct(ours_switch, 50),
        "plain_switch_back_p50_ms": pct(plain_set, 50),
    }
    print(f"MobileSAM on CPU ({figures['threads']} threads), {len(images)} COCO photos, {len(ours_click)} clicks")
    print(f"ours: {figures['backend_detail']}; plain: {figures['plain_backend']}")
    print(f"vocabulary {figures['vocabulary']}")
    print(f"{'':28}{'ours':>14}{'plain SamPredictor':>22}")
    print(f"{'click p50 (ms)':28}{figures['ours_click_p50_ms']:>14.1f}{figures['plain_click_p50_ms']:>22.1f}")
    print(f"{'click p95 (ms)':28}{figures['ours_click_p95_ms']:>14.1f}{figures['plain_click_p95_ms']:>22.1f}")
    print(
        f"{'  with margin 0 (SAM choice)':28}{figures['ours_click_sam_choice_p50_ms']:>8.1f} / "
        f"{figures['ours_click_sam_choice_p95_ms']:.1f}   (p50 / p95; default margin {engine.candidate_margin})"
    )
    print(f"{'  ours = mask + top-5 labels; plain = mask only':28}")
    print(
        f"{'new image p50 (ms)':28}{figures['ours_new_image_p50_ms']:>14.1f}{figures['plain_set_image_p50_ms']:>22.1f}"
    )
    print(
        f"{'switch back p50 (ms)':28}{figures['ours_switch_back_p50_ms']:>14.1f}{figures['plain_switch_back_p50_ms']:>22.1f}"
    )
    print(f"{'  SAM only (the mask waits)':28}{figures['ours_new_image_sam_only_p50_ms']:>14.1f}")
    ratio = figures["ours_new_image_p50_ms"] / figures["plain_set_image_p50_ms"]
    print(f"new image: ours / plain = {ratio:.2f} (goal <= 0.50)")
    figures["new_image_ratio"] = ratio
    figures["new_image_sam_only_ratio"] = figures["ours_new_image_sam_only_p50_ms"] / figures["plain_set_image_p50_ms"]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(main())
