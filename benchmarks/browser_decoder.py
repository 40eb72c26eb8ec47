"""Weighing segment-anything's web-demo design against ours, in the same browser and run.

    python benchmarks/browser_decoder.py --images ../shared/data/coco_tiny_val/images \\
        --gt ../shared/data/coco_tiny_val/instances.json --photos 5 --clicks 6

The web demo of segment-anything computes the image embedding on a server and runs SAM's
prompt encoder + mask decoder in the browser with onnxruntime-web (WebAssembly), so a click
needs no round trip. Ours sends the click to the server. Both are timed inside one Chromium
page served by our app, on the same clicks (the interior point of a ground-truth instance
farthest from its boundary), from the start of the work to the mask in an RGBA layer ready to
draw (the drawing itself costs the same either way):

- in the browser: MobileSAM's decoder exported to ONNX with segment-anything's own
  ``SamOnnxModel`` (``return_single_mask``, mask upsampled to the image as the demo does),
  onnxruntime-web's WASM backend on 2 threads (the page is cross-origin isolated), then the
  logits thresholded into the layer;
- round trip: ``POST /ovsam/api/click`` to our server (decode, RLE, outline), then the RLE
  painted into the layer with the page's own code.

Masks only on both sides (no labels: an in-browser decoder still needs the server for them).
Needs ``onnx`` (pip) and onnxruntime-web (npm): ``--ort-dist`` names its ``dist`` folder; by
default ``npm install onnxruntime-web`` into ``.cache/onnxruntime-web`` is run once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from chromium import CHROMIUM, launch  # benchmarks/chromium.py, beside this script

from annotator.engine import Engine
from annotator.evaluation import farthest_interior_point
from annotator.sam import load_sam
from annotator.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
ORT_VERSION = "1.30.0"

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/ortbench/ort.min.js"></script>
<script type="module" src="/ovsam/static/js/main.js"></script></head><body>
<script>
window.bench = async function (photos, threads) {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = "/ortbench/";
  const t0 = performance.now();
  const session = await ort.InferenceSession.create("/ortbench/decoder.onnx", { executionProviders: ["wasm"] });
  const out = { load_ms: performance.now() - t0, isolated: self.crossOriginIsolated, browser: [], server: [], embedding_ms: [] };
  for (const ph of photos) {
    const e0 = performance.now();
    const buf = await (await fetch("/ortbench/" + ph.embedding)).arrayBuffer();
    out.embedding_ms.push(performance.now() - e0);
    const emb = new ort.Tensor("float32", new Float32Array(buf), [1, 256, 64, 64]);
    const scale = 1024 / Math.max(ph.width, ph.height);
    const layer = new Uint8ClampedArray(ph.width * ph.height * 4);
    await fetch("/ovsam/api/open", { method: "POST", headers: { "Content-Type": "application/json" },
                                     body: JSON.stringify({ session: "bench", key: ph.key }) });
    for (const [x, y] of ph.points) {
      // in the browser, as segment-anything's demo feeds its decoder (a padding point, label -1)
      let s = performance.now();
      const feeds = {
        image_embeddings: emb,
        point_coords: new ort.Tensor("float32", new Float32Array([x * scale, y * scale, 0, 0]), [1, 2, 2]),
        point_labels: new ort.Tensor("float32", new Float32Array([1, -1]), [1, 2]),
        mask_input: new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
        has_mask_input: new ort.Tensor("float32", new Float32Array([0]), [1]),
        orig_im_size: new ort.Tensor("float32", new Float32Array([ph.height, ph.width]), [2]),
      };
      const res = await session.run(feeds);
      const m = res.masks.data;
      for (let i = 0; i < m.length; i++) if (m[i] > 0) { const o = i * 4; layer[o] = 30; layer[o + 1] = 144; layer[o + 2] = 255; layer[o + 3] = 255; }
      const bArea = m.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);
      out.browser.push(performance.now() - s);
      // the round trip: a fresh one-point prompt on our server, painted by the page's code
      await fetch("/ovsam/api/clear", { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ session: "bench" }) });
      s = performance.now();
      const r = await (await fetch("/ovsam/api/click", { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify({ session: "bench", x, y, positive: true }) })).json();
      OVSAM.paintRuns(layer, ph.width, ph.height, OVSAM.rleCounts(r.mask.rle.counts), [30, 144, 255]);
      out.server.push(performance.now() - s);
      ph.areas = (ph.areas || []).concat([[bArea, r.area]]);
    }
  }
  out.areas = photos.map((p) => p.areas);
  return out;
};
</script></body></html>"""


