"""Automatic SAM patches against segment-anything's SamAutomaticMaskGenerator, same settings."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from annotator.evaluation import class_agnostic_scores
from annotator.everything.patches import PatchConfig
from annotator.images import load_image
from annotator.instances import Source
from annotator.masks import encode_rle

from .conftest import ROOT

CONFIG = PatchConfig(points_per_side=16)  # the reference's defaults otherwise
N_IMAGES = 2


@pytest.fixture(scope="module")
def patches_and_reference(engine, sam_model, coco_tiny, coco_gt):
    from mobile_sam import SamAutomaticMaskGenerator

    reference = SamAutomaticMaskGenerator(sam_model, points_per_side=CONFIG.points_per_side)
    ids = sorted(coco_gt.getImgIds())[:N_IMAGES]
    ours, theirs, patches = [], [], {}
    for img_id in ids:
        image = load_image(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"])
        p = engine.segment_everything(engine.embed(image), CONFIG)
        patches[img_id] = p
        ours += [
            {"image_id": img_id, "segmentation": encode_rle(m), "score": float(s)}
            for m, s in zip(p.masks, p.predicted_iou, strict=True)
        ]
        for r in reference.generate(image):
            theirs.append(
                {"image_id": img_id, "segmentation": encode_rle(r["segmentation"]), "score": r["predicted_iou"]}
            )
    return ids, patches, ours, theirs


def test_recall_at_least_the_reference(patches_and_reference, coco_gt):
    ids, _, ours, theirs = patches_and_reference
    ours_scores = class_agnostic_scores(coco_gt, ours, ids)
    ref_scores = class_agnostic_scores(coco_gt, theirs, ids)
    print(
        f"AR@100 ours {ours_scores['AR@100']:.2f} ({len(ours)} patches), reference {ref_scores['AR@100']:.2f} ({len(theirs)})"
    )
    assert ours_scores["AR@100"] >= ref_scores["AR@100"]
    assert abs(len(ours) - len(theirs)) <= 0.15 * len(theirs)


def test_patch_invariants(patches_and_reference):
    _, patches, _, _ = patches_and_reference
    for p in patches.values():
        assert len(p) > 5
        assert np.all(np.diff(p.predicted_iou) <= 0)  # best first
        assert p.predicted_iou.min() >= CONFIG.pred_iou_thresh
        assert p.data["stability"].min() >= CONFIG.stability_score_thresh
        assert set(p.source) == {Source.PATCHES} and np.array_equal(p.scores, p.predicted_iou)
        for mask, box in zip(p.masks, p.boxes, strict=True):
            ys, xs = np.nonzero(mask)
            assert list(box) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        overlap = box_iou(torch.as_tensor(p.boxes), torch.as_tensor(p.boxes)).fill_diagonal_(0)
        assert overlap.max() <= CONFIG.box_nms_thresh + 0.05  # NMS ran on the upsampled masks' boxes


def test_eval_command_everything(coco_tiny, tmp_path):
    out = tmp_path / "scores.json"
    cmd = [sys.executable, "-m", "annotator", "eval", "--task", "everything", "--clip", "none",
           "--images", str(coco_tiny / "images"), "--gt", str(coco_tiny / "instances.json"),
           "--limit", "1", "--points-per-side", "8", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AR@100" in proc.stdout
    scores = json.loads(out.read_text())["everything"]
    assert scores["images"] == 1 and scores["patches"] > 0 and 0 < scores["AR@100"] <= 100


def test_small_holes_and_islands_are_removed(patches_and_reference):
    import cv2

    from annotator.everything.patches import remove_small_regions

    def component_areas(region: np.ndarray) -> list[int]:
        n, _, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
        return [int(stats[i, cv2.CC_STAT_AREA]) for i in range(1, n)]

    _, patches, _, _ = patches_and_reference
    changed = 0
    for p in patches.values():
        for mask in p.masks:
            cleaned = remove_small_regions(mask, 100)
            assert min(component_areas(~cleaned), default=100) >= 100  # no small hole left
            islands = component_areas(cleaned)
            assert len(islands) == 1 or min(islands) >= 100  # a lone small island is kept
            assert (cleaned != mask).sum() < 0.5 * mask.sum()  # cleaning, not rewriting
            changed += not np.array_equal(cleaned, mask)
    assert changed > 0  # real patches do have small holes / islands


def test_segment_prompts_reach_the_grid_recall_with_fewer_passes(engine, patches_and_reference, coco_tiny, coco_gt):
    """The CPU default (one prompt per unexplained image segment, looser thresholds) against the
    reference generator's 16×16 grid on the same photos: at least its AR@100, fewer passes."""
    ids, _, _, theirs = patches_and_reference
    config = engine.default_patch_config()
    assert config.sampler == "segments"  # the engine fixture runs on the CPU
    decode_points = engine.decoder.decode_points
    prompts = []

    def counted(emb, point_coords, min_iou=0.0):
        prompts[-1] += len(point_coords)
        return decode_points(emb, point_coords, min_iou=min_iou)

    ours = []
    engine.decoder.decode_points = counted
    try:
        for img_id in ids:
            image = load_image(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"])
            prompts.append(0)
            p = engine.segment_everything(engine.embed(image), config)
            assert p.predicted_iou.min() >= config.pred_iou_thresh and np.all(np.diff(p.predicted_iou) <= 0)
            ours += [{"image_id": img_id, "segmentation": r, "score": float(s)} for r, s in zip(p.rles(), p.predicted_iou, strict=True)]  # fmt: skip
    finally:
        del engine.decoder.decode_points
    ours_scores = class_agnostic_scores(coco_gt, ours, ids)
    ref_scores = class_agnostic_scores(coco_gt, theirs, ids)
    print(
        f"AR@100 segments {ours_scores['AR@100']:.2f} ({prompts} prompts), reference 16x16 {ref_scores['AR@100']:.2f}"
    )
    assert ours_scores["AR@100"] >= ref_scores["AR@100"]
    assert sum(prompts) < len(ids) * CONFIG.points_per_side**2  # fewer passes than the grid's on average
    assert max(prompts) <= config.segments.max_points and min(prompts) > 10


def test_segments_sampler_needs_the_image(engine, coco_image):
    emb = engine.embed(coco_image[0])
    with pytest.raises(ValueError, match="needs the image"):
        from annotator.everything.patches import generate_patches

        generate_patches(engine.decoder, emb.sam, PatchConfig(sampler="segments"))
    with pytest.raises(ValueError, match="unknown sampler"):
        PatchConfig(sampler="random")


def test_patch_masks_on_their_window_equal_the_whole_frame(engine, coco_tiny, coco_gt):
    """Each kept patch is upsampled and cleaned on its box's window only. On real candidates of
    real photos: the mask never leaves the window; cleaning the window gives exactly the whole
    frame's clean-up there (the margin of ``clean_margin``); upsampling the window differs from
    the whole frame's warp only where OpenCV's 1/32-pixel fixed-point coordinates round the
    other way (a pixel or two on a mask's edge, rarely)."""
    from annotator.everything.patches import (
        _low_res_boxes,
        _mask_window,
        _to_frame,
        clean_margin,
        grid_points,
        patch_mask,
        remove_small_regions,
    )

    checked = differing = pixels = 0
    for img_id in sorted(coco_gt.getImgIds())[:3]:
        image = load_image(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"])
        emb = engine.embed(image).sam
        logits, _, _ = engine.decoder.decode_points(emb, grid_points(*emb.original_size, 6))
        rows, cols = emb.valid_low_res
        logits = logits[:, :rows, :cols]
        boxes = _low_res_boxes(logits, emb).numpy()
        for candidate, box in zip(logits.numpy(), boxes, strict=True):
            if box[2] <= box[0]:
                continue
            full = _to_frame(candidate, emb, emb.original_size)
            for min_area in (0, 100, 400):
                x0, y0, x1, y1 = _mask_window(box, emb, clean_margin(min_area))
                outside = full.copy()
                outside[y0:y1, x0:x1] = False
                assert not outside.any()
                cleaned = remove_small_regions(full, min_area) if min_area else full
                if min_area:
                    np.testing.assert_array_equal(
                        remove_small_regions(full[y0:y1, x0:x1], min_area), cleaned[y0:y1, x0:x1]
                    )
                region, window = patch_mask(candidate, box, emb, min_area)
                assert region == (x0, y0, x1, y1)
                differing += int((window != cleaned[y0:y1, x0:x1]).sum())
                pixels += int(cleaned.sum())
                checked += 1
    assert checked > 150
    assert differing < 1e-4 * pixels
