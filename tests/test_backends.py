"""CPU backends (OpenVINO, ONNX Runtime): graphs exported from the real weights give the masks
and labels of the torch path; every graph states its precision (f32 is f32 on every CPU);
exports and checks are cached, a graph that differs is refused, and auto falls back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from annotator import backends
from annotator.backends import (
    BackendError,
    compile_module,
    cpu_bf16_features,
    plan_precisions,
    resolve_backend,
    weights_sha256,
)
from annotator.clip_regions import ClipRegionEncoder, ClipSpec
from annotator.engine import Engine, EngineConfig, build_engine
from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.images import load_image
from annotator.sam import AUTO_BF16_DECODER, SamPromptDecoder
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


def test_plan_precisions(monkeypatch):
    monkeypatch.setattr(backends, "cpu_bf16_features", lambda: ("amx_bf16", "avx512_bf16"))
    assert plan_precisions("auto", "openvino", auto_bf16=True) == ("bf16", "f32")
    assert plan_precisions("auto", "openvino", auto_bf16=False) == ("f32",)  # CLIP: bf16 opt-in
    assert plan_precisions("auto", "onnxruntime", auto_bf16=True) == ("f32",)
    assert plan_precisions("auto", "torch", auto_bf16=True) == ("f32",)
    assert plan_precisions("bf16", "openvino", auto_bf16=False) == ("bf16",)
    assert plan_precisions("int8", "openvino", auto_bf16=True, quantizable=True) == ("int8",)
    assert plan_precisions("int8", "openvino", auto_bf16=True) == ("f32",)  # CLIP is not quantized
    for bad in (("bf16", "torch"), ("bf16", "onnxruntime")):
        with pytest.raises(ValueError, match="runs on OpenVINO"):
            plan_precisions(*bad, auto_bf16=True)
    with pytest.raises(ValueError, match="unknown precision"):
        plan_precisions("fp16", "openvino", auto_bf16=True)
    monkeypatch.setattr(backends, "cpu_bf16_features", lambda: ())  # an AMD EPYC of the earlier machines
    assert plan_precisions("auto", "openvino", auto_bf16=True) == ("f32",)
    with pytest.raises(ValueError, match="AMX or AVX-512 BF16"):
        plan_precisions("bf16", "openvino", auto_bf16=True)


def test_export_is_cached_keyed_by_weights_and_checked_once(sam_model, tmp_path):
    encoder = sam_model.image_encoder
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = encoder(x).numpy()
    graph = compile_module(encoder, torch.zeros(1, 3, 1024, 1024), "sam", "openvino", cache_dir=tmp_path)
    assert graph.precision == "f32" and graph.inference_precision == "f32"  # f32 even where bf16 is the default
    (onnx_path,) = tmp_path.glob("*.onnx")
    assert weights_sha256(encoder)[:16] in onnx_path.name
    (check,) = json.loads(onnx_path.with_suffix(".json").read_text())["checks"].values()
    assert check["passed"] and check["precision"] == "f32" and check["error"] < 1e-4
    assert np.abs(graph(x.numpy()) - ref).max() < 1e-4
    stamp = onnx_path.stat().st_mtime_ns
    again = compile_module(encoder, torch.zeros(1, 3, 1024, 1024), "sam", "onnxruntime", cache_dir=tmp_path)
    assert onnx_path.stat().st_mtime_ns == stamp  # not exported again
    checks = json.loads(onnx_path.with_suffix(".json").read_text())["checks"]
    assert sorted(tag.split()[0] for tag in checks) == ["onnxruntime", "openvino"]
    assert np.abs(again(x.numpy()) - ref).max() < 1e-4


def _conv(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()


def test_a_failed_check_is_refused_cached_and_redone_for_a_new_graph(tmp_path, monkeypatch):
    """A graph that differs from torch (here another model's graph under the right key) is
    refused; the outcome is kept, so the next start neither exports nor runs it; a graph
    exported afresh is checked afresh."""
    module = _conv(0)
    compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    (onnx_path,) = tmp_path.glob("*.onnx")
    compile_module(_conv(1), torch.zeros(1, 3, 32, 32), "conv-other", "openvino", cache_dir=tmp_path)
    (other_path,) = set(tmp_path.glob("*.onnx")) - {onnx_path}
    other_path.replace(onnx_path)  # a stale or corrupt graph under the right key
    with pytest.raises(BackendError, match=r"differs from torch by .*f32 allows 0.001\)$"):
        compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    assert onnx_path.exists()

    def never(*args, **kwargs):
        raise AssertionError("exported or run again")

    with monkeypatch.context() as m:
        m.setattr(backends, "_export", never)
        m.setattr(backends.CompiledGraph, "__call__", never)
        with pytest.raises(BackendError, match=r"differs from torch .*\(checked 20"):
            compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    onnx_path.unlink()  # what the message tells the user to do
    graph = compile_module(module, torch.zeros(1, 3, 32, 32), "conv", "openvino", cache_dir=tmp_path)
    assert graph.precision == "f32" and not graph.notes


class _Cancelling(torch.nn.Module):
    """(1000 + I) x - 1000 x: exact in f32, all of it lost to bf16's 8-bit mantissa."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 64, bias=False)
        self.b = torch.nn.Linear(64, 64, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(1000 * torch.ones(64, 64) + torch.eye(64))
            self.b.weight.copy_(1000 * torch.ones(64, 64))

    def forward(self, x):
        return self.a(x) - self.b(x)


@pytest.mark.skipif(not cpu_bf16_features(), reason="bf16 needs AMX or AVX-512 BF16")
def test_auto_falls_back_to_f32_when_bf16_fails_its_check(tmp_path, monkeypatch, caplog):
    module = _Cancelling().eval()
    with caplog.at_level("WARNING", logger="annotator.backends"):
        graph = compile_module(
            module, torch.zeros(8, 64), "cancel", "openvino", cache_dir=tmp_path, precisions=("bf16", "f32")
        )
    assert graph.precision == "f32" and graph.inference_precision == "f32"
    (note,) = graph.notes
    assert "openvino bf16 output of cancel differs from torch" in note and "running cancel in f32 instead" in note
    assert [r.getMessage() for r in caplog.records] == [note]  # said once
    x = torch.randn(8, 64)
    assert np.abs(graph(x.numpy()) - module(x).detach().numpy()).max() < 1e-3
    with monkeypatch.context() as m:  # the next start: both outcomes read back, nothing exported or checked
        m.setattr(backends, "_export", lambda *a: pytest.fail("exported again"))
        m.setattr(backends.CompiledGraph, "__call__", lambda *a: pytest.fail("checked again"))
        again = compile_module(
            module, torch.zeros(8, 64), "cancel", "openvino", cache_dir=tmp_path, precisions=("bf16", "f32")
        )
    assert again.precision == "f32" and "checked 20" in again.notes[0]
    with pytest.raises(BackendError, match="bf16 output of cancel differs"):  # asked for by name: no fallback
        compile_module(module, torch.zeros(8, 64), "cancel", "openvino", cache_dir=tmp_path, precisions=("bf16",))


def test_default_graphs_pass_their_checks_on_this_cpu(sam_model, tmp_path, monkeypatch):
    """Every graph the CPU default builds (MobileSAM's encoder and batched prompt decoder,
    RN50's dense pass at 672 px; random RN50 weights, as no CLIP weights reach us), exported and
    checked afresh on this machine: every check passes, nothing falls back."""
    monkeypatch.setattr(backends, "exported_dir", lambda: tmp_path)
    backend = resolve_backend("auto", "cpu")
    torch.manual_seed(0)
    clip = ClipRegionEncoder(ClipSpec("RN50", None, 672), "cpu", backend=backend)
    engine = Engine(sam_model, clip, load_vocabulary("coco"), backend=backend)
    bf16 = "bf16" if cpu_bf16_features() else "f32"
    prompts = "bf16" if cpu_bf16_features() and AUTO_BF16_DECODER else "f32"
    assert engine.precisions == {
        "sam": f"openvino {bf16}",
        "sam_prompts": f"openvino {prompts}",
        "clip": "openvino f32",
    }
    assert engine.notes == []
    checks = [c for meta in tmp_path.glob("*.json") for c in json.loads(meta.read_text())["checks"].values()]
    assert len(checks) == 3 and all(c["passed"] for c in checks)
    assert engine.decoder._decoder_graph.inference_precision == prompts
    assert engine.decoder._encoder_graph.inference_precision == bf16
    assert clip._dense_graph.inference_precision == "f32"


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_each_precision_can_be_forced(sam_model, tiny_clip_factory, coco_image, precision):
    """--precision f32 / bf16 runs both graphs in it (the runtime says so), within its
    tolerance of torch on a real COCO photo; bf16 really rounds (it is not f32 in disguise)."""
    if precision == "bf16" and not cpu_bf16_features():
        with pytest.raises(ValueError, match="AMX or AVX-512 BF16"):
            SamPromptDecoder(sam_model, "openvino", precision="bf16")
        return
    decoder = SamPromptDecoder(sam_model, "openvino", precision=precision)
    clip = tiny_clip_factory(backend="openvino", precision=precision)
    assert decoder.precision == clip.precision == precision
    assert decoder._encoder_graph.inference_precision == clip._dense_graph.inference_precision == precision
    image = coco_image[0]
    torch_clip = tiny_clip_factory()
    pairs = [
        (
            decoder.encode(image).image_embedding.numpy(),
            SamPromptDecoder(sam_model).encode(image).image_embedding.numpy(),
        ),
        (clip.dense_features(image).numpy(), torch_clip.dense_features(image).numpy()),
    ]
    for got, ref in pairs:
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert (err < 1e-5) if precision == "f32" else (1e-4 < err < backends.CHECKS["bf16"][1]), (precision, err)


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_batched_prompts_through_the_runtime_give_the_torch_masks(sam_model, coco_tiny, coco_gt, precision):
    """The prompt decoder graph (everything mode's points, bulk boxes) on 3 COCO photos of two
    aspect ratios: in f32 torch's logits and predicted IoU; in bf16 within 0.5 % of the
    low-res mask cells; a lone click or box (no mask input) takes the same path."""
    if precision == "bf16" and not cpu_bf16_features():
        pytest.skip("bf16 needs AMX or AVX-512 BF16")
    graph = SamPromptDecoder(sam_model, "openvino", precision=precision)
    assert graph.decoder_precision == precision and graph._decoder_graph.inference_precision == precision
    eager = SamPromptDecoder(sam_model)
    rng = np.random.default_rng(0)
    for img_id in sorted(coco_gt.getImgIds())[:3]:
        info = coco_gt.loadImgs(img_id)[0]
        image = load_image(coco_tiny / "images" / info["file_name"])
        emb = eager.encode(image)
        points = rng.uniform([0, 0], [info["width"], info["height"]], size=(8, 2))
        logits, iou, prompt = graph.decode_points(emb, points, min_iou=0.0)
        ref_logits, ref_iou, ref_prompt = eager.decode_points(emb, points, min_iou=0.0)
        assert logits.shape == ref_logits.shape and torch.equal(prompt, ref_prompt)
        flipped = ((logits > 0) != (ref_logits > 0)).float().mean().item()
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id))[:5]])  # fmt: skip
        got, ref = graph.decode_boxes(emb, boxes), eager.decode_boxes(emb, boxes, batch_size=1)
        if precision == "f32":
            assert (logits - ref_logits).abs().max() < 1e-3 and (iou - ref_iou).abs().max() < 1e-4
            assert np.abs(got.low_res_logits - ref.low_res_logits).max() < 1e-3
            # f32 kernels differ by CPU (AVX2 on an AMD EPYC, AMX on a Xeon): a cell may change
            # sign only where torch's logit is within rounding of 0
            assert torch.all(ref_logits[(logits > 0) != (ref_logits > 0)].abs() < 1e-3), flipped
        else:
            assert flipped < 0.005 and (iou - ref_iou).abs().max() < 0.05
            assert ((got.low_res_logits > 0) != (ref.low_res_logits > 0)).mean() < 0.005
        kept = graph.decode_points(emb, points, min_iou=0.9)[2]  # the predicted-IoU filter as in torch
        assert (
            set(kept.tolist()) == set(eager.decode_points(emb, points, min_iou=0.9)[2].tolist()) or precision == "bf16"
        )


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
    """Real MobileSAM on 8 COCO photos, both runtimes in f32: box and point mIoU within 0.2
    points of torch, top-5 labels (tiny random CLIP, dense mode, COCO's 80 names) identical for
    every prompt."""
    vocab = load_vocabulary("coco")
    results = {}
    for backend in ("torch", *RUNTIMES):
        clip = tiny_clip_factory(clip_name, dense_size=320, backend=backend)
        engine = Engine(sam_model, clip, vocab, backend=backend, precision="f32")
        assert engine.decoder.backend == backend and clip.backend == backend
        assert engine.decoder.precision == clip.precision == "f32"
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
    assert engine.decoder.precision == ("bf16" if cpu_bf16_features() else "f32") and engine.notes == []
    assert any(
        "inference backend: openvino" in r.getMessage()
        and f"SAM image encoder openvino {engine.decoder.precision}" in r.getMessage()
        for r in caplog.records
    )
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "differs" in r.getMessage()]
    torch_engine = build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu", backend="torch"))
    assert torch_engine.backend == "torch"