class _Isolated:
    """ASGI wrapper adding the headers that make a page cross-origin isolated (WASM threads)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] += [
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-embedder-policy", b"require-corp"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def ort_dist(path: str | None) -> Path:
    if path:
        return Path(path)
    cache = ROOT / ".cache" / "onnxruntime-web"
    dist = cache / "node_modules" / "onnxruntime-web" / "dist"
    if not dist.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(cache), f"onnxruntime-web@{ORT_VERSION}"], check=True
        )
    return dist


def export_decoder(sam, out: Path) -> int:
    """MobileSAM's prompt encoder + mask decoder as ONNX, the way segment-anything's export script does."""
    from mobile_sam.utils.onnx import SamOnnxModel

    model = SamOnnxModel(sam, return_single_mask=True)
    dummy = {
        "image_embeddings": torch.randn(1, 256, 64, 64),
        "point_coords": torch.randint(0, 1024, (1, 2, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, 2), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 256, 256),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([480, 640], dtype=torch.float),
    }
    torch.onnx.export(
        model,
        tuple(dummy.values()),
        str(out),
        input_names=list(dummy),
        output_names=["masks", "iou_predictions", "low_res_masks"],
        dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    return out.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime-web WASM threads")
    ap.add_argument("--ort-dist", help="onnxruntime-web's dist folder")
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--json")
    args = ap.parse_args()

    from ovsam_app.page import Server, build_app
    from playwright.sync_api import sync_playwright
    from pycocotools.coco import COCO
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    torch.set_grad_enabled(False)
    coco = COCO(args.gt)
    work = Path(tempfile.mkdtemp(prefix="ovsam-decoder-bench-"))
    static, folder = work / "static", work / "photos"
    static.mkdir()
    folder.mkdir()
    dist = ort_dist(args.ort_dist)
    for f in [
        dist / "ort.min.js",
        *dist.glob("ort-wasm-simd-threaded*.wasm"),
        *dist.glob("ort-wasm-simd-threaded*.mjs"),
    ]:
        shutil.copy(f, static / f.name)
    (static / "index.html").write_text(PAGE)
    sam = load_sam("vit_t", device="cpu")
    model_bytes = export_decoder(sam, static / "decoder.onnx")
    engine = Engine(sam)
    photos = []
    for img_id in sorted(coco.getImgIds()):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False)) if a["area"] > 0]
        if len(anns) < args.clicks:
            continue
        info = coco.loadImgs(img_id)[0]
        shutil.copy(Path(args.images) / info["file_name"], folder / info["file_name"])
        points = [farthest_interior_point(coco.annToMask(a).astype(bool)) for a in anns[: args.clicks]]
        photos.append({"key": info["file_name"], "width": info["width"], "height": info["height"], "points": points})
        if len(photos) == args.photos:
            break
    ws = Workspace.open_folder(engine, folder, work / "out")
    for ph in photos:  # the server's part of the demo's design: the embedding, sent as float32
        emb = engine.decoder.encode(ws.load(ph["key"])).image_embedding
        ph["embedding"] = ph["key"] + ".f32"
        (static / ph["embedding"]).write_bytes(emb.float().contiguous().numpy().tobytes())
        engine.embed(ws.load(ph["key"]))  # cached for the round trip's clicks
    app = build_app(ws, prefetch=0)
    app.router.routes.insert(0, Mount("/ortbench", app=_Isolated(StaticFiles(directory=static))))
    server = Server(ws, port=7862, app=app)
    try:
        with sync_playwright() as p:
            browser = launch(p, args.chromium)
            page = browser.new_page()
            page.goto(server.url + "/ortbench/index.html")
            page.wait_for_function(
                "() => typeof window.bench === 'function' && typeof ort === 'object' && typeof OVSAM === 'object'"
            )
            out = page.evaluate("([photos, threads]) => bench(photos, threads)", [photos, args.threads])
            version = browser.version
            browser.close()
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)

    first = args.clicks  # the first photo's clicks warm both paths up
    b, s = out["browser"][first:], out["server"][first:]
    agree = [min(a) / max(a) for areas in out["areas"] for a in areas if max(a) > 0]
    figures = {
        "browser": f"Chromium {version}, cross-origin isolated: {out['isolated']}",
        "onnxruntime_web": ORT_VERSION,
        "wasm_threads": args.threads,
        "decoder_onnx_bytes": model_bytes,
        "session_load_ms": out["load_ms"],
        "embedding_transfer_p50_ms": float(np.median(out["embedding_ms"])),
        "clicks": len(b),
        "in_browser_p50_ms": float(np.median(b)),
        "in_browser_p95_ms": float(np.percentile(b, 95)),
        "round_trip_p50_ms": float(np.median(s)),
        "round_trip_p95_ms": float(np.percentile(s, 95)),
        "mask_area_ratio_p50": float(np.median(agree)),
    }
    print(f"{figures['browser']}; onnxruntime-web {ORT_VERSION}, {args.threads} WASM threads")
    print(f"decoder.onnx {model_bytes / 1e6:.1f} MB, session load {out['load_ms']:.0f} ms, "
          f"embedding download {figures['embedding_transfer_p50_ms']:.0f} ms per image (4 MB)")  # fmt: skip
    print(f"{len(b)} clicks (after {first} warm-up clicks), mask ready in an RGBA layer:")
    print(f"{'':32}{'p50 (ms)':>10}{'p95 (ms)':>10}")
    print(
        f"{'decoder in the browser (WASM)':32}{figures['in_browser_p50_ms']:>10.1f}{figures['in_browser_p95_ms']:>10.1f}"
    )
    print(f"{'round trip to our server':32}{figures['round_trip_p50_ms']:>10.1f}{figures['round_trip_p95_ms']:>10.1f}")
    print(f"mask areas agree (smaller / larger, median): {figures['mask_area_ratio_p50']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(main())
