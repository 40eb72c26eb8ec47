"""Pushing to Label Studio: images per second, upload vs local-files, brush vs polygon regions.

    LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=<personal access token> \\
    python benchmarks/push_label_studio.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --limit 80 --document-root ../shared

Needs a running server (for local-files: started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = ``--document-root``, a parent of ``--images``).
The annotation store is built from the ground-truth masks of the first ``--limit`` photos (what
is timed is the transfer, not the model); each variant goes to a new project.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from pycocotools.coco import COCO  # noqa: E402

from annotator.formats.label_studio import ENV_API_KEY, ENV_URL, PushConfig, push_folder  # noqa: E402
from annotator.store import AnnotationStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True, help="COCO instances JSON of --images")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--document-root", help="the server's local-files document root (omit: no local-files runs)")
    args = ap.parse_args()
    url, token = os.environ.get(ENV_URL, "http://localhost:8080"), os.environ[ENV_API_KEY]

    gt = COCO(args.gt)
    scratch = Path(tempfile.mkdtemp(prefix="push_bench_"))
    store = AnnotationStore(scratch / "store.annotations.db")
    for img_id in sorted(gt.getImgIds())[: args.limit]:
        info = gt.loadImgs(img_id)[0]
        for ann in gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = gt.annToMask(ann).astype(bool)
            if mask.any():
                store.add(info["file_name"], mask, gt.loadCats(ann["category_id"])[0]["name"])
    n, regions = len(store.images), len(store.annotations)
    print(f"{n} images, {regions} masks")
    modes = ["upload"] + (["local-files"] if args.document_root else [])
    stamp = time.strftime("%H%M%S")
    for images in modes:
        for region_type in ("brush", "polygon"):
            config = PushConfig(
                url, token, project_title=f"bench {images} {region_type} {stamp}", images=images,
                document_root=Path(args.document_root) if args.document_root else None, region_type=region_type,
            )  # fmt: skip
            summary = push_folder(store, args.images, config, scratch / f"{images}-{region_type}.jsonl")
            assert summary.predictions_created == n
            print(f"{images:12} {region_type:8} {summary.seconds:6.1f} s  {n / summary.seconds:5.1f} images/s  "
                  f"{summary.regions} regions  project {summary.project_url}")  # fmt: skip
            again = push_folder(store, args.images, config, scratch / f"{images}-{region_type}.jsonl")
            print(f"{'':12} {'rerun':8} {again.seconds:6.1f} s  ({again.already_pushed} already there)")


if __name__ == "__main__":
    main()