def test_int8_encoder_is_opt_in_faster_and_close(sam_model, coco_tiny, coco_gt):
    """int8 (OpenVINO + NNCF, calibrated on the bundled sample photos): masks within 1.5 mIoU
    points of torch on 8 COCO photos where the CPU has int8 dot-product instructions (VNNI or
    AMX), within 2.5 elsewhere (measured on an AMD EPYC with AVX2 only: point prompts 2.1 points
    below torch, boxes within 1.5; AVX2's u8 x s8 multiply-add saturating is the likely cause);
    verified once against torch, never on
    another runtime."""
    with pytest.raises(ValueError, match="OpenVINO"):
        Engine(sam_model, backend="onnxruntime", precision="int8")
    with pytest.raises(ValueError, match="OpenVINO"):
        build_engine(EngineConfig(clip_model="none", vocab="coco", device="cpu", backend="torch", precision="int8"))
    int8 = Engine(sam_model, backend="openvino", precision="int8")
    assert int8.decoder.precision == "int8" and int8.decoder._encoder_graph.path.suffix == ".xml"
    meta = json.loads(next(int8.decoder._encoder_graph.path.parent.glob("sam-TinyViT-*.json")).read_text())
    (check,) = [c for tag, c in meta["checks"].items() if " int8-q1 " in tag]
    assert check["passed"] and check["error"] < 0.2
    ref = _prompted(Engine(sam_model), coco_tiny, coco_gt, images=8)
    got = _prompted(int8, coco_tiny, coco_gt, images=8)
    from annotator.backends import _cpuinfo

    bound = 0.015 if {"avx512_vnni", "avx_vnni", "amx_int8"} & _cpuinfo()[1] else 0.025
    for task in ("prompt-box", "prompt-point"):
        assert abs(np.mean(got[task]) - np.mean(ref[task])) <= bound, (task, np.mean(got[task]), np.mean(ref[task]))


def test_options_carry_backend_threads_and_precision():
    import argparse

    from annotator.options import add_engine_arguments, engine_config_from_args

    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    config = engine_config_from_args(parser.parse_args([]))
    assert (config.backend, config.threads, config.precision) == ("auto", None, "auto")
    config = engine_config_from_args(parser.parse_args(["--backend", "onnxruntime", "--threads", "1", "--int8"]))
    assert (config.backend, config.threads, config.precision) == ("onnxruntime", 1, "int8")  # --int8: an alias
    assert engine_config_from_args(parser.parse_args(["--precision", "bf16"])).precision == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
