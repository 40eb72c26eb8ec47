"""YOLO segmentation and COCO instances exports, read back by the ``supervision`` package's dataset loaders."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from annotator.evaluation import mask_iou
from annotator.formats.coco import export_coco
from annotator.formats.yolo import export_yolo
from annotator.store import AnnotationStore

from .conftest import instance_mask


def test_yolo_export_reads_back_with_supervision(coco_tiny, coco_gt, tmp_path):
    import supervision as sv

    folder = tmp_path / "photos"
    folder.mkdir()
    store = AnnotationStore(tmp_path / "s.annotations.db")
    expected: dict[str, list[tuple[str, np.ndarray]]] = {}
    multi_part = 0
    for img_id in sorted(coco_gt.getImgIds())[:5]:
        info = coco_gt.loadImgs(img_id)[0]
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann)
            if mask.sum() < 50:
                continue
            name = coco_gt.loadCats(ann["category_id"])[0]["name"]
            store.add(info["file_name"], mask, name)
            expected.setdefault(info["file_name"], []).append((name, mask))
            multi_part += len(ann["segmentation"]) > 1 if isinstance(ann["segmentation"], list) else 0
    assert multi_part > 0  # the data has multi-part masks
    yaml_path = export_yolo(store, folder, tmp_path / "yolo")
    ds = sv.DetectionDataset.from_yolo(
        str(tmp_path / "yolo" / "images"), str(tmp_path / "yolo" / "labels"), str(yaml_path), force_masks=True
    )
    assert len(ds) == len(expected)
    ious = []
    for path, _, det in ds:
        want = expected[path.split("/")[-1]]
        assert len(det) == len(want)  # one line per instance, multi-part masks included
        for k, (name, mask) in enumerate(want):
            assert ds.classes[det.class_id[k]] == name
            ious.append(mask_iou(det.mask[k], mask))
    print(f"YOLO round trip: {len(ious)} masks, mean IoU {np.mean(ious):.4f}, min {np.min(ious):.4f}")
    assert np.mean(ious) > 0.95 and np.min(ious) > 0.6


@pytest.mark.parametrize("fmt", ["rle", "polygon"])
def test_coco_export_reads_back_with_supervision(coco_tiny, coco_gt, tmp_path, fmt):
    import supervision as sv

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    store = AnnotationStore(tmp_path / "s.annotations.db")
    expected: dict[str, list[tuple[str, np.ndarray]]] = {}
    for i, img_id in enumerate(sorted(coco_gt.getImgIds())[:5]):
        info = coco_gt.loadImgs(img_id)[0]
        key = ("sub/" if i == 0 else "") + info["file_name"]  # file_name relative to the dataset root
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / key)
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann)
            name = coco_gt.loadCats(ann["category_id"])[0]["name"]
            store.add(key, mask, name)
            expected.setdefault(str(folder / key), []).append((name, mask))
    out = export_coco(store, tmp_path / "coco.json", segmentation=fmt)
    ds = sv.DetectionDataset.from_coco(str(folder), str(out), force_masks=True)
    assert len(ds) == len(expected)
    ious = []
    for path, _, det in ds:
        want = expected[path]
        assert len(det) == len(want)
        for k, (name, mask) in enumerate(want):  # in the export's order
            assert ds.classes[det.class_id[k]] == name
            got = det.mask[k]
            ious.append(mask_iou(got, mask))
            if fmt == "rle":
                assert np.array_equal(got, mask)
            else:  # exact for pycocotools (test_store_export); cv2.fillPoly also paints the outline pixels
                assert (mask & ~got).sum() <= 0.01 * mask.sum()
                ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                assert not (got & ~ring).any()
    print(f"COCO ({fmt}) via supervision: {len(ious)} masks, mean IoU {np.mean(ious):.4f}, min {np.min(ious):.4f}")
