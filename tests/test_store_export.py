"""Annotation store persistence and COCO export, checked with pycocotools."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from annotator.evaluation import mask_iou
from annotator.formats.coco import export_coco, to_coco
from annotator.masks import decode_rle, encode_rle, mask_to_polygons, polygons_to_mask
from annotator.store import AnnotationStore, StoreError

from .conftest import instance_mask


def _ring(h=120, w=160):
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (60, 60), 40, 1, -1)
    cv2.circle(m, (60, 60), 15, 0, -1)  # a hole
    cv2.rectangle(m, (120, 10), (150, 30), 1, -1)  # a second part
    return m.astype(bool)


def test_rle_round_trip(coco_gt):
    ann = coco_gt.loadAnns(coco_gt.getAnnIds())[0]
    mask = instance_mask(coco_gt, ann)
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask)


def test_polygons_keep_holes_and_parts():
    mask = _ring()
    polys = mask_to_polygons(mask)
    assert len(polys) == 2
    back = polygons_to_mask(polys, *mask.shape)
    assert not back[55:66, 55:66].any()  # the hole stays empty
    assert back[15:25, 125:145].all()  # the second part is there
    assert mask_iou(back, mask) > 0.9


def test_polygons_of_real_coco_masks(coco_gt):
    ious = []
    for ann in coco_gt.loadAnns(coco_gt.getAnnIds(iscrowd=False))[:100]:
        mask = instance_mask(coco_gt, ann)
        ious.append(mask_iou(polygons_to_mask(mask_to_polygons(mask), *mask.shape), mask))
    assert np.mean(ious) > 0.99 and min(ious) > 0.95


def test_store_persists_and_reopens(tmp_path):
    path = tmp_path / "s.annotations.db"
    store = AnnotationStore(path, category_ids={"cat": 17})
    a = store.add("a/x.jpg", _ring(), "cat", score=0.8, predicted_iou=0.9, prompt={"points": [[60, 30]]})
    b = store.add("a/x.jpg", _ring()[::-1].copy(), "custom thing")
    assert a.category_id == 17 and b.category_id == 18
    store.relabel(b.id, "cat")
    store.delete(a.id)
    again = AnnotationStore(path)
    assert list(again.annotations) == [b.id] and again.annotations[b.id].label == "cat"
    assert again.annotations[b.id].score is None  # relabelled by hand
    assert np.array_equal(decode_rle(again.annotations[b.id].rle), _ring()[::-1])
    c = again.add("a/x.jpg", _ring(), "dog")
    assert c.id == b.id + 1 and c.id != a.id  # ids are never reused
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="empty mask"):
        again.add("a/x.jpg", np.zeros((4, 4), bool), "cat")
    with pytest.raises(ValueError, match="label"):
        again.add("a/x.jpg", _ring(), "  ")
    with pytest.raises(ValueError, match="at most 200 characters"):
        again.add("a/x.jpg", _ring(), "x" * 201)
    for bad in ("cat\x00", "ding\x07dong", "two\nlines"):
        with pytest.raises(ValueError, match="control character U\\+00"):
            again.add("a/x.jpg", _ring(), bad)
        with pytest.raises(ValueError, match="control character"):
            again.relabel(c.id, bad)
    assert AnnotationStore(path).annotations[c.id].label == "dog"  # nothing refused was written


def test_unreadable_store_is_reported_and_kept(tmp_path):
    path = tmp_path / "broken.annotations.db"
    path.write_text("{not a database")
    with pytest.raises(StoreError, match="not a database"):
        AnnotationStore(path)
    assert path.read_text() == "{not a database"


@pytest.mark.parametrize("fmt", ["rle", "polygon"])
def test_coco_export_loads_in_pycocotools(tmp_path, coco_gt, fmt):
    store = AnnotationStore(tmp_path / "s.db", category_ids={"person": 1, "dog": 18})
    accepted = {}
    img_ids = sorted(coco_gt.getImgIds())[:3]
    for img_id in img_ids:
        info = coco_gt.loadImgs(img_id)[0]
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))[:3]:
            mask = instance_mask(coco_gt, ann)
            name = coco_gt.loadCats(ann["category_id"])[0]["name"]
            a = store.add(info["file_name"], mask, name, score=0.5)
            accepted[a.id] = mask
    ring = store.add("holes.png", _ring(), "dog")
    accepted[ring.id] = _ring()
    out = export_coco(store, tmp_path / "coco.json", segmentation=fmt)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # readable as any file, not the temp file's 0600

    coco = COCO(str(out))
    assert len(coco.getAnnIds()) == len(accepted)
    used = {a.label for a in store.annotations.values()}
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == used  # only those used
    assert coco.loadCats(18)[0]["name"] == "dog"  # stable ids
    for ann in coco.loadAnns(coco.getAnnIds()):
        decoded = coco.annToMask(ann).astype(bool)
        original = accepted[ann["id"]]
        img = coco.loadImgs(ann["image_id"])[0]
        assert decoded.shape == (img["height"], img["width"])
        assert ann["iscrowd"] == 0 and ann["area"] == int(original.sum())
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(original)
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        if fmt == "rle":
            assert np.array_equal(decoded, original)
        else:
            assert mask_iou(decoded, original) > 0.95
    ring_mask = coco.annToMask(coco.loadAnns(ring.id)[0]).astype(bool)
    assert not ring_mask[55:66, 55:66].any()  # the hole survives export either way
    assert "score" in coco.loadAnns(coco.getAnnIds())[0]
    data = json.loads(out.read_text())
    assert data["info"]["description"] and all("file_name" in i for i in data["images"])


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="segmentation"):
        to_coco(AnnotationStore(tmp_path / "s.db"), "mask")


def test_rle_counts_are_pycocotools_compatible():
    rle = encode_rle(_ring())
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == _ring().sum()


def test_done_marks_and_counts_persist(tmp_path):
    path = tmp_path / "s.annotations.db"
    store = AnnotationStore(path)
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    store.add("a.jpg", mask, "cat")
    store.add("a.jpg", mask, "dog")
    store.set_done("b.jpg")
    store.set_done("a.jpg")
    store.set_done("a.jpg", False)
    store.set_last_image("b.jpg")
    again = AnnotationStore(path)
    assert again.done == {"b.jpg"} and again.counts() == {"a.jpg": 2} and again.last_image == "b.jpg"
    assert again.counts(["b.jpg", "a.jpg"]) == {"a.jpg": 2}


def _legacy_store(path, annotations, meta, next_id=None):
    data = {
        "version": 1,
        "next_id": next_id or max(a["id"] for a in annotations) + 1,
        "meta": meta,
        "images": {"a.jpg": {"key": "a.jpg", "width": 30, "height": 20}},
        "categories": {"cat": 17, "dog": 3},
        "annotations": annotations,
    }
    path.write_text(json.dumps(data))
    return data


def _legacy_annotation(ann_id, label, category_id, mask, **extra):
    rle = encode_rle(mask)
    return {
        "id": ann_id,
        "image": "a.jpg",
        "label": label,
        "category_id": category_id,
        "rle": rle,
        "bbox": [3.0, 2.0, 6.0, 6.0],
        "area": int(mask.sum()),
        "score": 0.25,
        "predicted_iou": None,
        "prompt": {"everything": "samcp"},
        "created": 1700000000.5,
        **extra,
    }


def test_a_json_store_of_earlier_versions_is_migrated_and_kept_as_a_backup(tmp_path):
    from annotator.outputs import FolderOutputs

    folder = tmp_path / "photos"
    folder.mkdir()
    out = FolderOutputs(folder, tmp_path / "out")
    out.out_dir.mkdir()
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    old = [_legacy_annotation(4, "cat", 17, mask, source="click"), _legacy_annotation(9, "dog", 3, mask)]
    del old[1]["prompt"]["everything"], old[1]["score"]  # written before provenance: source from the prompt
    old[1]["prompt"] = {"box": [1, 1, 5, 5]}
    data = _legacy_store(out.legacy_store_path, old, {"bulk_imported": ["a.jpg"]}, next_id=12)
    out.legacy_session_path.write_text(json.dumps({"version": 1, "last_image": "a.jpg", "done": ["a.jpg", "b.jpg"]}))
    store = out.open_store()
    assert [(a.id, a.label, a.category_id, a.source) for a in store.for_image("a.jpg")] == [
        (4, "cat", 17, "click"),
        (9, "dog", 3, "box"),
    ]
    assert store.annotations[4].rle == data["annotations"][0]["rle"] and store.annotations[4].created == 1700000000.5
    assert store.categories == {"cat": 17, "dog": 3} and dict(store.meta) == {"bulk_imported": ["a.jpg"]}
    assert store.last_image == "a.jpg" and store.done == {"a.jpg", "b.jpg"}
    assert store.add("a.jpg", mask, "cat").id == 12  # the old counter: ids are never reused
    assert not out.legacy_store_path.exists() and not out.legacy_session_path.exists()
    assert json.loads(Path(f"{out.legacy_store_path}.bak").read_text()) == data  # the backup, as it was
    again = out.open_store()  # opened again: nothing migrated twice
    assert len(again.annotations) == 3


def test_a_json_store_written_before_the_session_file_keeps_its_marks(tmp_path):
    path = tmp_path / "old.annotations.json"
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    _legacy_store(path, [_legacy_annotation(1, "cat", 17, mask)], {"last_image": "a.jpg", "done": ["a.jpg"]})
    store = AnnotationStore(tmp_path / "old.annotations.db")
    assert store.migrate_json(path, tmp_path / "old.session.json")
    assert store.last_image == "a.jpg" and store.done == {"a.jpg"} and dict(store.meta) == {}
    assert store.annotations[1].source == "samcp"  # provenance read from the prompt


@pytest.mark.parametrize(
    "text",
    ["{not json", "[]", '{"images": 5}', '{"images": {}, "categories": {}, "annotations": [{"id": "x"}]}'],
)
def test_an_unreadable_json_store_is_refused_and_left_untouched(tmp_path, text):
    from annotator.outputs import FolderOutputs

    (tmp_path / "photos").mkdir()
    out = FolderOutputs(tmp_path / "photos", tmp_path)
    out.legacy_store_path.write_text(text)
    with pytest.raises(StoreError, match="move it away"):
        out.open_store()
    assert out.legacy_store_path.read_text() == text
    out.legacy_store_path.write_text(json.dumps({"images": {}, "categories": {}, "annotations": []}))
    out.legacy_session_path.write_text('{"done": 7}')
    with pytest.raises(StoreError, match="session"):
        out.open_store()
    assert out.legacy_session_path.read_text() == '{"done": 7}'


def test_instances_round_trip_through_the_store(tmp_path):
    from annotator.instances import Instances, Source

    masks = np.zeros((3, 20, 30), bool)
    masks[0, 2:8, 3:9] = masks[1, 10:15, 10:20] = masks[2, 0:2, 0:2] = True
    made = Instances(
        masks,
        scores=[0.7, None, 0.2],
        predicted_iou=[0.9, 0.8, None],
        class_names=["cat", "dog", "cat"],
        source=[Source.SAMCP, Source.CLICK, Source.BOX],
        data={"prompt": [{"everything": "samcp"}, {"points": [[12, 12]], "labels": [1]}, {"box": [0, 0, 2, 2]}]},
    )
    store = AnnotationStore(tmp_path / "s.annotations.db", category_ids={"cat": 17})
    anns = store.add_instances("a.jpg", made)
    back = AnnotationStore(tmp_path / "s.annotations.db").instances("a.jpg")
    assert [a.id for a in anns] == list(back.data["annotation_id"])
    assert np.array_equal(back.dense_masks(), masks) and np.array_equal(back.boxes, made.boxes)
    np.testing.assert_array_equal(back.scores, [0.7, np.nan, 0.2])
    np.testing.assert_array_equal(back.predicted_iou, [0.9, 0.8, np.nan])
    assert list(back.class_names) == ["cat", "dog", "cat"] and list(back.class_ids) == [17, 18, 17]
    assert list(back.source) == [Source.SAMCP, Source.CLICK, Source.BOX]
    assert back.data["prompt"] == made.data["prompt"]
    merged = store.merge([anns[0].id, anns[2].id])
    assert merged.source == "merge" and store.counts() == {"a.jpg": 2}
    assert [a.id for a in store.for_image("a.jpg")] == [anns[1].id, merged.id]
