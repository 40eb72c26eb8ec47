"""The reference everything-mode masks, cached on disk: ``SamAutomaticMaskGenerator`` (the MobileSAM
copy of segment-anything's) run once per photo and settings.

The reference costs ~3 min a photo on a 2-core CPU, so ``benchmarks/everything.py`` reads its
masks from ``.cache/everything-reference/`` (git-ignored) when they are there. An entry is keyed by
the photo's file name and bytes (sha256), the generator's settings and the SAM weights (sha256 of
the ``state_dict``); any change computes it again. Each entry keeps the masks as COCO RLE, their
predicted IoU and stability score, and the seconds ``generate`` took (image encoder included) on the
machine that computed it, with that machine's thread count.

    python benchmarks/reference_masks.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annotator.backends import weights_sha256
from annotator.fileio import atomic_write_json
from annotator.images import load_image
from annotator.masks import encode_rle

CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "everything-reference"


@dataclass(frozen=True)
class ReferenceMasks:
    """One photo's reference masks.

    Attributes:
        rles: COCO compressed RLEs (counts as str), in the generator's order.
        predicted_iou: (N,) float SAM predicted IoU of each mask.
        stability: (N,) float stability score of each mask.
        seconds: wall seconds of ``generate`` (image encoder included) when it was computed.
        threads: torch intra-op threads it ran with.
        cached: whether it came from the cache (False: computed in this run).
    """

    rles: list[dict]
    predicted_iou: np.ndarray
    stability: np.ndarray
    seconds: float
    threads: int
    cached: bool


def _key(image_path: Path, settings: dict, weights: str) -> str:
    h = hashlib.sha256()
    h.update(image_path.read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(weights.encode())
    return h.hexdigest()[:16]


def reference_masks(
    sam: torch.nn.Module, image_path: Path, points_per_side: int = 32, weights: str | None = None, compute: bool = True
) -> ReferenceMasks | None:
    """The reference generator's masks for one photo, from the cache or computed (and cached).

    Args:
        sam: a MobileSAM ``Sam`` module (CPU or CUDA).
        image_path: the photo.
        points_per_side: the generator's grid (its default is 32); its other settings are the
            generator's defaults.
        weights: ``weights_sha256(sam)`` if already known (it takes ~0.1 s).
        compute: compute (and cache) the masks when they are not cached.
    Returns:
        :class:`ReferenceMasks`, or ``None`` when not cached and ``compute`` is False.
    """
    from mobile_sam import SamAutomaticMaskGenerator

    settings = {"generator": "mobile_sam.SamAutomaticMaskGenerator", "points_per_side": points_per_side}
    key = _key(image_path, settings, weights or weights_sha256(sam))
    path = CACHE_DIR / f"{image_path.stem}-{key}.json"
    cached = path.exists()
    if cached:
        data = json.loads(path.read_text())
    elif not compute:
        return None
    else:
        image = load_image(image_path)
        generator = SamAutomaticMaskGenerator(sam, points_per_side=points_per_side)
        start = time.perf_counter()
        with torch.inference_mode():
            out = generator.generate(image)
        data = {
            "image": image_path.name,
            "settings": settings,
            "rles": [encode_rle(r["segmentation"]) for r in out],
            "predicted_iou": [float(r["predicted_iou"]) for r in out],
            "stability": [float(r["stability_score"]) for r in out],
            "seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads(),
        }
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
    return ReferenceMasks(
        data["rles"],
        np.array(data["predicted_iou"], np.float32),
        np.array(data["stability"], np.float32),
        data["seconds"],
        data["threads"],
        cached=cached,
    )


def main() -> int:
    import contextlib
    import io

    from pycocotools.coco import COCO

    from annotator.sam import load_sam

    ap = argparse.ArgumentParser(description="Fill the reference masks' cache.")
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--grid", type=int, default=32)
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.gt)
    sam = load_sam("vit_t", device="cpu")
    weights = weights_sha256(sam)
    for img_id in sorted(coco.getImgIds())[: args.limit]:
        name = coco.loadImgs(img_id)[0]["file_name"]
        ref = reference_masks(sam, Path(args.images) / name, args.grid, weights)
        print(f"{name}: {len(ref.rles)} masks, {ref.seconds:.1f} s{' (cached)' if ref.cached else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
