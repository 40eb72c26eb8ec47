"""Round trips of the formats that hold masks (export → read → export), peers reading our files,
and a malformed file of each format refused with every problem named (file, record, reason):
COCO instances (RLE pixel-equal; the ground truth's masks equal pycocotools' ``annToRLE``),
COCO panoptic, plain mask PNGs (pixel-equal), YOLO (within the polygon tolerance; boxes exact;
holes and small parts kept), on the real COCO photos of ``coco_tiny_val``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from annotator.evaluation import mask_iou
from annotator.formats import FORMATS, ImageEntry, InMemoryDataset
from annotator.formats.coco import CocoFormatError, read_coco
from annotator.formats.errors import FormatReadError
from annotator.formats.masks_png import read_masks
from annotator.formats.yolo import chain_polygons, read_yolo, split_keys
from annotator.instances import Instances, Source
from annotator.masks import mask_to_polygons
from annotator.outputs import FolderOutputs
from annotator.store import AnnotationStore

from .conftest import instance_mask

N_IMAGES = 8


def _normalised(path: Path) -> bytes:
    return re.sub(rb'"date_created": "[^"]*"', b'"date_created": ""', path.read_bytes())


@pytest.fixture(scope="module")
def ground_truth(coco_tiny):
    """COCO's own file, read: 80 photos, 815 instances (11 crowd)."""
    return read_coco(coco_tiny / "instances.json")


@pytest.fixture(scope="module")
def photos(coco_tiny, coco_gt, tmp_path_factory):
    """A folder of N_IMAGES real photos (two in a sub-folder) and their non-crowd instances,
    each pixel given to the first instance that has it (so that no format must drop an
    overlap), as an in-memory dataset keyed by the folder's paths."""
    folder = tmp_path_factory.mktemp("roundtrip") / "photos"
    (folder / "sub").mkdir(parents=True)
    images, instances, categories = [], {}, {}
    next_id = 1
    for i, img_id in enumerate(sorted(coco_gt.getImgIds())[:N_IMAGES]):
        info = coco_gt.loadImgs(img_id)[0]
        key = ("sub/" if i < 2 else "") + info["file_name"]
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / key)
        taken = np.zeros((info["height"], info["width"]), bool)
        masks, names = [], []
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann) & ~taken
            if mask.sum() >= 20:
                taken |= mask
                masks.append(mask)
                names.append(coco_gt.loadCats(ann["category_id"])[0]["name"])
                categories[names[-1]] = ann["category_id"]
        images.append(ImageEntry(key, info["width"], info["height"]))
        instances[key] = Instances(
            np.stack(masks),
            class_names=names,
            class_ids=[categories[n] for n in names],
            data={"annotation_id": np.arange(next_id, next_id + len(masks), dtype=np.int64)},
        )
        next_id += len(masks)
    return folder, InMemoryDataset(images, instances, categories)


def _problems(err: FormatReadError) -> list[str]:
    return [str(p) for p in err.problems]


# --------------------------------------------------------------------------------------- COCO
def test_coco_ground_truth_masks_are_pycocotools_annToRLE(coco_gt, ground_truth):
    """All 815 instances of COCO's own file, crowd (uncompressed RLE) included."""
    n = crowd = 0
    for img_id in coco_gt.getImgIds():
        info = coco_gt.loadImgs(img_id)[0]
        found = ground_truth.instances(info["file_name"])
        ids = list(found.data["annotation_id"])
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=None)):
            want = coco_gt.annToRLE(ann)
            want_counts = want["counts"].decode() if isinstance(want["counts"], bytes) else want["counts"]
            k = ids.index(ann["id"])
            assert found.rles()[k]["counts"] == want_counts, ann["id"]
            assert bool(found.data["iscrowd"][k]) == bool(ann["iscrowd"])
            n, crowd = n + 1, crowd + ann["iscrowd"]
    assert (n, crowd) == (815, 11)


def test_coco_rle_round_trip_is_identical_and_pycocotools_reads_it(ground_truth, tmp_path):
    from pycocotools.coco import COCO

    (first,) = FORMATS["coco"].write(ground_truth, tmp_path / "a.json", segmentation="rle")
    back = read_coco(first)
    (second,) = FORMATS["coco"].write(back, tmp_path / "b.json", segmentation="rle")
    assert _normalised(first) == _normalised(second)
    coco = COCO(str(second))
    for ann in coco.loadAnns(coco.getAnnIds()[:50]):
        key = coco.loadImgs(ann["image_id"])[0]["file_name"]
        found = ground_truth.instances(key)
        k = list(found.data["annotation_id"]).index(ann["id"])
        assert np.array_equal(coco.annToMask(ann).astype(bool), found.mask(k))


