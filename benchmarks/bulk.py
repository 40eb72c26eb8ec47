"""Bulk auto-annotation: images per minute, what Ray adds, and the cost of resuming after a kill.

    python benchmarks/bulk.py --images ../shared/data/coco_tiny_val/images --limit 80
    python benchmarks/bulk.py --images ../shared/data/coco_tiny_val/images --limit 40 --ray

Copies the first ``--limit`` photos to a scratch folder, then (MobileSAM, no CLIP; on CUDA
when there is a GPU, and then photos/s per GPU are printed too) times
``python -m annotator annotate`` runs on them, one after another in the same run:

- default: one uninterrupted run per ``--configs`` entry (``--backend torch``, ``--precision
  f32``, ``--precision auto``: eager torch, the exported encoder in f32, and the CPU default,
  which on a CPU with AMX or AVX-512 BF16 runs SAM's encoder in bf16);
- ``--ray``: the single-process run, then the same command on a local Ray with one two-core
  engine actor (``--ray --workers 1 --threads 2``: the single-process run's shape, so the
  difference is what Ray adds), then with ``--ray`` alone (its default plan: one one-core
  actor per core).

For each run: wall time, images per minute, the time to the first journalled image (start-up:
model loading, and for Ray the cluster and its actors) and the steady pace between the first and
the last journalled image, and how many annotations equal the first run's (same mask RLE and
label).  The steady pace minus the single-process run's is what Ray adds per image.

Then, with the last run's command, a run into a fresh output folder is killed (SIGKILL) once half
the images are journalled and started again: total wall time of both parts, and whether its COCO
export holds the same annotations as that command's uninterrupted run.

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


def _canonical(path: Path) -> list:
    data = json.loads(path.read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    files = {im["id"]: im["file_name"] for im in data["images"]}
    return sorted(
        (files[a["image_id"]], cats[a["category_id"]], a["segmentation"]["counts"]) for a in data["annotations"]
    )


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def timed_run(cmd: list[str], journal: Path, kill_at: int | None = None) -> dict:
    """Run ``cmd``, watching ``journal``: wall seconds, seconds to each new line, return code.
    With ``kill_at``, SIGKILL the process once that many lines are journalled."""
    start = time.perf_counter()
    arrivals: list[float] = []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        n = _lines(journal)
        arrivals += [time.perf_counter() - start] * (n - len(arrivals))
        if kill_at is not None and n >= kill_at:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    arrivals += [wall] * (_lines(journal) - len(arrivals))
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"wall": wall, "arrivals": arrivals}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--method", default="samcp")
    ap.add_argument(
        "--configs",
        default="--backend torch,--precision f32,--precision auto",
        help="comma-separated engine options to compare, one run each",
    )
    ap.add_argument("--ray", action="store_true", help="compare the single-process run with --ray runs instead")
    args = ap.parse_args()

    from annotator.backends import cpu_summary
    from annotator.engine import EngineConfig, build_engine

    if args.ray:
        runs = {"single process": [], "--ray --workers 1 --threads 2": ["--ray", "--workers", "1", "--threads", "2"], "--ray": ["--ray"]}  # fmt: skip
    else:
        runs = {c.strip(): c.split() for c in args.configs.split(",")}
    for extra in runs.values():  # export and check (once per machine) before timing
        options = dict(zip(extra[::2], extra[1::2], strict=False))
        build_engine(
            EngineConfig(
                clip_model="none",
                vocab="coco",
                device="cpu",
                backend=options.get("--backend", "auto"),
                precision=options.get("--precision", "auto"),
            )
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in sorted(Path(args.images).glob("*.jpg"))[: args.limit]:
            shutil.copy(p, folder / p.name)
        n = len(list(folder.iterdir()))

        def cmd(out: Path, extra: list[str]) -> list[str]:
            return [sys.executable, "-m", "annotator", "annotate", str(folder), "--out", str(out), "--clip", "none",
                    "--method", args.method, *extra]  # fmt: skip

        results, exports = {}, {}
        for i, (name, extra) in enumerate(runs.items()):
            out = Path(tmp) / f"run{i}"
            results[name] = timed_run(cmd(out, extra), out / "photos.journal.jsonl")
            exports[name] = _canonical(out / "photos_coco.json")

        name, extra = list(runs.items())[-1]
        out = Path(tmp) / "resumed"
        journal = out / "photos.journal.jsonl"
        killed = timed_run(cmd(out, extra), journal, kill_at=n // 2)
        done_before = _lines(journal)
        rest = timed_run(cmd(out, extra), journal)
        same = _canonical(out / "photos_coco.json") == exports[name]

    import torch

    gpus = torch.cuda.device_count()
    where = f"{gpus} GPU(s)" if gpus else "CPU"
    print(f"{n} COCO photos, MobileSAM on {where} ({cpu_summary()}), everything pass '{args.method}', no CLIP")
    ref = next(iter(runs))
    steady = {}
    for run, r in results.items():
        first, last = r["arrivals"][0], r["arrivals"][-1]
        steady[run] = (last - first) / max(1, len(r["arrivals"]) - 1)
        shared = len(set(exports[run]) & set(exports[ref]))
        print(
            f"{run}: {r['wall']:.0f} s, {60 * n / r['wall']:.1f} images/min (incl. start-up); first image "
            f"journalled at {first:.1f} s, then {steady[run]:.2f} s/image ({60 / steady[run]:.1f} images/min); "
            f"{len(exports[run])} annotations, {shared} identical to {ref}'s {len(exports[ref])}"
        )
    for run in list(runs)[1:]:
        added = steady[run] - steady[ref]
        start_up = results[run]["arrivals"][0] - results[ref]["arrivals"][0]
        print(f"{run} vs {ref}: {added:+.2f} s per image in steady state ({100 * added / steady[ref]:+.1f} %), "
              f"{start_up:+.1f} s to the first image")  # fmt: skip
    if gpus and args.ray:  # the default plan: one actor per GPU
        r = results["--ray"]
        print(f"--ray: {1 / steady['--ray'] / gpus:.2f} photos/s per GPU in steady state, "
              f"{n / r['wall'] / gpus:.2f} including start-up")  # fmt: skip
    whole = results[name]["wall"]
    total = killed["wall"] + rest["wall"]
    print(f"resume test with {name}:")
    print(f"  killed after {done_before} images ({killed['wall']:.0f} s), restarted: {rest['wall']:.0f} s more;")
    print(f"  total {total:.0f} s = {100 * total / whole - 100:+.1f} % vs uninterrupted")
    print(f"  same annotations as the uninterrupted run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
