"""LabelMe, CVAT for images 1.1, Pascal VOC and Label Studio JSON: each written and read back on
real COCO photos (export → read → export identical, masks pixel-equal where the format holds
them exactly), read by a peer (datumaro for VOC and CVAT, label-studio-sdk's brush decoder),
and a malformed file of each refused with one line per problem (file, record, reason)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotator.formats import FORMATS, InMemoryDataset
from annotator.formats.coco import read_coco
from annotator.formats.cvat import cvat_rle_to_mask, mask_to_cvat_rle
from annotator.formats.errors import FormatReadError
from annotator.formats.label_studio.importer import image_key
from annotator.instances import Source
from annotator.masks import rle_iou

from .conftest import COCO_TINY

IMAGES = COCO_TINY / "images"


@pytest.fixture(scope="module")
def coco_all() -> InMemoryDataset:
    return read_coco(COCO_TINY / "instances.json")


@pytest.fixture(scope="module")
def coco10(coco_all) -> InMemoryDataset:
    """Ten photos of coco_tiny_val (those with the most instances first: crowds, overlaps, holes)."""
    keys = sorted(coco_all.images, key=lambda k: (-len(coco_all.instances(k)), k))[:10]
    return InMemoryDataset(
        [coco_all.images[k] for k in keys], {k: coco_all.instances(k) for k in keys}, coco_all.categories
    )


def _files_equal(a: list[Path], root_a: Path, b: list[Path], root_b: Path) -> None:
    assert [p.relative_to(root_a) for p in a] == [p.relative_to(root_b) for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.relative_to(root_a)} differs"


def _by_id(found) -> dict[int, int]:
    return {int(a): i for i, a in enumerate(found.data["annotation_id"])}


def _same_masks(source: InMemoryDataset, back: InMemoryDataset) -> int:
    """Every instance of ``source`` is in ``back`` under its annotation id, class and mask equal."""
    n = 0
    assert set(back.images) == set(source.images)
    for key, image in source.images.items():
        assert (back.images[key].width, back.images[key].height) == (image.width, image.height)
        a, b = source.instances(key), back.instances(key)
        assert sorted(a.data["annotation_id"]) == sorted(b.data["annotation_id"])
        where = _by_id(b)
        for i, ann_id in enumerate(a.data["annotation_id"]):
            j = where[int(ann_id)]
            assert b.class_names[j] == a.class_names[i]
            assert np.array_equal(b.mask(j), a.mask(i)), f"{key}: annotation {ann_id}"
            n += 1
        assert all(Source(s) is Source.IMPORTED for s in b.source)
        assert b.data["annotation_id"].dtype == np.int64
    return n


def _class_order(dataset: InMemoryDataset) -> dict[str, int]:
    """The categories a reader gives a file whose classes are listed in the dataset's id order."""
    return {name: i for i, name in enumerate(sorted(dataset.categories, key=dataset.categories.get), start=1)}


# ----------------------------------------------------------------------------------- LabelMe


def test_labelme_masks_round_trip_pixel_equal_and_identical(coco_all, tmp_path):
    fmt = FORMATS["labelme"]
    files = fmt.write(coco_all, tmp_path / "a", images_root=IMAGES)
    assert files[0].name == "labels.txt" and len(files) == 1 + len(coco_all.images)
    back = fmt.read(tmp_path / "a", images_root=IMAGES)
    assert _same_masks(coco_all, back) == 815  # every instance of the 80 photos
    assert back.categories == _class_order(coco_all)
    again = fmt.write(back, tmp_path / "b", images_root=IMAGES)
    _files_equal(files, tmp_path / "a", again, tmp_path / "b")
    doc = json.loads(files[1].read_text())
    assert doc["imagePath"] == os.path.relpath(IMAGES.resolve() / f"{files[1].stem}.jpg", files[1].parent.resolve())
    shape = doc["shapes"][0]
    assert shape["shape_type"] == "mask" and len(shape["points"]) == 2 and isinstance(shape["group_id"], int)
    assert doc["imageData"] is None and doc["imageHeight"] > 0