def test_coco_rle_and_polygon_exports_have_their_own_files(photos, tmp_path):
    folder, dataset = photos
    outputs = FolderOutputs(folder, tmp_path)
    rle = outputs.export(dataset, "coco")
    poly = outputs.export(dataset, "coco", segmentation="polygon")
    assert (rle.name, poly.name) == ("photos_coco.json", "photos_coco_polygons.json")
    assert outputs.coco_path == rle and outputs.export_path("coco", segmentation="polygon") == poly
    assert isinstance(json.loads(rle.read_text())["annotations"][0]["segmentation"], dict)
    assert isinstance(json.loads(poly.read_text())["annotations"][0]["segmentation"], list)


def test_a_malformed_coco_file_is_refused_with_every_problem(coco_tiny, tmp_path):
    data = json.loads((coco_tiny / "instances.json").read_text())
    anns = data["annotations"]
    anns[0]["image_id"] = 999_999_999
    anns[1]["category_id"] = 4242
    rle = next(a for a in anns if a["iscrowd"])
    rle["segmentation"]["counts"] = rle["segmentation"]["counts"][:-3]  # runs short of the image
    del anns[2]["segmentation"]
    anns[3]["segmentation"] = [[1.0, 2.0, 3.0]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(CocoFormatError) as err:
        read_coco(bad)
    lines = _problems(err.value)
    assert isinstance(err.value, FormatReadError) and len(lines) == 5
    assert lines[0] == f"{bad}: annotation {anns[0]['id']}: unknown image 999999999"
    assert lines[1] == f"{bad}: annotation {anns[1]['id']}: unknown category 4242"
    assert f"{bad}: annotation {anns[2]['id']}: no segmentation" in lines
    assert any(f"annotation {anns[3]['id']}: bad segmentation: polygon 0 has 3 coordinates" in s for s in lines)
    assert any(f"annotation {rle['id']}: bad segmentation: RLE runs cover" in s for s in lines)


# ------------------------------------------------------------------------------ COCO panoptic
def test_a_malformed_panoptic_file_is_refused_with_every_problem(photos, tmp_path):
    _, dataset = photos
    json_path, *pngs = FORMATS["coco-panoptic"].write(dataset, tmp_path / "pan.json")
    data = json.loads(json_path.read_text())
    data["annotations"][0]["segments_info"][0]["category_id"] = 4242
    data["annotations"][1]["segments_info"].pop()
    json_path.write_text(json.dumps(data))
    pngs[2].unlink()
    with pytest.raises(FormatReadError) as err:
        FORMATS["coco-panoptic"].read(json_path, images_root=None)
    lines = _problems(err.value)
    assert len(lines) == 3
    assert any(s.startswith(f"{pngs[1]}: annotation of image 2: segment ids in the PNG and in") for s in lines)
    assert f"{pngs[2]}: annotation of image 3: the PNG is missing or unreadable" in lines
    assert f"{json_path}: annotation of image 1: segments of unknown categories [4242]" in lines


# ----------------------------------------------------------------------------- plain mask PNGs
def test_mask_pngs_round_trip_pixel_equal(photos, tmp_path):
    from PIL import Image

    folder, dataset = photos
    outputs = FolderOutputs(folder, tmp_path)
    sidecar, *pngs = outputs.export_files(dataset, "masks")
    assert sidecar == tmp_path / "photos_masks" / "instances.json" and len(pngs) == N_IMAGES
    back = read_masks(sidecar.parent, images_root=folder)
    assert back.categories == dataset.categories and set(back.images) == set(dataset.images)
    for key in dataset.images:
        got, want = back.instances(key), dataset.instances(key)
        assert [r["counts"] for r in got.rles()] == [r["counts"] for r in want.rles()]  # every pixel
        assert list(got.class_names) == list(want.class_names)
        assert list(got.data["annotation_id"]) == list(want.data["annotation_id"])
        assert all(s is Source.IMPORTED for s in got.source)
    again = FORMATS["masks"].write(back, tmp_path / "again")
    for a, b in zip([sidecar, *pngs], again, strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    with Image.open(pngs[0]) as img:  # a plain 16-bit PNG any reader takes
        values = np.asarray(img)
    assert img.mode.startswith("I;16") and values.max() == len(dataset.instances(sorted(dataset.images)[0]))


def test_mask_pngs_paint_a_persons_annotation_over_a_prediction(tmp_path):
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 2:12, 2:20] = True  # a prediction
    masks[1, 5:15, 10:25] = True  # a person's, on top of it
    found = Instances(
        masks,
        class_names=["cat", "dog"],
        class_ids=[1, 2],
        scores=[0.9, np.nan],
        source=[Source.SAMCP, Source.CLICK],
    )
    dataset = InMemoryDataset([ImageEntry("a.png", 30, 20)], {"a.png": found}, {"cat": 1, "dog": 2})
    FORMATS["masks"].write(dataset, tmp_path / "m")
    back = read_masks(tmp_path / "m").instances("a.png")
    assert np.array_equal(back.mask(1), masks[1])  # whole
    assert np.array_equal(back.mask(0), masks[0] & ~masks[1])  # what is left of the prediction


def test_a_malformed_mask_png_sidecar_is_refused_with_every_problem(photos, tmp_path):
    _, dataset = photos
    sidecar, *pngs = FORMATS["masks"].write(dataset, tmp_path / "m")
    meta = json.loads(sidecar.read_text())
    first, second = meta["images"][0], meta["images"][1]
    dropped = first["instances"].pop()  # its value is still in the PNG
    second["instances"][0]["category_id"] = 4242
    sidecar.write_text(json.dumps(meta))
    cv2.imwrite(str(pngs[2]), np.zeros((4, 4), np.uint16))
    with pytest.raises(FormatReadError) as err:
        read_masks(sidecar)
    lines = _problems(err.value)
    assert len(lines) == 3
    assert (
        f"{pngs[0]}: image {first['file_name']}: values [{dropped['value']}] of the PNG are not in the sidecar" in lines
    )
    assert f"{sidecar}: image {second['file_name']}, value 1: unknown category 4242" in lines
    assert any(s.startswith(f"{pngs[2]}: image {meta['images'][2]['file_name']}: PNG of (4, 4)") for s in lines)


# ---------------------------------------------------------------------------------------- YOLO
def test_yolo_split_is_seeded_portable_and_supervision_reads_both_halves(photos, tmp_path):
    import supervision as sv

    folder, dataset = photos
    out = tmp_path / "yolo"
    yaml_path, *files = FORMATS["yolo"].write(
        dataset, out, images_root=folder, images="copy", val_fraction=0.25, seed=3
    )
    meta = yaml.safe_load(yaml_path.read_text())
    assert "path" not in meta and (meta["train"], meta["val"]) == ("images/train", "images/val")
    split = split_keys(dataset.images, 0.25, 3)
    assert split == split_keys(reversed(list(dataset.images)), 0.25, 3)  # the set and the seed decide
    assert sum(v == "val" for v in split.values()) == 2 and split != split_keys(dataset.images, 0.25, 4)
    assert all(not f.is_symlink() for f in files)  # copies: the folder stands on its own
    seen = {}
    for half in ("train", "val"):
        ds = sv.DetectionDataset.from_yolo(
            str(out / "images" / half), str(out / "labels" / half), str(yaml_path), force_masks=True
        )
        for path, _, det in ds:
            seen[Path(path).name] = len(det)
    back = read_yolo(out, images_root=folder)
    assert set(back.images) == set(dataset.images)  # the folder's keys, sub/ included
    assert {Path(n).stem for n in seen} == {Path(k.replace("/", "__")).stem for k in dataset.images}
    assert sorted(seen.values()) == sorted(len(dataset.instances(k)) for k in dataset.images)
    plain = FORMATS["yolo"].write(dataset, out, images_root=folder)  # again, without a split
    assert not (out / "images" / "train").exists()  # the earlier split's files are gone
    assert yaml_path.read_text().startswith("# no train/val split") and len(plain) == 1 + 2 * N_IMAGES


def test_yolo_round_trip_is_within_the_tolerance(photos, tmp_path):
    folder, dataset = photos
    FORMATS["yolo"].write(dataset, tmp_path / "a", images_root=folder)
    first = read_yolo(tmp_path / "a", images_root=folder)
    FORMATS["yolo"].write(first, tmp_path / "b", images_root=folder)
    second = read_yolo(tmp_path / "b", images_root=folder)
    ious, again = [], []
    for key in dataset.images:
        want, got, got2 = dataset.instances(key), first.instances(key), second.instances(key)
        assert list(got.class_names) == list(want.class_names) == list(got2.class_names)
        assert not got.data["from_box"].any()
        for i in range(len(want)):
            ious.append(mask_iou(got.mask(i), want.mask(i)))
            again.append(mask_iou(got2.mask(i), got.mask(i)))
            # every pixel lost lies within the tolerance (0.5 px, + the pixel's own) of the boundary;
            # pixels gained are those too, and the one-pixel lines of the bridges between parts
            m = want.mask(i).astype(np.uint8)
            ring = (cv2.dilate(m, np.ones((5, 5), np.uint8)) - cv2.erode(m, np.ones((5, 5), np.uint8))).astype(bool)
            assert not (want.mask(i) & ~got.mask(i) & ~ring).any()
            gained = (got.mask(i) & ~want.mask(i) & ~ring).astype(np.uint8)
            assert not cv2.erode(gained, np.ones((2, 2), np.uint8)).any()  # lines only, no area
    print(f"YOLO round trip: {len(ious)} masks, IoU mean {np.mean(ious):.4f}; re-export mean {np.mean(again):.4f}")
    assert np.mean(ious) > 0.96 and np.mean(again) > 0.97


def test_yolo_polygons_keep_holes_and_every_part_and_are_simplified(coco_gt):
    mask = np.zeros((60, 80), bool)
    mask[5:45, 5:45] = True
    mask[15:30, 15:30] = False  # a hole
    mask[50:52, 70:72] = True  # a 2 × 2 part
    mask[10:40, 55:65] = True
    polys = mask_to_polygons(mask, pixel_edges=False, tolerance=1.0)
    assert len(polys) == 3  # the square (its hole spliced in), the bar, the 2 × 2 part
    back = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(back, [np.round(np.asarray(chain_polygons(polys)).reshape(-1, 2)).astype(np.int32)], 1)
    back = back.astype(bool)
    assert not back[16:29, 16:29].any() and back[50:52, 70:72].all()  # the hole stays empty (1 px in), the part kept
    assert (back ^ mask).sum() <= 0.04 * mask.sum()  # the bridges' lines, the hole's corners cut by 1 px
    # on real photos: fewer points, close masks
    img_ids = sorted(coco_gt.getImgIds())[:10]
    full = simple = 0
    for img_id in img_ids:
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            m = instance_mask(coco_gt, ann)
            full += sum(len(p) for p in mask_to_polygons(m, pixel_edges=False))
            simple += sum(len(p) for p in mask_to_polygons(m, pixel_edges=False, tolerance=0.5))
    assert simple < full / 3


def test_yolo_detection_boxes_round_trip_exactly_and_are_marked(photos, tmp_path):
    folder, dataset = photos
    _, *files = FORMATS["yolo"].write(dataset, tmp_path / "a", images_root=folder, task="detect")
    labels = [f for f in files if f.suffix == ".txt"]
    assert all(len(line.split()) == 5 for f in labels for line in f.read_text().splitlines())
    back = read_yolo(tmp_path / "a", images_root=folder)
    for key in dataset.images:
        got, want = back.instances(key), dataset.instances(key)
        assert got.data["from_box"].all()
        np.testing.assert_allclose(got.data["box"], want.boxes, atol=1e-3)  # XYXY pixels
        for i in range(len(want)):
            x0, y0, x1, y1 = (int(v) for v in want.boxes[i])
            assert got.mask(i).sum() == (x1 - x0) * (y1 - y0) and got.mask(i)[y0:y1, x0:x1].all()
    again = FORMATS["yolo"].write(back, tmp_path / "b", images_root=folder, task="detect")
    for a, b in zip(files, again[1:], strict=True):
        if a.suffix == ".txt":
            assert a.read_bytes() == b.read_bytes()


def test_yolo_labels_only_take_the_folders_images(photos, tmp_path):
    """A detector's output: data.yaml and labels/, no images: the folder's images by stem."""
    folder, dataset = photos
    FORMATS["yolo"].write(dataset, tmp_path / "a", images_root=folder, task="detect")
    shutil.rmtree(tmp_path / "a" / "images")
    back = read_yolo(tmp_path / "a", images_root=folder)
    assert set(back.images) == set(dataset.images)
    assert all(len(back.instances(k)) == len(dataset.instances(k)) for k in dataset.images)
    first = sorted(dataset.images)[0]
    (tmp_path / "a" / "labels" / f"{Path(first.replace('/', '__')).stem}.txt").unlink()  # no detection there
    back = read_yolo(tmp_path / "a", images_root=folder)
    assert set(back.images) == set(dataset.images) and len(back.instances(first)) == 0


def test_a_malformed_yolo_dataset_is_refused_with_every_problem(photos, tmp_path):
    folder, dataset = photos
    FORMATS["yolo"].write(dataset, tmp_path / "a", images_root=folder)
    labels = sorted((tmp_path / "a" / "labels").glob("*.txt"))
    lines = labels[0].read_text().splitlines()
    lines[1] = "99 " + lines[1].split(" ", 1)[1]
    lines.append("0 0.5 0.5 0.2")
    lines.append("0 0.5 0.5 1.7 0.2")
    labels[0].write_text("\n".join(lines) + "\n")
    (tmp_path / "a" / "labels" / "stray.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(FormatReadError) as err:
        read_yolo(tmp_path / "a", images_root=folder)
    got = _problems(err.value)
    n = len(lines)
    assert len(got) == 4
    assert any(s.startswith(f"{labels[0]}: line 2: class 99 is not in data.yaml's names") for s in got)
    assert f"{labels[0]}: line {n - 1}: 4 values: a box needs 5 (class cx cy w h), a polygon 7 or more" in got
    assert f"{labels[0]}: line {n}: box values outside [0, 1] (not normalised?)" in got
    assert any(s.startswith(f"{tmp_path / 'a' / 'labels' / 'stray.txt'}: a label file of no image") for s in got)
    (tmp_path / "b").mkdir()
    with pytest.raises(FormatReadError, match=r"no data\.yaml"):
        read_yolo(tmp_path / "b")


def test_store_exports_every_new_option(photos, tmp_path):
    """The options go through FolderOutputs (as the CLI passes them) into a store's export."""
    folder, dataset = photos
    store = AnnotationStore(tmp_path / "s.annotations.db")
    key = sorted(dataset.images)[0]
    found = dataset.instances(key)
    for i in range(len(found)):
        store.add(key, found.mask(i), str(found.class_names[i]))
    outputs = FolderOutputs(folder, tmp_path)
    yaml_path = outputs.export(store, "yolo", task="detect", images="copy", tolerance=1.0)
    assert yaml_path == outputs.yolo_dir / "data.yaml"
    assert len(read_yolo(outputs.yolo_dir, images_root=folder).instances(key)) == len(found)
    assert len(read_masks(outputs.export(store, "masks")).instances(key)) == len(found)


def test_coco_polygon_round_trip_stays_within_the_pixel_grid(ground_truth, tmp_path):
    """COCO polygons hold no holes: ours splice them in by keyhole cuts along the pixels' edges,
    which pycocotools fills back to the pixels but for steps it rasterises otherwise and the cuts'
    one-pixel lines. On all 815 instances: crowd regions stay RLE, no pixel is added, the masks
    come back with mean IoU ≥ 0.999 and none under 0.95."""
    (path,) = FORMATS["coco"].write(ground_truth, tmp_path / "p.json", segmentation="polygon")
    written = json.loads(path.read_text())["annotations"]
    assert all(isinstance(a["segmentation"], dict) == bool(a["iscrowd"]) for a in written)
    assert sum(a["iscrowd"] for a in written) == 11
    back = read_coco(path)
    ious, equal, added = [], 0, 0
    for key in ground_truth.images:
        first, second = ground_truth.instances(key), back.instances(key)
        assert list(second.data["annotation_id"]) == list(first.data["annotation_id"])
        for k in range(len(first)):
            a, b = first.mask(k), second.mask(k)
            ious.append(mask_iou(a, b))
            equal += bool(np.array_equal(a, b))
            added += int((b & ~a).sum())
    assert len(ious) == 815 and added == 0
    assert np.mean(ious) >= 0.999 and min(ious) >= 0.95 and equal >= 650, (np.mean(ious), min(ious), equal)
