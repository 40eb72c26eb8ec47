"""Bulk auto-annotation: images per minute, and the cost of resuming after a kill.

    python benchmarks/bulk.py --images ../shared/data/coco_tiny_val/images --limit 80

Copies the first ``--limit`` photos to a scratch folder, then (MobileSAM on the CPU, no CLIP):
1. an uninterrupted ``python -m annotator annotate`` run per ``--backends`` entry (default
   ``torch,openvino``: before and after the exported encoder, same run): wall time, images per
   minute, and how many of the annotations equal the first backend's (same mask RLE and label);
2. with the last backend, a run into a fresh output folder, killed (SIGKILL) once half the images
   are journalled, then started again: total wall time of both parts;
3. whether the killed-and-resumed run's COCO export holds the same annotations as that
   backend's uninterrupted run (ids and dates aside).

Exported graphs are made before the clock starts (once per machine, kept in the checkpoints
folder), so the timings are those of every later run.
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


def _cmd(folder: Path, out: Path, method: str, backend: str) -> list[str]:
    return [sys.executable, "-m", "annotator", "annotate", str(folder), "--out", str(out), "--clip", "none",
            "--method", method, "--backend", backend]  # fmt: skip


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
    ap.add_argument("--backends", default="torch,openvino", help="comma-separated --backend values to compare")
    args = ap.parse_args()
    backends = args.backends.split(",")

    from annotator.engine import EngineConfig, build_engine

    for backend in backends:  # export (once per machine) before timing
        build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu", backend=backend))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in sorted(Path(args.images).glob("*.jpg"))[: args.limit]:
            shutil.copy(p, folder / p.name)
        n = len(list(folder.iterdir()))

        rate, exports = {}, {}
        for backend in backends:
            start = time.perf_counter()
            out = Path(tmp) / f"whole-{backend}"
            subprocess.run(_cmd(folder, out, args.method, backend), cwd=ROOT, check=True, capture_output=True)
            whole = time.perf_counter() - start
            rate[backend] = (whole, 60 * n / whole)
            exports[backend] = _canonical(out / "photos_coco.json")

        backend = backends[-1]
        out = Path(tmp) / "resumed"
        journal = out / "photos.journal.jsonl"
        start = time.perf_counter()
        proc = subprocess.Popen(_cmd(folder, out, args.method, backend), cwd=ROOT, stdout=subprocess.DEVNULL,
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
        subprocess.run(_cmd(folder, out, args.method, backend), cwd=ROOT, check=True, capture_output=True)
        rest = time.perf_counter() - start
        same = _canonical(out / "photos_coco.json") == exports[backend]

    print(f"{n} COCO photos, MobileSAM on CPU, everything pass '{args.method}', no CLIP")
    ref = backends[0]
    for b in backends:
        shared = len(set(exports[b]) & set(exports[ref]))
        print(
            f"--backend {b}: {rate[b][0]:.0f} s, {rate[b][1]:.1f} images/min (incl. model loading); "
            f"{len(exports[b])} annotations, {shared} identical to --backend {ref}'s {len(exports[ref])}"
        )
    if len(backends) > 1:
        print(f"speed-up {backends[-1]} / {ref}: {rate[backends[-1]][1] / rate[ref][1]:.2f}x")
    whole = rate[backend][0]
    print(f"resume test with --backend {backend}:")
    print(f"killed after {done_before} images ({killed_after:.0f} s), restarted: {rest:.0f} s more;")
    print(f"  total {killed_after + rest:.0f} s = {100 * (killed_after + rest) / whole - 100:+.1f} % vs uninterrupted")
    print(f"same annotations as the uninterrupted run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
