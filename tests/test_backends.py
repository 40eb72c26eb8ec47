"""CPU backends (OpenVINO, ONNX Runtime): graphs exported from the real weights give the masks
and labels of the torch path; exports are cached, verified, and refused when they differ."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from annotator.backends import BackendError, compile_module, resolve_backend, weights_sha256
from annotator.engine import Engine, EngineConfig, build_engine
from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.images import load_image
from annotator.vocabulary import load_vocabulary

from .conftest import instance_mask

RUNTIMES = ("openvino", "onnxruntime")


def test_resolve_backend():
    assert resolve_backend("auto", "cpu") == "openvino"  # both runtimes are installed; OpenVINO measured faster
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "cuda:1") == "torch"
    assert resolve_backend("onnxruntime", "cpu") == "onnxruntime"
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("openvino", "cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("tensorrt", "cpu")


def test_export_is_cached_keyed_by_weights_and_verified_once(sam_model, tmp_path):
    encoder = sam_model.image_encoder
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = encoder(x).numpy()
    graph = compile_module(encoder, torch.zeros(1, 3, 1024, 1024), "sam", "openvino", cache_dir=tmp_path)
    (onnx_path,) = tmp_path.glob("*.onnx")
    assert weights_sha256(encoder)[:16] in onnx_path.name
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert set(meta["verified"]) == {"openvino"} and meta["verified"]["openvino"]["max_abs_diff"] < 1e-4
    assert np.abs(graph(x.numpy()) - ref).max() < 1e-4
    stamp = onnx_path.stat().st_mtime_ns
    again = compile_module(encoder, torch.zeros(1, 3, 1024, 1024), "sam", "onnxruntime", cache_dir=tmp_path)
    assert onnx_path.stat().st_mtime_ns == stamp  # not exported again
    assert set(json.loads(onnx_path.with_suffix(".json").read_text())["verified"]) == {"openvino", "onnxruntime"}
    assert np.abs(again(x.numpy()) - ref).max() < 1e-4


def test_a_graph_that_differs_from_torch_is_refused_and_deleted(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    (onnx_path,) = tmp_path.glob("*.onnx")
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()  # other weights
    compile_module(other, torch.zeros(1, 3, 32, 32), "conv-other", "openvino", cache_dir=tmp_path)
    (other_path,) = set(tmp_path.glob("*.onnx")) - {onnx_path}
    other_path.replace(onnx_path)  # a stale or corrupt graph under the right key
    onnx_path.with_suffix(".json").unlink()
    with pytest.raises(BackendError, match="differs from torch"):
        compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    assert not onnx_path.exists()  # the next start exports it afresh
    compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)


def _prompted(engine: Engine, coco_tiny, coco_gt, images: int):
    """IoU with the ground truth of box and point prompts, and the top-5 label names of each."""
    out = {"prompt-box": [], "prompt-point": [], "labels": []}
    for img_id in sorted(coco_gt.getImgIds())[:images]:
        info = coco_gt.loadImgs(img_id)[0]
        emb = engine.embed(load_image(coco_tiny / "images" / info["file_name"]))
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            gt = instance_mask(coco_gt, ann)
            if not gt.any():
                continue
            x, y, w, h = ann["bbox"]
            box = engine.predict(emb, box=np.array([x, y, x + w, y + h]))
            point = engine.predict(emb, point_coords=np.array([farthest_interior_point(gt)]), point_labels=[1])
            out["prompt-box"].append(mask_iou(box.mask, gt))
            out["prompt-point"].append(mask_iou(point.mask, gt))
            out["labels"] += [[s.name for s in box.labels], [s.name for s in point.labels]]
    return out


@pytest.mark.parametrize("clip_name", ["tiny_rn_clip", "tiny_convnext_clip"])
def test_cpu_runtimes_give_the_torch_masks_and_labels(sam_model, tiny_clip_factory, coco_tiny, coco_gt, clip_name):
    """Real MobileSAM on 8 COCO photos: box and point mIoU within 0.2 points of torch, top-5
    labels (tiny random CLIP, dense mode, COCO's 80 names) identical for every prompt."""
    vocab = load_vocabulary("coco")
    results = {}
    for backend in ("torch", *RUNTIMES):
        clip = tiny_clip_factory(clip_name, dense_size=320, backend=backend)
        engine = Engine(sam_model, clip, vocab, backend=backend)
        assert engine.decoder.backend == backend and clip.backend == backend
        results[backend] = _prompted(engine, coco_tiny, coco_gt, images=8)
    ref = results["torch"]
    assert len(ref["prompt-box"]) > 40
    for backend in RUNTIMES:
        got = results[backend]
        for task in ("prompt-box", "prompt-point"):
            miou, ref_miou = 100 * np.mean(got[task]), 100 * np.mean(ref[task])
            assert abs(miou - ref_miou) <= 0.2, (backend, task, miou, ref_miou)
        assert got["labels"] == ref["labels"], backend
        assert all(len(names) == 5 for names in got["labels"])


def test_build_engine_auto_runs_openvino_on_cpu_and_logs_it(caplog):
    with caplog.at_level("INFO", logger="annotator.engine"):
        engine = build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu"))
    assert engine.backend == "openvino" and engine.decoder.backend == "openvino"
    assert any("inference backend: openvino" in r.getMessage() for r in caplog.records)
    torch_engine = build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu", backend="torch"))
    assert torch_engine.backend == "torch"


def test_int8_encoder_is_opt_in_faster_and_close(sam_model, coco_tiny, coco_gt):
    """int8 (OpenVINO + NNCF, calibrated on the bundled sample photos): masks within 1.5 mIoU
    points of torch on 8 COCO photos, verified once against torch, never on another runtime."""
    with pytest.raises(BackendError, match="openvino"):
        Engine(sam_model, backend="onnxruntime", int8=True)
    with pytest.raises(ValueError, match="OpenVINO"):
        build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu", backend="torch", int8=True))
    int8 = Engine(sam_model, backend="openvino", int8=True)
    assert int8.decoder.int8 and int8.decoder._encoder_graph.path.suffix == ".xml"
    meta = json.loads(next(int8.decoder._encoder_graph.path.parent.glob("sam-TinyViT-*.json")).read_text())
    assert meta["verified"]["openvino-int8-q1"]["relative_l2"] < 0.2
    ref = _prompted(Engine(sam_model), coco_tiny, coco_gt, images=8)
    got = _prompted(int8, coco_tiny, coco_gt, images=8)
    for task in ("prompt-box", "prompt-point"):
        assert abs(np.mean(got[task]) - np.mean(ref[task])) <= 0.015, task


def test_options_carry_backend_threads_and_int8():
    import argparse

    from annotator.options import add_engine_arguments, engine_config_from_args

    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    config = engine_config_from_args(parser.parse_args([]))
    assert (config.backend, config.threads, config.int8) == ("auto", None, False)
    config = engine_config_from_args(parser.parse_args(["--backend", "onnxruntime", "--threads", "1", "--int8"]))
    assert (config.backend, config.threads, config.int8) == ("onnxruntime", 1, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
