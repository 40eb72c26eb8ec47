"""The format registry: every format listed, written from the store and from an in-memory
dataset alike, and read back (COCO, COCO panoptic, YOLO) to the instances written, on real COCO
photos' annotations."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotator.evaluation import mask_iou
from annotator.formats import FORMATS, Dataset, ImageEntry, InMemoryDataset, get_format
from annotator.formats.coco import CocoFormatError, read_coco, read_coco_boxes, segmentation_rle
from annotator.formats.names import flat_names
from annotator.formats.yolo import flat_name
from annotator.instances import Instances, Source
from annotator.masks import decode_rle, encode_rle
from annotator.outputs import EXPORT_FORMATS, FolderOutputs
from annotator.store import AnnotationStore

from .conftest import instance_mask

N_IMAGES = 3


@pytest.fixture(scope="module")
def annotated(coco_tiny, coco_gt, tmp_path_factory) -> tuple[Path, FolderOutputs, AnnotationStore]:
    """A folder of 3 real COCO photos (one in a sub-folder) and a store of their annotations:
    scores and predicted IoUs on some, a declared class no instance has, and an image without
    annotations."""
    root = tmp_path_factory.mktemp("formats")
    folder = root / "photos"
    (folder / "sub").mkdir(parents=True)
    outputs = FolderOutputs(folder, root / "exports")
    store = outputs.open_store()
    store.meta["classes"] = ["unicorn"]
    rng = np.random.default_rng(0)
    for i, img_id in enumerate(sorted(coco_gt.getImgIds())[: N_IMAGES + 1]):
        info = coco_gt.loadImgs(img_id)[0]
        key = ("sub/" if i == 0 else "") + info["file_name"]
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / key)
        store.add_image(key, info["width"], info["height"])
        if i == N_IMAGES:  # the last image: no annotations
            continue
        for k, ann in enumerate(coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))):
            name = coco_gt.loadCats(ann["category_id"])[0]["name"]
            score = float(rng.uniform(0.3, 1.0)) if k % 2 else None
            iou = float(rng.uniform(0.5, 1.0)) if k % 3 else None
            store.add(key, instance_mask(coco_gt, ann), name, score=score, predicted_iou=iou)
    return folder, outputs, store


def _same_instances(got: Instances, want: Instances, masks: bool = True, ids: bool = True) -> None:
    assert got.image_size == want.image_size and len(got) == len(want)
    if masks:
        assert [r["counts"] for r in got.rles()] == [r["counts"] for r in want.rles()]  # the same masks, exactly
    assert list(got.class_names) == list(want.class_names)
    assert list(got.class_ids) == list(want.class_ids)
    np.testing.assert_array_equal(got.scores, want.scores)  # NaN where none, on both sides
    np.testing.assert_array_equal(got.predicted_iou, want.predicted_iou)
    if ids:
        assert list(got.data["annotation_id"]) == list(want.data["annotation_id"])


def _normalised(path: Path) -> bytes:
    """A file's bytes without what changes from one export to the next: COCO's date_created,
    YOLO's absolute dataset path."""
    data = path.read_bytes()
    data = re.sub(rb'"date_created": "[^"]*"', b'"date_created": ""', data)
    return re.sub(rb"^path: .*$", b"path:", data, flags=re.M)


