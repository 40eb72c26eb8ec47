"""Round trips through the store (issue 30): the dev set's ground truth imported into a store,
exported in every format that holds masks, that export imported with ``ovsam import``'s code
into a new store and exported again: the second export is the first, byte for byte (dates
aside), and the two stores hold the same masks. Formats that hold polygons only (YOLO, COCO
polygons) are checked within their tolerance in tests/test_formats_roundtrip.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotator.importer import import_annotations
from annotator.outputs import FolderOutputs
from annotator.store import AnnotationStore

EXACT = ["coco", "coco-panoptic", "masks", "cvat", "labelme", "voc", "label-studio"]
"""The formats whose masks come back pixel-equal (panoptic, masks and VOC after their first
export has painted overlaps away)."""

N_IMAGES = 12


@pytest.fixture(scope="module")
def folder(coco_tiny, tmp_path_factory) -> tuple[Path, Path]:
    """A folder of the dev set's first photos and a COCO file of their ground truth."""
    root = tmp_path_factory.mktemp("rt")
    data = json.loads((coco_tiny / "instances.json").read_text())
    images = data["images"][:N_IMAGES]
    ids = {im["id"] for im in images}
    (root / "photos").mkdir()
    for im in images:
        shutil.copy(coco_tiny / "images" / im["file_name"], root / "photos" / im["file_name"])
    images = sorted(images, key=lambda im: im["file_name"])  # the store's ids in the order its exports list them
    order = {im["id"]: i for i, im in enumerate(images)}
    anns = sorted(
        (a for a in data["annotations"] if a["image_id"] in ids), key=lambda a: (order[a["image_id"]], a["id"])
    )
    gt = {**data, "images": images, "annotations": anns}
    (root / "gt.json").write_text(json.dumps(gt))
    return root / "photos", root / "gt.json"


def _tree(files: list[Path], root: Path) -> dict[str, bytes]:
    """Each file's bytes by its path under ``root``, dates and the export's own path blanked."""
    out = {}
    for f in files:
        data = f.read_bytes()
        data = re.sub(rb'"date_created": "[^"]*"', b'"date_created": ""', data)
        data = re.sub(rb"<(dumped|created|updated)>[^<]*</\1>", rb"<\1></\1>", data)
        data = re.sub(rb'"created_at": "[^"]*"', b'"created_at": ""', data)
        data = re.sub(rb'"by [^"]*UTC"', b'"by"', data)  # Label Studio's note: who, and when the store took it
        out[f.relative_to(root).as_posix()] = data.replace(str(root).encode(), b"ROOT")
    return out


def _masks(store: AnnotationStore) -> dict[tuple[str, str], list[str]]:
    per = {}
    for a in store.annotations.values():
        per.setdefault((a.image, a.label), []).append(a.rle["counts"])
    return {k: sorted(v) for k, v in per.items()}


@pytest.mark.parametrize("fmt", EXACT)
def test_export_import_export_is_identical(fmt, folder, tmp_path):
    photos, gt = folder
    first = AnnotationStore(tmp_path / "first.db", "photos")
    import_annotations(first, photos, gt, "coco")
    out1, out2 = FolderOutputs(photos, tmp_path / "one"), FolderOutputs(photos, tmp_path / "two")
    files1 = out1.export_files(first, fmt)
    second = AnnotationStore(tmp_path / "second.db", "photos")
    summary = import_annotations(second, photos, files1[0] if fmt != "masks" else files1[0].parent, fmt)
    assert summary.images == N_IMAGES or fmt in ("coco-panoptic", "masks", "voc", "labelme", "cvat")
    files2 = out2.export_files(second, fmt)
    third = AnnotationStore(tmp_path / "third.db", "photos")
    import_annotations(third, photos, files2[0] if fmt != "masks" else files2[0].parent, fmt)
    files3 = FolderOutputs(photos, tmp_path / "three").export_files(third, fmt)
    # a format that paints (panoptic, masks, VOC) loses overlaps in its first export; from then on
    # every export is the one before, and every import the store before
    assert _tree(files3, tmp_path / "three") == _tree(files2, tmp_path / "two")
    assert _masks(third) == _masks(second)
    if fmt in ("coco", "cvat", "labelme", "label-studio"):  # they hold overlapping masks: nothing lost at all
        assert _tree(files2, tmp_path / "two") == _tree(files1, tmp_path / "one")
        assert _masks(second) == _masks(first)
    assert {a.state for a in second.annotations.values()} == {"predicted"}
    if fmt not in ("voc", "cvat", "labelme", "label-studio"):  # names, not ids: they number their label lists
        assert second.categories.items() <= first.categories.items()
    # into the store it came from, a format without ids keeps the store's ids (names matched), no new class
    classes = first.categories
    path = files1[0] if fmt != "masks" else files1[0].parent
    back = import_annotations(first, photos, path, fmt, replace=True)
    assert back.annotations == len(second.annotations) and back.categories == 0
    assert first.categories == classes
    assert all(a.category_id == classes[a.label] for a in first.annotations.values())
    assert {a.state for a in second.annotations.values()} == {"predicted"}
    if fmt not in ("voc", "cvat", "labelme", "label-studio"):  # names, not ids: they number their label lists
        assert second.categories.items() <= first.categories.items()
    # into the store it came from, a format without ids keeps the store's ids (names matched)
    back = import_annotations(first, photos, files1[0] if fmt != "masks" else files1[0].parent, fmt, replace=True)
    assert back.annotations == len(second.annotations)
    assert {a.label: a.category_id for a in first.annotations.values()}.items() <= dict(first.categories).items()
    assert len(second.annotations) >= 0.9 * len(first.annotations)
    assert np.all([a.area > 0 for a in second.annotations.values()])
