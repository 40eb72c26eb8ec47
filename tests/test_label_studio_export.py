"""Label Studio tasks with predictions, checked by label-studio-sdk's own config validator and brush decoder."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest

from annotator.evaluation import mask_iou
from annotator.formats.label_studio import export_label_studio, to_label_studio
from annotator.masks import polygons_to_mask
from annotator.store import AnnotationStore, os_user

from .conftest import instance_mask


@pytest.fixture()
def coco_store(coco_gt, tmp_path):
    store = AnnotationStore(tmp_path / "s.annotations.db")
    masks = {}
    for img_id in sorted(coco_gt.getImgIds())[:3]:
        info = coco_gt.loadImgs(img_id)[0]
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann)
            if mask.any():
                name = coco_gt.loadCats(ann["category_id"])[0]["name"]
                author = "alice" if len(masks) % 2 else None  # the others: the OS user
                a = store.add(f"sub dir/{info['file_name']}", mask, name, score=0.5, author=author)
                masks[a.id] = mask
    return store, masks


def test_brush_predictions_decode_to_the_same_masks(coco_store, tmp_path):
    from label_studio_sdk.converter.brush import decode_rle
    from label_studio_sdk.label_interface import LabelInterface

    store, masks = coco_store
    path = export_label_studio(store, tmp_path / "tasks.json", "/data/local-files/?d=photos/")
    tasks = json.loads(path.read_text())
    interface = LabelInterface(path.with_suffix(".xml").read_text())
    assert len(tasks) == 3 and tasks[0]["data"]["image"].startswith("/data/local-files/?d=photos/sub%20dir/")
    n, authors = 0, set()
    for task in tasks:
        (pred,) = task["predictions"]
        assert interface.validate_prediction(pred), interface.validate_prediction(pred, return_errors=True)
        for region in pred["result"]:
            h, w = region["original_height"], region["original_width"]
            decoded = decode_rle(region["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
            assert np.array_equal(decoded, masks[int(region["id"][1:])])
            ann = store.annotations[int(region["id"][1:])]
            assert region["value"]["brushlabels"] == [ann.label]
            when = datetime.datetime.fromtimestamp(ann.created, datetime.timezone.utc)
            assert region["meta"] == {"text": [f"by {ann.author}, {when:%Y-%m-%d %H:%M} UTC"]}  # who and when
            authors.add(ann.author)
            n += 1
    assert n == len(masks) and authors == {"alice", os_user()}


def test_polygon_predictions_validate_and_cover_the_masks(coco_store):
    from label_studio_sdk.label_interface import LabelInterface

    store, masks = coco_store
    tasks, config = to_label_studio(store, "http://example.org/", region_type="polygon")
    interface = LabelInterface(config)
    ious = []
    for task in tasks:
        (pred,) = task["predictions"]
        assert interface.validate_prediction(pred), interface.validate_prediction(pred, return_errors=True)
        parts: dict[int, list] = {}
        for region in pred["result"]:
            h, w = region["original_height"], region["original_width"]
            flat = [v for x, y in region["value"]["points"] for v in (x * w / 100, y * h / 100)]
            parts.setdefault(int(region["id"][1:].split("p")[0]), []).append(flat)
        for ann_id, polys in parts.items():
            ious.append(mask_iou(polygons_to_mask(polys, h, w), masks[ann_id]))
    assert len(ious) == len(masks) and np.mean(ious) > 0.99