def test_registry_lists_every_format(annotated, tmp_path):
    folder, _, store = annotated
    assert {"coco", "coco-panoptic", "yolo", "label-studio", "masks"} <= set(FORMATS)
    assert tuple(FORMATS) == EXPORT_FORMATS
    assert {"coco", "coco-panoptic", "yolo", "masks"} <= {n for n, f in FORMATS.items() if f.readable}
    with pytest.raises(ValueError, match="unknown export format 'tfrecord'"):
        get_format("tfrecord")
    assert isinstance(store, Dataset)  # the store is a dataset as it is
    here = FolderOutputs(folder, tmp_path)
    names = {"coco": "photos_coco.json", "coco-panoptic": "photos_panoptic.json", "yolo": "photos_yolo"}
    names["label-studio"], names["masks"] = "photos_label_studio.json", "photos_masks"
    for name, fmt in FORMATS.items():
        assert here.export_path(name) == tmp_path / names.get(name, f"photos{fmt.suffix}")
        files = here.export_files(store, name)
        main = files[0]
        assert main == {
            "yolo": here.yolo_dir / "data.yaml",
            "masks": here.export_path(name) / "instances.json",
            "labelme": here.export_path(name) / "labels.txt",
            "voc": here.export_path(name) / "labelmap.txt",
        }.get(name, here.export_path(name))
        assert all(f.is_file() for f in files) and len(set(files)) == len(files)
        assert here.export(store, name) == main
        if fmt.readable:
            given = {"images_root": folder} if name == "label-studio" else {}  # sizes of images without regions
            assert set(fmt.read(main, **given).images) == (
                {flat_name(k) for k in store.images} if name == "yolo" else set(store.images)
            )
    assert len(here.export_files(store, "coco-panoptic")) == 1 + len(store.images)  # the JSON and a PNG per image
    with pytest.raises(TypeError, match="unknown export options: colour"):
        here.export(store, "coco", colour="red")


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_coco_round_trip(annotated, tmp_path, segmentation):
    """RLE: the instances written come back exactly (a second export is the same file);
    polygons: the masks pycocotools rasterises, close to those written."""
    from pycocotools.coco import COCO

    _, _, store = annotated
    (path,) = FORMATS["coco"].write(store, tmp_path / "coco.json", segmentation=segmentation)
    back = read_coco(path)
    assert isinstance(back, Dataset)
    assert {k: (v.width, v.height) for k, v in back.images.items()} == {
        k: (v.width, v.height) for k, v in store.images.items()
    }
    used = {a.label: a.category_id for a in store.annotations.values()}
    assert back.categories == {**used, "unicorn": store.categories["unicorn"]}
    for key in store.images:
        got, want = back.instances(key), store.instances(key)
        assert all(s is Source.IMPORTED for s in got.source)
        _same_instances(got, want, masks=segmentation == "rle")
    if segmentation == "rle":
        again = FORMATS["coco"].write(back, tmp_path / "again.json")[0]
        assert _normalised(again) == _normalised(path)  # ids, scores, categories: the same file
        return
    coco = COCO(str(path))
    image_keys = {im["id"]: im["file_name"] for im in coco.dataset["images"]}
    ious = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        found = back.instances(image_keys[ann["image_id"]])
        i = list(found.data["annotation_id"]).index(ann["id"])
        assert np.array_equal(found.mask(i), coco.annToMask(ann).astype(bool))  # as pycocotools reads it
        ious.append(mask_iou(found.mask(i), store.instances(image_keys[ann["image_id"]]).mask(i)))
    assert np.mean(ious) > 0.97 and np.min(ious) > 0.8


def test_coco_reads_cocos_own_file(coco_tiny, coco_gt):
    back = read_coco(coco_tiny / "instances.json")
    assert len(back.images) == len(coco_gt.getImgIds())
    assert back.categories == {c["name"]: c["id"] for c in coco_gt.loadCats(coco_gt.getCatIds())}
    img_id = sorted(coco_gt.getImgIds())[0]
    info = coco_gt.loadImgs(img_id)[0]
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=None))
    found = back.instances(info["file_name"])
    assert list(found.data["annotation_id"]) == [a["id"] for a in anns]
    for i, ann in enumerate(anns):
        assert np.array_equal(found.mask(i), instance_mask(coco_gt, ann))  # what pycocotools decodes
    crowd = next(a for a in coco_gt.dataset["annotations"] if a["iscrowd"])  # uncompressed RLE
    image = coco_gt.loadImgs(crowd["image_id"])[0]
    rle = segmentation_rle(crowd["segmentation"], image["height"], image["width"])
    assert np.array_equal(decode_rle(rle), instance_mask(coco_gt, crowd))


