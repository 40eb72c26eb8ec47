"""Bulk auto-annotation: images per minute, and the cost of resuming after a kill.

    python benchmarks/bulk.py --images ../shared/data/coco_tiny_val/images --limit 80

Copies the first ``--limit`` photos to a scratch folder, then (MobileSAM on the CPU, no CLIP):
1. an uninterrupted ``python -m annotator annotate`` run: wall time and images per minute;
2. a second run into a fresh output folder, killed (SIGKILL) once half the images are journalled,
   then started again: total wall time of both parts;
3. whether the two runs' COCO exports hold the same annotations (ids and dates aside).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cmd(folder: Path, out: Path, method: str) -> list[str]:
    return [sys.executable, "-m", "annotator", "annotate", str(folder), "--out", str(out), "--clip", "none",
            "--method", method]  # fmt: skip


def _canonical(path: Path) -> list:
    data = json.loads(path.read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    files = {im["id"]: im["file_name"] for im in data["images"]}
    return sorted(
        (files[a["image_id"]], cats[a["category_id"]], a["segmentation"]["counts"]) for a in data["annotations"]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--method", default="samcp")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in sorted(Path(args.images).glob("*.jpg"))[: args.limit]:
            shutil.copy(p, folder / p.name)
        n = len(list(folder.iterdir()))

        start = time.perf_counter()
        subprocess.run(_cmd(folder, Path(tmp) / "whole", args.method), cwd=ROOT, check=True, capture_output=True)
        whole = time.perf_counter() - start

        out = Path(tmp) / "resumed"
        journal = out / "photos.journal.jsonl"
        start = time.perf_counter()
        proc = subprocess.Popen(_cmd(folder, out, args.method), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        while proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= n // 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
        killed_after = time.perf_counter() - start
        done_before = len(journal.read_text().splitlines())
        start = time.perf_counter()
        subprocess.run(_cmd(folder, out, args.method), cwd=ROOT, check=True, capture_output=True)
        rest = time.perf_counter() - start
        same = _canonical(out / "photos_coco.json") == _canonical(Path(tmp) / "whole" / "photos_coco.json")

    print(f"{n} COCO photos, MobileSAM on CPU, everything pass '{args.method}', no CLIP")
    print(f"uninterrupted: {whole:.0f} s, {60 * n / whole:.1f} images/min (incl. model loading)")
    print(f"killed after {done_before} images ({killed_after:.0f} s), restarted: {rest:.0f} s more;")
    print(f"  total {killed_after + rest:.0f} s = {100 * (killed_after + rest) / whole - 100:+.1f} % vs uninterrupted")
    print(f"same annotations as the uninterrupted run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
