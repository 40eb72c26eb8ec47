"""The annotation store as it grows: accept and image-open times at 0, 10k and 100k annotations.

    python benchmarks/store.py --gt ../shared/data/coco_tiny_val/instances.json [--sizes 0 10000 100000]
        [--accepts 30] [--postgres URL] [--json OUT]

Each store is filled with the real COCO masks of ``--gt`` (cycled over synthetic image keys, 100
masks an image), then ``--accepts`` single-mask accepts are timed, as the page makes them
(``add_instances`` with a request id, then the image's count for the list), and as many image
opens (remember it as the last image, read its annotations). In the same run, the reference:
the JSON store this one replaced (``annotator/store.py`` of commit ``REFERENCE_COMMIT``, read
from git), which rewrites its whole file on every change. Goal (issue 27): accept p50 at 100k
≤ 1.2 × at 0. Prints one table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycocotools.coco import COCO  # noqa: E402
from reference import module_at  # noqa: E402  benchmarks/reference.py, beside this script

from annotator.instances import Instances, Source  # noqa: E402
from annotator.store import AnnotationStore  # noqa: E402

REFERENCE_COMMIT = "a295d43"
PER_IMAGE = 100


def reference_store_class():
    """The JSON store of :data:`REFERENCE_COMMIT` (``annotator/store.py``), loaded as a module
    of the package so that its relative imports resolve."""
    return module_at(REFERENCE_COMMIT, "annotator/store.py", "_json_store_reference").AnnotationStore


def coco_masks(gt: COCO) -> list[tuple[dict, str]]:
    """(RLE, class name) of every non-crowd instance, as pycocotools encodes it (counts: str)."""
    out = []
    for ann in gt.loadAnns(gt.getAnnIds(iscrowd=False)):
        info = gt.loadImgs(ann["image_id"])[0]
        rle = gt.annToRLE(ann)
        if isinstance(rle["counts"], bytes):
            rle = {"size": rle["size"], "counts": rle["counts"].decode()}
        if info["height"] and rle["size"] == [info["height"], info["width"]]:
            out.append((rle, gt.loadCats(ann["category_id"])[0]["name"]))
    return out


def one(rle: dict, name: str) -> Instances:
    return Instances([rle], image_size=tuple(rle["size"]), class_names=[name], source=Source.CLICK)


def fill(store, masks: list[tuple[dict, str]], n: int, reference: bool) -> None:
    """``n`` annotations over ``n / PER_IMAGE`` synthetic images (masks cycled)."""
    if reference:
        for i in range(n):
            rle, name = masks[i % len(masks)]
            store.add(f"img{i // PER_IMAGE:05d}.jpg", rle, name, save=False)
        store.save()
        return
    with store.batch():
        for start in range(0, n, PER_IMAGE):
            batch = [masks[(start + k) % len(masks)] for k in range(min(PER_IMAGE, n - start))]
            sizes = {tuple(r["size"]) for r, _ in batch}
            for size in sizes:  # an image's masks share its size
                part = [(r, c) for r, c in batch if tuple(r["size"]) == size]
                inst = Instances([r for r, _ in part], image_size=size, class_names=[c for _, c in part])
                store.add_instances(f"img{start // PER_IMAGE:05d}.jpg", inst)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure(make, masks, size: int, accepts: int, reference: bool) -> dict:
    t0 = time.perf_counter()
    store = make()
    fill(store, masks, size, reference)
    if not reference and store.path is not None:  # the fill's one big transaction, checkpointed as
        with store.engine.connect() as conn:  # SQLite would do over the next commits: a steady state
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = make()  # opened again, as a restart would
    open_store_ms = (time.perf_counter() - t0) * 1000
    key = "new-image.jpg"

    def accept(i: int) -> None:  # what Tab.accept and the answer's image-list row cost the store
        rle, name = masks[i % len(masks)]
        if reference:
            store.add_instances(key, one(rle, name))
            store.counts()  # the reference counted every image for the row
        else:
            store.add_instances(key, one(rle, name), request_id=uuid.uuid4().hex)
            store.counts([key])

    def open_image(i: int) -> None:
        image = f"img{(i * 7) % max(1, size // PER_IMAGE):05d}.jpg"
        store.set_last_image(image)
        store.for_image(image)

    acc = timed(accept, accepts)
    opens = timed(open_image, accepts)
    return {
        "size": size,
        "fill_s": round(fill_s, 2),
        "open_store_ms": round(open_store_ms, 2),
        "accept_p50_ms": round(float(np.percentile(acc, 50)), 3),
        "accept_p95_ms": round(float(np.percentile(acc, 95)), 3),
        "image_open_p50_ms": round(float(np.percentile(opens, 50)), 3),
        "image_open_p95_ms": round(float(np.percentile(opens, 95)), 3),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", required=True, help="COCO instances JSON whose masks fill the stores")
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 10_000, 100_000])
    ap.add_argument("--accepts", type=int, default=30)
    ap.add_argument("--postgres", metavar="URL", help="also measure this PostgreSQL database")
    ap.add_argument("--no-reference", action="store_true", help="skip the JSON store of before")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    masks = coco_masks(COCO(args.gt))
    scratch = Path(tempfile.mkdtemp(prefix="store_bench_"))
    kinds = {"sqlite": None}
    if args.postgres:
        kinds["postgres"] = args.postgres
    if not args.no_reference:
        kinds["json (reference)"] = "json"
    Reference = None if args.no_reference else reference_store_class()
    rows = []
    for kind, target in kinds.items():
        for size in args.sizes:
            name = f"bench{size}-{uuid.uuid4().hex[:6]}"
            if target == "json":
                path = scratch / f"{name}.annotations.json"
                row = measure(lambda p=path: Reference(p), masks, size, args.accepts, reference=True)
            else:
                db = target or scratch / f"{name}.annotations.db"
                row = measure(lambda d=db, n=name: AnnotationStore(d, n), masks, size, args.accepts, reference=False)
            row["store"] = kind
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nCPU: {cpu_name()}; {args.accepts} accepts and image opens per size")
    print(f"{'store':18} {'annotations':>11} {'open store':>11} {'accept p50':>11} {'p95':>9} {'image open p50':>15}")
    for r in rows:
        print(
            f"{r['store']:18} {r['size']:>11,} {r['open_store_ms']:>9.1f}ms {r['accept_p50_ms']:>9.2f}ms "
            f"{r['accept_p95_ms']:>7.2f}ms {r['image_open_p50_ms']:>13.2f}ms"
        )
    for kind in kinds:
        mine = [r for r in rows if r["store"] == kind]
        if len(mine) > 1 and mine[0]["accept_p50_ms"] > 0:
            ratio = mine[-1]["accept_p50_ms"] / mine[0]["accept_p50_ms"]
            goal = "meets" if ratio <= 1.2 else "misses"
            print(f"{kind}: accept p50 at {mine[-1]['size']:,} = {ratio:.2f} × at {mine[0]['size']:,} ({goal} ≤ 1.2)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
