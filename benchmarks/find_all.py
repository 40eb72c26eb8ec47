"""Find all: what a person waits for after typing classes, against the everything pass (the
reference, same photos, same run).

    python benchmarks/find_all.py --images ../shared/data/coco_tiny_val/images --limit 5 \\
        --classes "person, car, dog, zebra crossing"

Per photo, through the page's API (:class:`app.api.PageAPI`, mask payloads included), interleaved:

- ``everything``: the everything pass the page runs (the reference: what a find-all costs at most
  beyond the labelling);
- ``find, fresh``: find-all on a photo never segmented (SAM patches, CLIP pooling, the pass);
- ``find, reused``: find-all again after the everything pass (its patches and region embeddings
  reused), as when the user segments first, or asks for other classes.

MobileSAM on the CPU; CLIP is a tiny random-weight RN (no CLIP weights reach this machine): the
times hold the real code paths, the labels are meaningless and are not reported. With random
text embeddings the share of regions a named class wins is not that of a real CLIP, so the
SAM-CP pass (which merges only kept regions) is timed at ``--threshold 0`` by default: every
region takes a named class, the slowest case of that pass.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import open_clip
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotator.clip_regions import ClipRegionEncoder, ClipSpec  # noqa: E402
from annotator.engine import Engine, engine_summary  # noqa: E402
from annotator.images import list_images  # noqa: E402
from annotator.sam import load_sam  # noqa: E402
from annotator.text_prompts import parse_classes  # noqa: E402
from annotator.vocabulary import load_vocabulary  # noqa: E402
from annotator.workspace import Workspace  # noqa: E402
from app.api import PageAPI  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--classes", default="person, car, dog, zebra crossing")
    ap.add_argument("--threshold", type=float, default=0.0)
    ap.add_argument("--method", default="samcp", choices=["samcp", "possam", "patches"])
    ap.add_argument("--vocab", default="coco")
    args = ap.parse_args()

    for cfg in (ROOT / "tests" / "assets").glob("tiny_*_clip.json"):
        open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        clip = ClipRegionEncoder(ClipSpec("tiny_rn_clip", None, 672), "cpu", cache_dir=Path(tmp) / "clip")
        engine = Engine(load_sam("vit_t", device="cpu"), clip, load_vocabulary(args.vocab))
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for path in list_images(Path(args.images))[: args.limit]:
            shutil.copy(path, folder / path.name)
        ws = Workspace.open_folder(engine, folder, Path(tmp) / "out")
        summary = engine_summary(engine)
        api = PageAPI(ws, prefetch=0)
        classes = parse_classes(args.classes)
        rows: dict[str, list[float]] = {"everything": [], "find, fresh": [], "find, reused": []}
        found = {"find, fresh": [], "find, reused": []}
        for key in ws.keys:
            api.open("bench", key)  # image encoders: not timed, the same for all three
            t0 = time.perf_counter()
            r = api.find("bench", classes, args.threshold, args.method, key)
            rows["find, fresh"].append(time.perf_counter() - t0)
            found["find, fresh"].append(len(r["found"]))
            engine.clear_cache()  # the next pass starts without patches again
            api.open("bench", key)
            t0 = time.perf_counter()
            everything = api.everything("bench", args.method)
            rows["everything"].append(time.perf_counter() - t0)
            for ann in everything["annotations"]:
                ws.store.delete(ann["id"])
            t0 = time.perf_counter()
            r = api.find("bench", classes, args.threshold, args.method, key)
            assert r["reused_patches"]
            rows["find, reused"].append(time.perf_counter() - t0)
            found["find, reused"].append(len(r["found"]))
            engine.clear_cache()
        ws.close()
    print(f"{len(rows['everything'])} photos, {args.method}, classes: {', '.join(classes)}, threshold {args.threshold}")
    print(f"engine: {summary}")
    print(f"{'':14} {'median s':>9} {'mean s':>8} {'vs everything':>14} {'candidates/photo':>17}")
    ref = statistics.median(rows["everything"])
    for name, values in rows.items():
        med = statistics.median(values)
        cands = f"{statistics.mean(found[name]):.0f}" if name in found else ""
        print(f"{name:14} {med:9.2f} {statistics.mean(values):8.2f} {med / ref:13.2f}x {cands:>17}")


if __name__ == "__main__":
    main()
