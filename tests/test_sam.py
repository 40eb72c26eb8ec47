"""The per-click decoder against segment-anything's SamPredictor, and mask quality on COCO."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from annotator.engine import choose_candidate
from annotator.evaluation import ReferencePredictor, evaluate_prompts, farthest_interior_point
from annotator.sam import DecodedMasks, SamPromptDecoder
from annotator.sam_frame import upsample_logits

from .conftest import ROOT


@pytest.fixture(scope="module")
def predictor_pair(sam_model, coco_image):
    from mobile_sam import SamPredictor

    image, anns = coco_image
    dec = SamPromptDecoder(sam_model)
    emb = dec.encode(image)
    plain = SamPredictor(sam_model)
    plain.set_image(image)
    return dec, emb, plain, image, anns


def _prompts(anns, image):
    h, w = image.shape[:2]
    out = []
    for a in anns[:3]:
        x, y, bw, bh = a["bbox"]
        cx, cy = x + bw / 2, y + bh / 2
        box = np.array([x, y, x + bw, y + bh])
        out += [
            dict(point_coords=np.array([[cx, cy]]), point_labels=np.array([1]), multimask_output=True),
            dict(
                point_coords=np.array([[cx, cy], [w - 5, h - 5]]), point_labels=np.array([1, 0]), multimask_output=False
            ),
            dict(box=box, multimask_output=False),
            dict(point_coords=np.array([[cx, cy]]), point_labels=np.array([1]), box=box, multimask_output=False),
        ]
    return out


def test_decoder_matches_sam_predictor(predictor_pair):
    dec, emb, plain, image, anns = predictor_pair
    rows, cols = emb.valid_low_res
    for prompt in _prompts(anns, image):
        ours = dec.decode(emb, **prompt)
        masks, ious, low_res = plain.predict(**prompt)
        np.testing.assert_allclose(ours.iou_predictions, ious, atol=1e-4)
        np.testing.assert_allclose(ours.low_res_logits[:, :rows, :cols], low_res[:, :rows, :cols], atol=2e-4)
        for k in range(len(masks)):
            up = upsample_logits(ours.low_res_logits[k], emb.input_size, emb.original_size)
            assert up.shape == masks[k].shape
            # one bilinear warp instead of SAM's two: only boundary pixels may differ
            assert (up == masks[k]).mean() > 0.998


def test_refinement_with_mask_input_matches(predictor_pair):
    dec, emb, plain, _, anns = predictor_pair
    x, y, bw, bh = anns[0]["bbox"]
    first = dict(point_coords=np.array([[x + bw / 2, y + bh / 2]]), point_labels=np.array([1]))
    _, _, low_res = plain.predict(**first, multimask_output=False)
    ours = dec.decode(emb, **first, mask_input=low_res, multimask_output=False)
    _, ious, low2 = plain.predict(**first, mask_input=low_res, multimask_output=False)
    rows, cols = emb.valid_low_res
    np.testing.assert_allclose(ours.low_res_logits[:, :rows, :cols], low2[:, :rows, :cols], atol=2e-4)
    np.testing.assert_allclose(ours.iou_predictions, ious, atol=1e-4)


def test_decode_needs_a_prompt(predictor_pair):
    dec, emb, *_ = predictor_pair
    with pytest.raises(ValueError, match="at least one"):
        dec.decode(emb)
    with pytest.raises(ValueError, match="differ in length"):
        dec.decode(emb, point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([1, 0]))


def test_refine_feeds_each_pass_the_last_mask(engine, coco_image, coco_gt):
    image, anns = coco_image
    emb = engine.embed(image)
    x, y, bw, bh = anns[1]["bbox"]
    box = np.array([x, y, x + bw, y + bh])
    point = np.array([farthest_interior_point(coco_gt.annToMask(anns[1]).astype(bool))])
    for prompt in (dict(box=box), dict(point_coords=point, point_labels=np.array([1]))):
        plain = engine.predict(emb, **prompt, refine=0)
        refined = engine.predict(emb, **prompt, refine=2)
        logits = plain.low_res_logits
        for _ in range(2):
            logits = engine.decoder.decode(emb.sam, **prompt, mask_input=logits, multimask_output=False).low_res_logits
        np.testing.assert_allclose(refined.low_res_logits, logits, atol=1e-5)
        assert refined.chosen == plain.chosen  # the first pass's choice is what gets refined
        assert not np.array_equal(refined.low_res_logits, plain.low_res_logits)
    with pytest.raises(ValueError, match="number of passes"):
        type(engine)(engine.decoder.model, refine=-1)


def test_choose_candidate_takes_the_largest_near_tie(engine, coco_image, coco_gt):
    nested = np.full((3, 256, 256), -1.0, np.float32)
    nested[0, :10, :10] = nested[1, :50, :50] = nested[2, :200, :200] = 1.0  # subpart, part, whole
    near_tie = DecodedMasks(nested, np.array([0.90, 0.89, 0.80], np.float32))
    assert choose_candidate(near_tie, 0.0) == 0  # SAM's own rule
    assert choose_candidate(near_tie, 0.02) == 1  # the part is within 0.02, the whole is not
    assert choose_candidate(near_tie, 0.2) == 2
    image, anns = coco_image  # real clicks: the kept candidate is within the margin of the best
    emb = engine.embed(image)
    for ann in anns:
        point = np.array([farthest_interior_point(coco_gt.annToMask(ann).astype(bool))])
        result = engine.predict(emb, point_coords=point, point_labels=np.array([1]))
        iou = result.candidates.iou_predictions
        assert len(iou) == 3 and iou[result.chosen] >= iou.max() - engine.candidate_margin


@pytest.fixture(scope="module")
def prompted_coco(engine, coco_tiny, sam_model):
    """Every one of the 815 COCO instances prompted by its box and by its interior point, with
    the plain SamPredictor on the same prompts."""
    return evaluate_prompts(
        engine,
        coco_tiny / "images",
        coco_tiny / "instances.json",
        progress=False,
        reference=ReferencePredictor(sam_model),
    )


def test_box_prompt_mean_iou_on_coco(prompted_coco):
    box = prompted_coco["prompt-box"]
    print(
        f"box prompts: mIoU {box['mIoU']:.2f} over {box['instances']} instances, SamPredictor {box['reference_mIoU']:.2f}"
    )
    assert box["instances"] == 815 and box["images"] == 80
    assert box["mIoU"] >= 70.0
    # one mask per box, no refinement by default: SamPredictor's masks up to edge pixels (one
    # bilinear warp instead of its two), which move 19 of 815 instances by more than 0.01 IoU
    assert abs(box["gain"]) < 0.1 and box["better"] + box["worse"] < 30


def test_point_prompt_mean_iou_on_coco(prompted_coco):
    point = prompted_coco["prompt-point"]
    print(
        f"point prompts: mIoU {point['mIoU']:.2f} over {point['instances']} instances, SamPredictor {point['reference_mIoU']:.2f}"
    )
    assert point["instances"] == 815
    assert point["mIoU"] >= 50.0
    # the near-tie rule (choose_candidate) against SamPredictor's best predicted IoU, same clicks
    assert point["gain"] >= 0.3 and point["better"] > point["worse"]


def test_flip_tta_treats_an_image_and_its_mirror_alike(engine, coco_image):
    """Both views are decoded and the mirrored one is mapped back: TTA on the mirror image
    gives the mirror of TTA on the image, and masks unlike one pass."""
    image, anns = coco_image
    w = image.shape[1]
    boxes = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns[:4])])
    mirror_boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
    emb, emb_m = engine.embed(image), engine.embed(np.ascontiguousarray(image[:, ::-1]))
    tta = engine.predict_boxes(emb, boxes, with_labels=False, flipped=engine.flipped(emb))
    tta_m = engine.predict_boxes(emb_m, mirror_boxes, with_labels=False, flipped=engine.flipped(emb_m))
    np.testing.assert_allclose(tta.predicted_iou, tta_m.predicted_iou, atol=1e-6)
    assert (tta.masks == tta_m.masks[:, :, ::-1]).mean() > 0.9999
    one_pass = engine.predict_boxes(emb, boxes, with_labels=False)
    assert one_pass.masks.shape == tta.masks.shape and not np.array_equal(one_pass.masks, tta.masks)


def test_eval_command_scores_the_reference_on_the_same_clicks(coco_tiny, tmp_path):
    """With SAM's own choice (margin 0) our clicks give SamPredictor's masks: no gain, no
    instance better or worse; the default margin changes some of them."""
    scores = {}
    for margin in ("0", "0.02"):
        out = tmp_path / f"scores-{margin}.json"
        cmd = [sys.executable, "-m", "annotator", "eval", "--task", "prompt-point", "--reference",
               "--clip", "none", "--backend", "torch", "--candidate-margin", margin,
               "--images", str(coco_tiny / "images"), "--gt", str(coco_tiny / "instances.json"),
               "--limit", "4", "--json", str(out)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "reference_mIoU" in proc.stdout
        scores[margin] = json.loads(out.read_text())["prompt-point"]
    same = scores["0"]
    assert same["instances"] == scores["0.02"]["instances"] > 20
    assert abs(same["gain"]) < 0.05 and same["better"] == same["worse"] == 0
    assert scores["0.02"]["reference_mIoU"] == pytest.approx(same["reference_mIoU"])
    assert scores["0.02"]["better"] + scores["0.02"]["worse"] > 0
