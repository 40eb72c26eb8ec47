"""YOLO segmentation and COCO instances exports, read back by the ``supervision`` package's dataset loaders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from annotator.evaluation import mask_iou
from annotator.formats.coco import export_coco
from annotator.formats.yolo import export_yolo, file_names, read_yolo, written_files
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


def colliding_photos(coco_tiny, coco_gt, folder: Path, store: AnnotationStore, keys: list[str]) -> dict[str, int]:
    """One real COCO photo per key (a different one each, saved as the key's suffix says) with
    its ground-truth instances (≥ 50 pixels) in the store; returns the instance count per key."""
    counts = {}
    for key, img_id in zip(keys, sorted(coco_gt.getImgIds()), strict=False):
        info = coco_gt.loadImgs(img_id)[0]
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        with Image.open(coco_tiny / "images" / info["file_name"]) as img:
            img.save(folder / key)  # .jpg or .png, by the key
        counts[key] = 0
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann)
            if mask.sum() >= 50:
                store.add(key, mask, coco_gt.loadCats(ann["category_id"])[0]["name"])
                counts[key] += 1
    assert len(counts) == len(keys) and all(counts.values())
    return counts


def test_yolo_export_keeps_colliding_names_apart_and_moves_with_its_images(coco_tiny, coco_gt, tmp_path):
    """``sub/a.jpg`` and ``sub__a.jpg`` (one flat name), ``x.jpg`` and ``x.png`` (one label
    file), ``Y.jpg`` and ``y.jpg`` (one name on macOS / Windows): every image and annotation
    survives export → read back; data.yaml has no absolute path and the image links are
    relative, so the export read after moving it with the photos to another folder is the same."""
    import supervision as sv

    keys = ["sub/a.jpg", "sub__a.jpg", "x.jpg", "x.png", "Y.jpg", "y.jpg", "b.jpg"]
    root = tmp_path / "project"
    folder, out = root / "photos", root / "photos_yolo"
    store = AnnotationStore(tmp_path / "s.annotations.db")
    counts = colliding_photos(coco_tiny, coco_gt, folder, store, keys)
    yaml_path = export_yolo(store, folder, out)

    names = file_names(store)
    assert names == {
        "sub/a.jpg": "sub__a~2.jpg",  # the key without "/" keeps its own name
        "sub__a.jpg": "sub__a.jpg",
        "x.jpg": "x.jpg",
        "x.png": "x~2.png",
        "Y.jpg": "Y.jpg",
        "y.jpg": "y~2.jpg",
        "b.jpg": "b.jpg",
    }
    files = written_files(store, out)
    assert len(set(files)) == len(files) == 1 + 2 * len(keys) and all(f.is_file() for f in files)
    assert len({f.name.casefold() for f in (out / "labels").iterdir()}) == len(keys)
    text = yaml_path.read_text(encoding="utf-8")
    meta = yaml.safe_load(text)
    assert "path" not in meta and (meta["train"], meta["val"]) == ("images", "images")
    assert str(tmp_path) not in text and not any(isinstance(v, str) and os.path.isabs(v) for v in meta.values())
    for link in (out / "images").iterdir():
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))

    def check(export: Path, photos: Path) -> None:
        back = read_yolo(export)
        assert set(back.images) == set(names.values())
        for key, name in names.items():
            assert len(back.instances(name)) == counts[key], key  # no image's labels lost or mixed up
            with Image.open(photos / key) as img:
                assert (back.images[name].width, back.images[name].height) == img.size
            assert (export / "images" / name).resolve() == (photos / key).resolve()
        assert sum(len(back.instances(n)) for n in back.images) == sum(counts.values())
        ds = sv.DetectionDataset.from_yolo(
            str(export / "images"), str(export / "labels"), str(export / "data.yaml"), force_masks=True
        )
        assert sorted(len(det) for _, _, det in ds) == sorted(counts.values())

    check(out, folder)
    moved = tmp_path / "elsewhere" / "deeper"
    moved.mkdir(parents=True)
    shutil.move(folder, moved / "photos")
    shutil.move(out, moved / "photos_yolo")
    assert not root.joinpath("photos").exists()
    check(moved / "photos_yolo", moved / "photos")  # the relative links still resolve
