"""Everything passes (SAM-CP, PosSAM), panoptic assembly, COCO panoptic export / reader and PQ.

Real MobileSAM on real COCO photos; labels from tiny random-weight CLIPs, so label *values* are
meaningless and only their structure is checked.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import numpy as np
import pytest
import torch

from annotator.engine import Engine
from annotator.evaluation import class_agnostic_scores, evaluate_everything, panoptic_quality
from annotator.everything.panoptic import assemble_panoptic
from annotator.everything.patches import PatchConfig
from annotator.everything.pipeline import EverythingConfig, SegmentedImage, region_embeddings
from annotator.everything.possam import MaseConfig, mase
from annotator.formats.coco_panoptic import (
    PanopticFormatError,
    dataset_panoptic,
    export_coco_panoptic,
    from_result,
    png_names,
    read,
    read_coco_panoptic,
    write_coco_panoptic,
)
from annotator.formats.registry import FORMATS
from annotator.images import load_image
from annotator.instances import UNLABELLED, Instances, Source
from annotator.store import AnnotationStore
from annotator.vocabulary import load_vocabulary

from .conftest import SHARED, instance_mask

PANOPTIC = SHARED / "data" / "coco_panoptic_sample"
GRID16 = PatchConfig(points_per_side=16)
GRID8 = PatchConfig(points_per_side=8)


@pytest.fixture(scope="module")
def agnostic_runs(engine, coco_tiny, coco_gt):
    """SAM-CP without CLIP on the first 3 COCO photos: {image id: EverythingResult}."""
    runs = {}
    for img_id in sorted(coco_gt.getImgIds())[:3]:
        emb = engine.embed(load_image(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"]))
        runs[img_id] = engine.everything(emb, EverythingConfig(method="samcp", patches=GRID16))
    return runs


@pytest.fixture(scope="module")
def panoptic_engine(sam_model, tiny_clip_factory):
    """Engine with a tiny random CLIP and the 133 COCO panoptic classes (things and stuff)."""
    return Engine(sam_model, tiny_clip_factory("tiny_rn_clip"), load_vocabulary("coco_panoptic"))


@pytest.fixture(scope="module")
def panoptic_photo():
    return load_image(PANOPTIC / "input_images" / "000000142238.jpg")


def test_class_agnostic_samcp_merges_patches_into_instances(agnostic_runs, coco_gt):
    merged_any = False
    for result in agnostic_runs.values():
        assert not result.labelled and result.note  # says why there are no labels
        found = result.instances
        groups = found.data["patches"]
        used = [i for group in groups for i in group]
        assert sorted(used) == list(range(len(result.patches)))  # every patch in exactly one instance
        assert set(found.source) == {Source.SAMCP} and set(found.class_ids) == {-1}
        for i, group in enumerate(groups):
            assert found.class_names[i] == UNLABELLED
            assert np.array_equal(found.mask(i), np.logical_or.reduce(result.patches.masks[list(group)]))
            merged_any |= len(group) > 1
        assert len(found) <= len(result.patches)
    assert merged_any
    ids = list(agnostic_runs)
    merged_dets, patch_dets = [], []
    for img_id, r in agnostic_runs.items():
        merged_dets += r.instances.to_coco_results(img_id)
        patch_dets += r.patches.to_coco_results(img_id)
    with contextlib.redirect_stdout(io.StringIO()):
        merged = class_agnostic_scores(coco_gt, merged_dets, ids)
        patches = class_agnostic_scores(coco_gt, patch_dets, ids)
    print(
        f"AR@100 merged {merged['AR@100']:.2f} vs patches {patches['AR@100']:.2f}; AP {merged['AP']:.2f} vs {patches['AP']:.2f}"
    )
    assert merged["AR@100"] >= 0.9 * patches["AR@100"]


def test_panoptic_map_has_no_overlap_and_matches_segments(agnostic_runs):
    for result in agnostic_runs.values():
        pan = result.panoptic
        ids = sorted(np.unique(pan.segment_map).tolist())
        assert ids == [0, *[s.id for s in pan.segments]] or ids == [s.id for s in pan.segments]
        for seg in pan.segments:
            pixels = pan.mask(seg.id)
            assert pixels.sum() == seg.area >= 16
            union = np.logical_or.reduce([result.instances.mask(i) for i in seg.instances])
            assert not (pixels & ~union).any()  # a segment only covers its own instances
            x, y, w, h = seg.bbox
            ys, xs = np.nonzero(pixels)
            assert [x, y, w, h] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_export_round_trips_and_scores_pq_100_against_itself(agnostic_runs, coco_gt, tmp_path):
    images = [
        from_result(i, coco_gt.loadImgs(i)[0]["file_name"], r.panoptic, {UNLABELLED: 1})
        for i, r in agnostic_runs.items()
    ]
    cats = [{"id": 1, "name": UNLABELLED, "isthing": 1}]
    out = write_coco_panoptic(images, cats, tmp_path / "pred.json")
    back, data = read_coco_panoptic(out)
    assert [b.image_id for b in back] == list(agnostic_runs)
    for b, r in zip(back, agnostic_runs.values(), strict=True):
        assert np.array_equal(b.segment_map, r.panoptic.segment_map)
        assert {s["id"] for s in b.segments_info} == set(np.unique(b.segment_map).tolist()) - {0}
    assert all(im["height"] and im["width"] for im in data["images"])
    pq = panoptic_quality(out, out)
    assert pq["All"]["PQ"] == pytest.approx(100.0) and pq["Things"]["n"] == 1


def test_coco_panoptic_sample_reads_writes_and_scores_100(tmp_path):
    gt_json = PANOPTIC / "panoptic_examples.json"
    images, data = read_coco_panoptic(gt_json)
    assert len(images) == 2 and all(len(im.segments_info) > 5 for im in images)
    out = write_coco_panoptic(images, data["categories"], tmp_path / "copy.json")
    for a, b in zip(images, read_coco_panoptic(out)[0], strict=True):
        assert np.array_equal(a.segment_map, b.segment_map)
    pq = panoptic_quality(gt_json, out)
    assert pq["All"]["PQ"] == pytest.approx(100.0) and pq["Stuff"]["n"] > 0
    # a dropped segment is one false negative of its category, c: PQ_c = RQ_c = (n - 1) / (n - 0.5)
    # for its n segments (SQ stays 1), every other category keeps PQ 100; PQ is their mean
    dropped = next(seg for seg in images[0].segments_info if not seg["iscrowd"])
    counts = Counter(seg["category_id"] for im in images for seg in im.segments_info if not seg["iscrowd"])
    n = counts[dropped["category_id"]]
    expected = 100.0 * (len(counts) - 1 + (n - 1) / (n - 0.5)) / len(counts)
    images[0].segment_map[images[0].segment_map == dropped["id"]] = 0
    images[0].segments_info = [seg for seg in images[0].segments_info if seg is not dropped]
    worse = write_coco_panoptic(images, data["categories"], tmp_path / "worse.json")
    assert expected < 100.0
    assert panoptic_quality(gt_json, worse)["All"]["PQ"] == pytest.approx(expected, abs=1e-6)


def test_writer_rejects_inconsistent_segments(tmp_path):
    seg_map = np.zeros((4, 4), np.int32)
    seg_map[:2] = 1
    from annotator.formats.coco_panoptic import PanopticImage

    bad = PanopticImage(1, "a.jpg", seg_map, [{"id": 2, "category_id": 1, "iscrowd": 0, "area": 8, "bbox": []}])
    with pytest.raises(PanopticFormatError):
        write_coco_panoptic([bad], [{"id": 1, "name": "x", "isthing": 1}], tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_samcp_labels_patches_and_merges_stuff_per_class(panoptic_engine, panoptic_photo):
    vocab = panoptic_engine.vocabulary
    emb = panoptic_engine.embed(panoptic_photo)
    result = panoptic_engine.everything(emb, EverythingConfig(method="samcp", patches=GRID8))
    assert result.labelled and "random" in result.note
    found = result.instances
    stuff = [int(c) for c, thing in zip(found.class_ids, found.isthing, strict=True) if not thing]
    assert stuff and len(stuff) == len(set(stuff))  # one instance per stuff class
    # Prompt I recomputed for every patch: each instance's patches all carry its label
    fresh = SegmentedImage(GRID8, result.patches)
    dense, _ = region_embeddings(panoptic_photo, fresh, panoptic_engine.clip, emb.clip_dense, "samcp")
    prompt_one = panoptic_engine.classifier.probs(dense).argmax(dim=1).tolist()
    covered = []
    for i, group in enumerate(found.data["patches"]):
        k = vocab.index_of(found.class_names[i])
        assert found.class_ids[i] == vocab.ids[k] and found.isthing[i] == vocab.isthing[k]
        assert 0 < found.scores[i] <= 1
        assert [prompt_one[j] for j in group] == [k] * len(group)
        covered += group
    assert sorted(covered) == list(range(len(result.patches)))
    seg_stuff = [s.category_id for s in result.panoptic.segments if not s.isthing]
    assert len(seg_stuff) == len(set(seg_stuff))


def test_possam_scores_are_label_probability_times_mask_quality(panoptic_engine, panoptic_photo):
    result = panoptic_engine.everything(
        panoptic_engine.embed(panoptic_photo), EverythingConfig(method="possam", patches=GRID8)
    )
    found = result.instances
    assert result.labelled and len(found) == len(result.patches) and set(found.source) == {Source.POSSAM}
    for k, (i,) in enumerate(found.data["patches"]):
        assert found.predicted_iou[k] == pytest.approx(float(result.patches.predicted_iou[i]))
        assert 0 < found.scores[k] <= found.predicted_iou[k]


def test_mase_weights():
    torch.manual_seed(0)
    p_in = torch.randn(6, 10).softmax(1)
    p_out = torch.randn(6, 10).softmax(1)
    cfg = MaseConfig(alpha=0.3, beta=1.0)
    probs, w = mase(p_in, p_out, torch.zeros(6), cfg)
    assert torch.allclose(w, torch.full((6,), 0.3))  # no mask quality: the fixed weight
    assert torch.allclose(probs.sum(1), torch.ones(6))
    same, _ = mase(p_in, p_in, torch.ones(6), cfg)
    assert torch.allclose(same, p_in, atol=1e-6)  # agreeing classifiers: unchanged
    sharp = torch.full((1, 10), 0.01)
    sharp[0, 3] = 0.91
    flat = torch.full((1, 10), 0.1)
    _, w_good = mase(flat, sharp, torch.ones(1), cfg)
    _, w_bad = mase(flat, sharp, torch.full((1,), 0.2), cfg)
    assert w_good > w_bad > 0.3  # the confident crop classifier counts more on a good mask
    with pytest.raises(ValueError):
        mase(p_in, p_out[:3], torch.ones(6))


def test_assembly_paints_best_thing_first_and_merges_stuff():
    a = np.zeros((20, 20), bool)
    a[:10, :10] = True
    b = np.zeros((20, 20), bool)
    b[5:15, 5:15] = True
    sky1 = np.zeros((20, 20), bool)
    sky1[15:, :] = True
    sky2 = np.zeros((20, 20), bool)
    sky2[:, 16:] = True
    insts = Instances(
        np.stack([a, b, sky1, sky2]),
        scores=[0.5, 0.9, 0.4, 0.6],
        predicted_iou=[0.9] * 4,
        class_names=["cat", "dog", "sky", "sky"],
        class_ids=[1, 2, 3, 3],
        isthing=[True, True, False, False],
    )
    pan = assemble_panoptic(insts, overlap_threshold=0.5, min_area=1)
    labels = [s.label for s in pan.segments]
    assert labels == ["dog", "cat", "sky"]
    assert pan.segment_map[7, 7] == pan.segments[0].id  # the better thing wins the overlap
    assert pan.segments[2].instances == (2, 3)
    assert pan.segments[2].area == (sky1 | sky2).sum() - (b & (sky1 | sky2)).sum()
    strict = assemble_panoptic(insts, overlap_threshold=0.8, min_area=1)
    assert "cat" not in [s.label for s in strict.segments]  # kept only 75 % of its area


def test_panoptic_eval_with_labels(panoptic_engine, tmp_path):
    scores = evaluate_everything(
        panoptic_engine,
        PANOPTIC / "input_images",
        PANOPTIC / "panoptic_coco_detection_format.json",
        limit=1,
        config=EverythingConfig(method="samcp", patches=GRID8),
        progress=False,
        panoptic_gt=PANOPTIC / "panoptic_examples.json",
        work_dir=tmp_path,
    )
    assert scores["labelled"] and scores["images"] == 1
    assert set(scores["PQ"]) == {"All", "Things", "Stuff"}
    assert 0 <= scores["PQ"]["All"]["PQ"] <= 100 and scores["mask_AP"] is not None


def test_store_panoptic_export_keeps_user_annotations_on_top(tmp_path):
    store = AnnotationStore(tmp_path / "s.annotations.db")
    big = np.zeros((30, 40), bool)
    big[5:25, 5:35] = True
    small = np.zeros((30, 40), bool)
    small[10:20, 10:20] = True
    wall = ~big
    store.add("a.jpg", big, "table", score=0.9, predicted_iou=0.95)
    store.add("a.jpg", small, "cup")  # made by the user: no score
    store.add("a.jpg", wall, "wall")
    out = export_coco_panoptic(store, tmp_path / "pan.json", isthing={"wall": False})
    (img,), data = read_coco_panoptic(out)
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_name = {names[s["category_id"]]: s for s in img.segments_info}
    assert img.segment_map[15, 15] == by_name["cup"]["id"]
    assert by_name["table"]["area"] == big.sum() - small.sum()
    assert {c["name"]: c["isthing"] for c in data["categories"]} == {"table": 1, "cup": 1, "wall": 0}
    assert json.loads(out.read_text())["annotations"][0]["file_name"] == "a.png"


def test_panoptic_export_gives_colliding_images_their_own_pngs(coco_gt, tmp_path):
    """``sub/a.jpg`` and ``sub__a.jpg`` (one flat name), ``x.jpg`` and ``x.png`` (one PNG name),
    ``Y.jpg`` and ``y.jpg`` (one PNG on macOS / Windows), each with a real COCO photo's
    instances: every image gets its own PNG and reads back with its own segments."""
    keys = ["sub/a.jpg", "sub__a.jpg", "x.jpg", "x.png", "Y.jpg", "y.jpg", "b.jpg"]
    store = AnnotationStore(tmp_path / "s.annotations.db")
    for key, img_id in zip(keys, sorted(coco_gt.getImgIds()), strict=False):
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            store.add(key, instance_mask(coco_gt, ann), coco_gt.loadCats(ann["category_id"])[0]["name"])
    painted, _ = dataset_panoptic(store)
    want = {im.file_name: im for im in painted}
    assert set(want) == set(keys) and all(im.segments_info for im in painted)
    assert dict(zip(want, png_names(painted), strict=True)) == {
        "sub/a.jpg": "sub__a~2.png",  # the key without "/" keeps its own name
        "sub__a.jpg": "sub__a.png",
        "x.jpg": "x.png",
        "x.png": "x~2.png",
        "Y.jpg": "Y.png",
        "y.jpg": "y~2.png",
        "b.jpg": "b.png",
    }

    out = export_coco_panoptic(store, tmp_path / "pan.json")
    pngs = sorted((tmp_path / "pan").iterdir())
    assert len(pngs) == len(keys) and len({p.name.casefold() for p in pngs}) == len(keys)
    assert len({p.read_bytes() for p in pngs}) == len(keys)  # none overwritten by another
    annotations = json.loads(out.read_text())["annotations"]
    assert len({a["file_name"] for a in annotations}) == len(keys)
    back_images, _ = read_coco_panoptic(out)
    for im in back_images:  # each PNG is its own image's map, with its own segments
        assert np.array_equal(im.segment_map, want[im.file_name].segment_map), im.file_name
        assert [s["id"] for s in im.segments_info] == [s["id"] for s in want[im.file_name].segments_info]
    back = read(out)
    assert set(back.images) == set(keys)
    for key in keys:
        assert len(back.instances(key)) == len(want[key].segments_info), key
    files = FORMATS["coco-panoptic"].write(store, tmp_path / "again.json")
    assert len(set(files)) == len(files) == 1 + len(keys) and all(f.is_file() for f in files)