def test_coco_boxes_and_errors(coco_tiny, tmp_path):
    data = json.loads((coco_tiny / "instances.json").read_text())
    boxes = read_coco_boxes(coco_tiny / "instances.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    first = data["annotations"][0]
    file_name = next(im["file_name"] for im in data["images"] if im["id"] == first["image_id"])
    assert boxes[file_name][0] == {
        "bbox": first["bbox"],
        "label": names[first["category_id"]],
        "category_id": first["category_id"],  # the file's id: a bulk run keeps it
    }
    assert sum(len(v) for v in boxes.values()) == len(data["annotations"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []}')
    with pytest.raises(CocoFormatError) as err:
        read_coco_boxes(bad)
    assert err.value.reason == "'annotations'" and str(err.value).startswith(f"{bad}: not a COCO")
    with pytest.raises(CocoFormatError):
        read_coco(bad)


def test_panoptic_round_trip(coco_gt, tmp_path):
    """Non-overlapping instances (a panoptic segmentation cannot hold overlaps) come back as
    they were written: the same masks, labels and categories."""
    images, instances, categories = [], {}, {}
    for img_id in sorted(coco_gt.getImgIds())[:N_IMAGES]:
        info = coco_gt.loadImgs(img_id)[0]
        taken = np.zeros((info["height"], info["width"]), bool)
        masks, names = [], []
        for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False)):
            mask = instance_mask(coco_gt, ann) & ~taken  # each pixel to the first instance that has it
            if mask.any():
                taken |= mask
                masks.append(mask)
                names.append(coco_gt.loadCats(ann["category_id"])[0]["name"])
                categories[names[-1]] = ann["category_id"]
        images.append(ImageEntry(info["file_name"], info["width"], info["height"]))
        instances[info["file_name"]] = Instances(
            np.stack(masks),
            class_names=names,
            class_ids=[categories[n] for n in names],
            scores=np.linspace(1, 0.5, len(masks)),
        )
    dataset = InMemoryDataset(images, instances, categories)
    json_path, *pngs = FORMATS["coco-panoptic"].write(dataset, tmp_path / "pan.json")
    assert len(pngs) == N_IMAGES and all(p.is_file() for p in pngs)
    back = FORMATS["coco-panoptic"].read(json_path)
    assert back.categories == categories and set(back.images) == set(dataset.images)
    for key in dataset.images:
        got, want = back.instances(key), dataset.instances(key)
        assert got.image_size == want.image_size
        written = sorted((str(n), r["counts"]) for n, r in zip(want.class_names, want.rles(), strict=True))
        read = sorted((str(n), r["counts"]) for n, r in zip(got.class_names, got.rles(), strict=True))
        assert read == written
        assert all(got.isthing) and all(categories[n] == c for n, c in zip(got.class_names, got.class_ids, strict=True))


def test_yolo_round_trip(annotated, tmp_path):
    """YOLO keeps polygons and class indices: labels, classes and sizes come back exactly, masks
    as the filled polygons (see annotator.formats.yolo)."""
    folder, _, store = annotated
    yaml_path, *files = FORMATS["yolo"].write(store, tmp_path / "yolo", images_root=folder)
    assert yaml_path.name == "data.yaml" and len(files) == 2 * len(store.images)
    back = FORMATS["yolo"].read(tmp_path / "yolo")
    by_id = sorted(
        {*((a.category_id, a.label) for a in store.annotations.values()), (store.categories["unicorn"], "unicorn")}
    )
    assert back.categories == {name: i for i, (_, name) in enumerate(by_id)}
    assert FORMATS["yolo"].read(yaml_path).categories == back.categories  # the folder or its data.yaml
    ious = []
    for key, info in store.images.items():
        got, want = back.instances(flat_name(key)), store.instances(key)
        assert (back.images[flat_name(key)].width, back.images[flat_name(key)].height) == (info.width, info.height)
        assert list(got.class_names) == list(want.class_names)
        ious += [mask_iou(got.mask(i), want.mask(i)) for i in range(len(want))]
    assert np.mean(ious) > 0.95 and np.min(ious) > 0.5


