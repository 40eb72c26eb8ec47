"""Import of a large COCO file into a folder's store: the time of ``ovsam import``'s work.

    python benchmarks/import_bench.py --images ../shared/data/coco_tiny_val/images
        --gt ../shared/data/coco_tiny_val/instances.json [--annotations 10000] [--postgres URL] [--json OUT]

The ground truth's instances (polygons, RLE and crowd) are repeated over its images with new ids
until the file holds ``--annotations`` of them; the file is then imported into a new SQLite
store (and a PostgreSQL one with ``--postgres``) by :func:`annotator.importer.import_annotations`:
read, images matched and size-checked, classes checked, written in one transaction. In the same
run, the reference: pycocotools reading the same file (``COCO(path)``) and encoding every mask
(``annToRLE``), the least any importer of COCO masks does. Prints one table; ``--json`` writes
the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycocotools.coco import COCO  # noqa: E402

from annotator.importer import import_annotations  # noqa: E402
from annotator.store import AnnotationStore  # noqa: E402


def inflated(gt: dict, n: int) -> dict:
    """``gt`` with its annotations repeated (new ids) until there are ``n``."""
    anns, base = [], gt["annotations"]
    for i in range(n):
        ann = dict(base[i % len(base)])
        ann["id"] = i + 1
        anns.append(ann)
    return {**gt, "annotations": anns}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--gt", required=True)
    parser.add_argument("--annotations", type=int, default=10_000)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ovsam_import_"))
    gt = json.loads(Path(args.gt).read_text())
    path = work / "big.json"
    path.write_text(json.dumps(inflated(gt, args.annotations)))

    t0 = time.perf_counter()
    coco = COCO(str(path))
    for ann in coco.dataset["annotations"]:
        coco.annToRLE(ann)
    reference_s = time.perf_counter() - t0

    rows = {}
    targets = [("SQLite", work / "store.annotations.db")] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    for name, database in targets:
        store = AnnotationStore(database, f"import-{uuid.uuid4().hex[:8]}")
        summary = import_annotations(store, args.images, path, "coco")
        assert summary.annotations == args.annotations, summary.report()
        rows[name] = {
            "annotations": summary.annotations,
            "seconds": round(summary.seconds, 2),
            "per_1000_s": round(summary.seconds / summary.annotations * 1000, 3),
            "x_reference": round(summary.seconds / reference_s, 2),
        }
        store.close()
    result = {
        "cpu": _cpu(),
        "annotations": args.annotations,
        "reference_pycocotools_s": round(reference_s, 2),
        "stores": rows,
    }
    print(f"CPU: {result['cpu']}; {args.annotations} annotations of {len(gt['images'])} images")
    print(f"reference, pycocotools COCO() + annToRLE of each: {reference_s:.2f} s")
    print(f"{'store':12} {'seconds':>8} {'s / 1000':>9} {'x reference':>12}")
    for name, row in rows.items():
        print(f"{name:12} {row['seconds']:8.2f} {row['per_1000_s']:9.3f} {row['x_reference']:12.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