def test_labelme_polygons_keep_parts_close(coco10, tmp_path):
    fmt = FORMATS["labelme"]
    files = fmt.write(coco10, tmp_path / "p", images_root=IMAGES, shape_type="polygon")
    back = fmt.read(tmp_path / "p", images_root=IMAGES)
    ious, parts = [], 0
    for key in coco10.images:
        a, b = coco10.instances(key), back.instances(key)
        where = _by_id(b)
        for i, ann_id in enumerate(a.data["annotation_id"]):
            j = where[int(ann_id)]
            ious.append(rle_iou([a.rles()[i]], [b.rles()[j]])[0, 0])
        shapes = json.loads(files[1 + sorted(coco10.images).index(key)].read_text())["shapes"]
        parts += len(shapes) - len({s["group_id"] for s in shapes})  # shapes beyond one per instance
    assert min(ious) > 0.95 and np.mean(ious) > 0.999
    assert parts > 0  # multi-part instances are several polygons of one group_id
    # a second round trip of the polygons is a fixed point (IoU 1 with the first read)
    back2 = fmt.read(fmt.write(back, tmp_path / "q", images_root=IMAGES, shape_type="polygon")[0].parent)
    for key in coco10.images:
        b, c = back.instances(key), back2.instances(key)
        assert rle_iou(b.rles(), c.rles()).diagonal().min() > 0.95


def test_labelme_reads_labelme_shapes(tmp_path):
    """A file as labelme writes it by hand: a polygon, a rectangle and a circle of one group (one
    instance), a lone polygon, a point (skipped), no labels.txt."""
    doc = {
        "version": "5.5.0",
        "flags": {},
        "imagePath": "x.jpg",
        "imageData": None,
        "imageHeight": 40,
        "imageWidth": 50,
        "shapes": [
            {"label": "cat", "points": [[2, 2], [10, 2], [10, 10]], "group_id": 3, "shape_type": "polygon"},
            {"label": "cat", "points": [[20, 20], [25, 30]], "group_id": 3, "shape_type": "rectangle"},
            {"label": "dog", "points": [[40, 10], [40, 14]], "group_id": None, "shape_type": "circle"},
            {"label": "dog", "points": [[1, 30], [8, 30], [8, 38]], "group_id": None, "shape_type": "polygon"},
            {"label": "cat", "points": [[5, 5]], "group_id": None, "shape_type": "point"},
        ],
    }
    (tmp_path / "x.json").write_text(json.dumps(doc))
    back = FORMATS["labelme"].read(tmp_path)
    found = back.instances("x.jpg")
    assert list(found.class_names) == ["cat", "dog", "dog"] and back.categories == {"cat": 1, "dog": 2}
    assert "annotation_id" not in found.data  # two instances have no group_id
    assert found.mask(0)[20:31, 20:26].all() and found.mask(0)[2, 2] and not found.mask(0)[15, 15]
    assert found.mask(1)[12, 40] and found.mask(1)[10, 44] and not found.mask(1)[10, 46]  # radius 4


def test_labelme_malformed_refused_with_every_problem(coco10, tmp_path):
    fmt = FORMATS["labelme"]
    files = fmt.write(coco10, tmp_path / "bad", images_root=IMAGES)
    first = json.loads(files[1].read_text())
    first["shapes"][1]["mask"] = base64.b64encode(b"not a png").decode()
    first["shapes"][2]["shape_type"] = "blob"
    files[1].write_text(json.dumps(first))
    files[2].write_text("{ not json")
    with pytest.raises(FormatReadError) as err:
        fmt.read(tmp_path / "bad")
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and len(err.value.problems) == 3
    assert lines[0].startswith(f"{files[1]}: shape 1: mask is not a base64 PNG")
    assert lines[1] == f"{files[1]}: shape 2: unknown shape_type 'blob'"
    assert lines[2].startswith(f"{files[2]}: not a LabelMe JSON")


# -------------------------------------------------------------------------------------- CVAT


def test_cvat_rle_is_cvats():
    """CVAT's run lengths: over the crop, row-major, background first (0 when it starts set)."""
    mask = np.zeros((5, 6), bool)
    mask[1, 2:4] = mask[2, 2] = True
    runs, box = mask_to_cvat_rle(mask)
    assert box == (2, 1, 2, 2) and runs == [0, 3, 1]  # crop [[1, 1], [1, 0]]
    assert np.array_equal(cvat_rle_to_mask(runs, *box, (5, 6)), mask)
    with pytest.raises(ValueError, match="covers 5 pixels"):
        cvat_rle_to_mask([0, 3, 2], *box, (5, 6))


def test_cvat_round_trip_pixel_equal_and_identical(coco_all, tmp_path):
    fmt = FORMATS["cvat"]
    (xml,) = fmt.write(coco_all, tmp_path / "a.xml")
    back = fmt.read(xml)
    assert _same_masks(coco_all, back) == 815
    assert back.categories == _class_order(coco_all)
    (again,) = fmt.write(back, tmp_path / "b.xml")
    assert again.read_bytes() == xml.read_bytes()