def test_in_memory_dataset_and_store_export_identically(annotated, tmp_path):
    folder, _, store = annotated
    snapshot = InMemoryDataset.from_dataset(store)
    assert isinstance(snapshot, Dataset)
    assert snapshot.categories == snapshot.declared_categories() and "unicorn" in snapshot.categories
    options = {
        "coco": [{"segmentation": "rle"}, {"segmentation": "polygon"}],
        "coco-panoptic": [{"isthing": {"person": False}}],
        "yolo": [{"images_root": folder}],
        "label-studio": [
            {"url_prefix": "/data/", "region_type": "brush"},
            {"images_root": folder, "region_type": "polygon"},
        ],
        "masks": [{}],
    }
    for name, fmt in FORMATS.items():  # a format not listed: its default options
        for k, opts in enumerate(options.get(name, [fmt.write_options({"images_root": folder})])):
            out = fmt.suffix.strip("_")
            a = fmt.write(store, tmp_path / f"store{k}" / out, **opts)
            b = fmt.write(snapshot, tmp_path / f"memory{k}" / out, **opts)
            assert [p.relative_to(tmp_path / f"store{k}") for p in a] == [
                p.relative_to(tmp_path / f"memory{k}") for p in b
            ]
            for pa, pb in zip(a, b, strict=True):
                assert _normalised(pa) == _normalised(pb), f"{name} {opts}: {pa.name} differs"


def test_in_memory_dataset_checks_its_instances():
    image = ImageEntry("a.jpg", 4, 3)
    mask = np.zeros((1, 3, 4), bool)
    mask[0, 1, 1] = True
    ok = InMemoryDataset([image], {"a.jpg": Instances(mask, class_names=["cat"], class_ids=[7])}, {"cat": 7})
    found = ok.instances("a.jpg")
    found.scores[:] = 0.5  # a copy: the dataset keeps its own
    assert np.isnan(ok.instances("a.jpg").scores).all()
    with pytest.raises(KeyError):
        ok.instances("b.jpg")
    with pytest.raises(ValueError, match="has no category"):
        InMemoryDataset([image], {"a.jpg": Instances(mask, class_names=["dog"], class_ids=[7])}, {"cat": 7})
    with pytest.raises(ValueError, match="with id 8"):
        InMemoryDataset([image], {"a.jpg": Instances(mask, class_names=["cat"], class_ids=[8])}, {"cat": 7})
    with pytest.raises(ValueError, match="not an image"):
        InMemoryDataset([image], {"b.jpg": Instances(mask, class_names=["cat"], class_ids=[7])}, {"cat": 7})
    with pytest.raises(ValueError, match="for an image of"):
        InMemoryDataset(
            [ImageEntry("a.jpg", 5, 3)], {"a.jpg": Instances(mask, class_names=["cat"], class_ids=[7])}, {"cat": 7}
        )
    assert encode_rle(ok.instances("a.jpg").mask(0)) == ok.instances("a.jpg").rles()[0]


def test_flat_names_are_unique_by_stem_and_independent_of_order():
    """Plain names where free; ``~N`` (the first N no other name has) where two keys would share
    a file or a stem, without case; the same names whatever order the keys come in."""
    keys = [
        "b.jpg",
        "sub/c.jpg",
        "sub/a.jpg",
        "sub__a.jpg",
        "sub__a~2.jpg",
        "x.jpg",
        "X.png",
        "a/b__c.jpg",
        "a__b/c.jpg",
    ]
    names = dict(zip(keys, flat_names(keys), strict=True))
    assert names == {
        "b.jpg": "b.jpg",
        "sub/c.jpg": "sub__c.jpg",
        "sub/a.jpg": "sub__a~3.jpg",  # ~2 is another image's own name
        "sub__a.jpg": "sub__a.jpg",
        "sub__a~2.jpg": "sub__a~2.jpg",
        "X.png": "X.png",
        "x.jpg": "x~2.jpg",  # X.png first by key; x.txt and X.txt are one file on macOS / Windows
        "a/b__c.jpg": "a__b__c.jpg",
        "a__b/c.jpg": "a__b__c~2.jpg",
    }
    for seed in range(5):
        shuffled = list(np.random.default_rng(seed).permutation(keys))
        assert dict(zip(shuffled, flat_names(shuffled), strict=True)) == names
    assert flat_names(["sub/a.jpg", "sub__a.jpg", "a.jpg"], suffix=".png") == ["sub__a~2.png", "sub__a.png", "a.png"]
    assert flat_names(["no/collision.jpg", "here.png"]) == [flat_name("no/collision.jpg"), "here.png"]