def test_cvat_reads_polygons_boxes_and_skips_others(tmp_path):
    xml = tmp_path / "annotations.xml"
    xml.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
<meta><task><labels><label><name>car</name></label><label><name>tree</name></label></labels></task></meta>
<image id="0" name="sub/a.jpg" width="30" height="20">
  <box label="car" source="manual" occluded="0" xtl="2.0" ytl="3.0" xbr="12.0" ybr="8.0" z_order="0"/>
  <polygon label="tree" source="manual" occluded="0" points="20.0,2.0;28.0,2.0;28.0,10.0;20.0,10.0" z_order="0"/>
  <polyline label="car" points="1,1;5,5" z_order="0"/>
  <tag label="car"/>
</image>
<image id="1" name="b.jpg" width="30" height="20"/>
</annotations>"""
    )
    back = FORMATS["cvat"].read(tmp_path)  # the folder of annotations.xml
    assert set(back.images) == {"sub/a.jpg", "b.jpg"} and back.categories == {"car": 1, "tree": 2}
    found = back.instances("sub/a.jpg")
    assert list(found.class_names) == ["car", "tree"] and "annotation_id" not in found.data
    assert found.areas.tolist() == [50, 64]  # [2, 12) x [3, 8); the square [20, 28] x [2, 10]
    assert len(back.instances("b.jpg")) == 0


def test_cvat_malformed_refused_with_every_problem(coco10, tmp_path):
    (xml,) = FORMATS["cvat"].write(coco10, tmp_path / "a.xml")
    text = xml.read_text()
    first_key = sorted(coco10.images)[0]
    rle_start = text.index('rle="') + 5
    text = text[:rle_start] + "9999999, " + text[rle_start:]  # the first mask covers too many pixels
    text = text.replace(f'name="{sorted(coco10.images)[1]}" width="', f'name="{sorted(coco10.images)[1]}" width="x', 1)
    xml.write_text(text)
    with pytest.raises(FormatReadError) as err:
        FORMATS["cvat"].read(xml)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{xml}: image {first_key}, <mask> 0: rle covers")
    assert lines[1] == f"{xml}: image {sorted(coco10.images)[1]}: width / height are not integers"
    xml.write_text("<annotations><image")
    with pytest.raises(FormatReadError, match="not a CVAT XML"):
        FORMATS["cvat"].read(xml)


# --------------------------------------------------------------------------------------- VOC


def test_voc_round_trip_identical_and_painted(coco_all, tmp_path):
    fmt = FORMATS["voc"]
    files = fmt.write(coco_all, tmp_path / "a")
    assert [f.relative_to(tmp_path / "a").as_posix() for f in files[:3]] == [
        "labelmap.txt",
        "ImageSets/Segmentation/default.txt",
        "ImageSets/Main/default.txt",
    ]
    back = fmt.read(tmp_path / "a")
    assert back.categories == _class_order(coco_all)
    ious, n = [], 0
    for key in coco_all.images:
        a, b = coco_all.instances(key), back.instances(key)
        where = _by_id(a)
        occupied = np.zeros(a.image_size, np.int64)
        for j, ann_id in enumerate(b.data["annotation_id"]):
            i = where[int(ann_id)]
            assert b.class_names[j] == a.class_names[i]
            assert not (b.mask(j) & ~a.mask(i)).any()  # only its own pixels, less where another won
            occupied += b.mask(j)
            ious.append(rle_iou([a.rles()[i]], [b.rles()[j]])[0, 0])
            n += 1
        assert occupied.max() <= 1  # one instance a pixel
    assert n == 815 and np.mean(ious) > 0.97  # every instance keeps pixels on these photos
    again = fmt.write(back, tmp_path / "b")
    _files_equal(files, tmp_path / "a", again, tmp_path / "b")
    assert _same_masks(back, fmt.read(tmp_path / "b")) == 815  # without overlaps: pixel-equal


def test_voc_boxes_only_xml_becomes_rectangles(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "im1.xml").write_text(
        "<annotation><filename>im1.png</filename><size><width>20</width><height>10</height><depth>3</depth></size>"
        "<object><name>dog</name><bndbox><xmin>2</xmin><ymin>1</ymin><xmax>6</xmax><ymax>4</ymax></bndbox></object>"
        "</annotation>"
    )
    back = FORMATS["voc"].read(tmp_path)
    found = back.instances("im1.png")
    assert list(found.class_names) == ["dog"] and back.categories["dog"] == 12  # VOC's 20 classes, no labelmap
    assert found.areas.tolist() == [12] and found.mask(0)[1:4, 2:6].all()


def test_voc_malformed_refused_with_every_problem(coco10, tmp_path):
    from PIL import Image

    files = FORMATS["voc"].write(coco10, tmp_path / "v")
    stems = (tmp_path / "v" / "ImageSets" / "Segmentation" / "default.txt").read_text().split()
    (tmp_path / "v" / "Annotations" / f"{stems[0]}.xml").write_text("<annotation><object>")
    cls = tmp_path / "v" / "SegmentationClass" / f"{stems[1]}.png"
    Image.open(cls).resize((7, 5)).save(cls)
    with open(tmp_path / "v" / "ImageSets" / "Segmentation" / "default.txt", "a") as f:
        f.write("missing_one\n")
    with pytest.raises(FormatReadError) as err:
        FORMATS["voc"].read(tmp_path / "v")
    lines = str(err.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{tmp_path / 'v' / 'Annotations' / stems[0]}.xml: ")
    assert lines[1].startswith(f"{tmp_path / 'v' / 'SegmentationObject' / stems[1]}.png: image {stems[1]}: ")
    assert "(7, 5)" in lines[1]
    assert (
        lines[2]
        == f"{tmp_path / 'v'}: image missing_one: listed, but has no XML, SegmentationObject or SegmentationClass"
    )
    assert files


# ------------------------------------------------------------------------------ Label Studio


def test_label_studio_brush_round_trip_pixel_equal_and_identical(coco10, tmp_path):
    fmt = FORMATS["label-studio"]
    files = fmt.write(coco10, tmp_path / "a" / "tasks.json", images_root=IMAGES)
    assert fmt.readable
    back = fmt.read(files[0])  # keys from the local-files URLs
    assert _same_masks(coco10, back) == sum(len(coco10.instances(k)) for k in coco10.images)
    used = sorted({str(n) for k in coco10.images for n in coco10.instances(k).class_names})
    assert back.categories == {n: i for i, n in enumerate(used, start=1)}  # the config's classes, in its order
    again = fmt.write(back, tmp_path / "b" / "tasks.json", images_root=IMAGES)
    _files_equal(files, tmp_path / "a", again, tmp_path / "b")  # tasks and config


def test_label_studio_polygons_close_and_parts_joined(coco10, tmp_path):
    fmt = FORMATS["label-studio"]
    (tasks, _) = fmt.write(coco10, tmp_path / "p.json", images_root=IMAGES, region_type="polygon")
    back = fmt.read(tasks, images_root=IMAGES)
    ious = []
    for key in coco10.images:
        a, b = coco10.instances(key), back.instances(key)
        assert len(a) == len(b)  # parts (a<N>p0, a<N>p1, ...) are one instance again
        where = _by_id(b)
        ious += [rle_iou([a.rles()[i]], [b.rles()[where[int(x)]]])[0, 0] for i, x in enumerate(a.data["annotation_id"])]
    assert min(ious) > 0.95 and np.mean(ious) > 0.999


def test_label_studio_reads_a_projects_export(tmp_path):
    """Label Studio's own JSON export: a person's annotation wins over the prediction; a
    cancelled one does not count; rectangles in percent; foreign region ids; keys from URLs."""
    tasks = [
        {
            "id": 7,
            "data": {"image": "/data/upload/3/5d1c-cat.jpg"},
            "annotations": [
                {
                    "was_cancelled": False,
                    "result": [
                        {
                            "id": "Xy12",
                            "type": "rectanglelabels",
                            "original_width": 100,
                            "original_height": 50,
                            "value": {
                                "x": 10,
                                "y": 20,
                                "width": 30,
                                "height": 40,
                                "rotation": 0,
                                "rectanglelabels": ["cat"],
                            },
                        },
                        {"id": "Xy13", "type": "choices", "value": {"choices": ["indoor"]}},
                    ],
                },
                {"was_cancelled": True, "result": []},
            ],
            "predictions": [
                {
                    "result": [
                        {
                            "id": "P1",
                            "type": "rectanglelabels",
                            "original_width": 100,
                            "original_height": 50,
                            "value": {"x": 0, "y": 0, "width": 100, "height": 100, "rectanglelabels": ["dog"]},
                        }
                    ]
                }
            ],
        },
        {"id": 8, "data": {"image": "http://host/img/dog.png?token=1"}, "annotations": [], "predictions": [7]},
    ]
    path = tmp_path / "project.json"
    path.write_text(json.dumps(tasks))
    back = FORMATS["label-studio"].read(path)
    assert set(back.images) == {"5d1c-cat.jpg"}  # the task without regions has no size: left out
    found = back.instances("5d1c-cat.jpg")
    assert list(found.class_names) == ["cat"] and found.areas.tolist() == [30 * 20]
    assert found.mask(0)[10:30, 10:40].all()
    assert image_key("/data/local-files/?d=photos/sub%20dir/a.jpg") == "sub dir/a.jpg"
    assert image_key("/data/local-files/?d=data/coco_tiny_val/images/000000005001.jpg", COCO_TINY.parent) == (
        "coco_tiny_val/images/000000005001.jpg"
    )


def test_label_studio_malformed_refused_with_every_problem(coco10, tmp_path):
    fmt = FORMATS["label-studio"]
    (path, _) = fmt.write(coco10, tmp_path / "a.json", images_root=IMAGES)
    tasks = json.loads(path.read_text())
    region = tasks[0]["predictions"][0]["result"][0]
    region["value"]["rle"] = region["value"]["rle"][:40]
    tasks[1]["predictions"][0]["result"][1]["value"]["brushlabels"] = []
    del tasks[2]["data"]
    path.write_text(json.dumps(tasks))
    with pytest.raises(FormatReadError) as err:
        fmt.read(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}: task 0, region {region['id']}: ")
    second = tasks[1]["predictions"][0]["result"][1]["id"]
    assert lines[1] == f"{path}: task 1, region {second}: brushlabels must hold one label, not []"
    assert lines[2] == f"{path}: task 2: no data.image"


# -------------------------------------------------------------------------------- the peers


@pytest.fixture(scope="module")
def datumaro():
    return pytest.importorskip("datumaro")


def _dm_masks(item, labels) -> list[tuple[str, str | None, np.ndarray]]:
    from datumaro.components.annotation import AnnotationType

    return [
        (labels[a.label], a.attributes.get("annotation_id"), np.asarray(a.image, dtype=bool))
        for a in item.annotations
        if a.type == AnnotationType.mask
    ]


def test_datumaro_reads_our_voc(coco10, tmp_path, datumaro):
    from datumaro.components.annotation import AnnotationType
    from datumaro.components.dataset import Dataset

    FORMATS["voc"].write(coco10, tmp_path / "voc")
    ours = FORMATS["voc"].read(tmp_path / "voc")
    dm = Dataset.import_from(str(tmp_path / "voc"), "voc")
    labels = [c.name for c in dm.categories()[AnnotationType.label]]
    assert labels[0] == "background" and set(labels[1:]) == set(ours.categories)
    assert len(dm) == len(coco10.images)
    for item in dm:
        key = f"{item.id}.jpg"
        found = ours.instances(key)
        boxes = [a for a in item.annotations if a.type == AnnotationType.bbox]
        assert [int(b.attributes["annotation_id"]) for b in boxes] == list(found.data["annotation_id"])
        assert [labels[b.label] for b in boxes] == list(found.class_names)
        # datumaro's instance masks (the object PNG's numbers, classed by the class PNG) are ours
        theirs = {(label, m.tobytes()) for label, _, m in _dm_masks(item, labels)}
        assert theirs == {(found.class_names[i], found.mask(i).tobytes()) for i in range(len(found))}


def test_datumaro_reads_our_cvat(coco10, tmp_path, datumaro):
    from datumaro.components.annotation import AnnotationType
    from datumaro.components.dataset import Dataset

    FORMATS["cvat"].write(coco10, tmp_path / "cvat" / "annotations.xml")
    (tmp_path / "cvat" / "images").mkdir()
    for key in coco10.images:  # datumaro wants the images beside the XML
        shutil.copy(IMAGES / key, tmp_path / "cvat" / "images" / key)
    dm = Dataset.import_from(str(tmp_path / "cvat"), "cvat")
    labels = [c.name for c in dm.categories()[AnnotationType.label]]
    n = 0
    for item in dm:
        found = coco10.instances(f"{item.id}.jpg")
        where = _by_id(found)
        for label, ann_id, mask in _dm_masks(item, labels):
            i = where[int(ann_id)]
            assert label == found.class_names[i]
            assert np.array_equal(mask, found.mask(i))  # CVAT's RLE, decoded by datumaro: pixel-equal
            n += 1
    assert n == sum(len(coco10.instances(k)) for k in coco10.images)
