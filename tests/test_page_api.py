"""The UI's event handlers on real MobileSAM, without a browser (see test_browser.py for one)."""

from __future__ import annotations

import json
import shutil
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from annotator.masks import decode_rle
from annotator.workspace import Workspace

from .conftest import instance_mask


@pytest.fixture()
def ui_on_photos(engine, coco_tiny, coco_gt, tmp_path):
    from app.ui import AnnotatorUI

    folder = tmp_path / "photos"
    folder.mkdir()
    img_id = sorted(coco_gt.getImgIds())[0]
    info = coco_gt.loadImgs(img_id)[0]
    shutil.copy(coco_tiny / "images" / info["file_name"], folder / "a.jpg")
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
    return AnnotatorUI(ws), ws, anns


def test_corrupt_image_is_reported_and_nothing_is_lost(ui_on_photos):
    from app.ui import MODE_POS

    ui, ws, anns = ui_on_photos
    canvas, prompt, *_, status = ui.open_image("a.jpg")
    x, y, w, h = anns[0]["bbox"]
    out = ui.click(prompt, MODE_POS, SimpleNamespace(index=[x + w / 2, y + h / 2]))
    ui.accept(out[1], "thing")
    assert len(ws.store.annotations) == 1

    canvas, prompt, *_, status = ui.open_image("b_corrupt.jpg")
    assert "b_corrupt.jpg" in status and "corrupt" in status.lower()
    assert prompt["image"] is None and canvas.ndim == 3
    out = ui.click(prompt, MODE_POS, SimpleNamespace(index=[5, 5]))  # a click after the failure
    assert "Pick an image" in out[-1]
    # every button still answers with a message, not an exception
    assert "Nothing to accept" in ui.accept(prompt, "thing")[-1]
    assert "No annotation" in ui.delete(prompt, 999)[-1]
    assert "Cannot relabel" in ui.relabel(prompt, 999, "x")[-1]
    assert "Nothing to undo" in ui.undo(prompt)[-1]
    assert ws.store.for_image("a.jpg")[0].label == "thing"  # still there


def test_box_by_two_clicks_undo_accept_delete(ui_on_photos, coco_gt):
    from app.ui import MODE_BOX, MODE_NEG, MODE_POS

    ui, ws, anns = ui_on_photos
    _, prompt, *_ = ui.open_image("a.jpg")
    ann = max(anns, key=lambda a: a["area"])
    x, y, w, h = ann["bbox"]
    out = ui.click(prompt, MODE_BOX, SimpleNamespace(index=[x, y]))
    assert "opposite corner" in out[-1] and out[1]["corner"] == [x, y]
    out = ui.click(out[1], MODE_BOX, SimpleNamespace(index=[x + w, y + h]))
    prompt = out[1]
    assert prompt["box"] == [x, y, x + w, y + h] and "Mask:" in out[-1]
    out = ui.click(prompt, MODE_NEG, SimpleNamespace(index=[x + 1, y + 1]))
    assert out[1]["labels"] == [0]
    out = ui.undo(out[1])
    assert out[1]["points"] == [] and out[1]["box"] is not None
    assert "Choose a label" in ui.accept(out[1], None)[-1]
    out = ui.accept(out[1], "  big thing ")
    assert "Saved annotation" in out[-1]
    saved = ws.store.for_image("a.jpg")
    assert len(saved) == 1 and saved[0].label == "big thing"
    gt = instance_mask(coco_gt, ann)
    from annotator.masks import decode_rle

    mask = decode_rle(saved[0].rle)
    assert (mask & gt).sum() / (mask | gt).sum() > 0.5
    assert out[4] == [[saved[0].id, "big thing", "", round(saved[0].predicted_iou, 3), saved[0].area]]
    assert "Nothing to accept" in ui.accept(out[1], "x")[-1]  # prompt was reset
    out = ui.relabel(out[1], saved[0].id, "giant")
    assert ws.store.annotations[saved[0].id].label == "giant"
    out = ui.delete(out[1], saved[0].id)
    assert ws.store.for_image("a.jpg") == [] and "Deleted" in out[-1]
    assert "No annotation" in ui.delete(out[1], 999)[-1]
    # a positive click, then export
    out = ui.click(out[1], MODE_POS, SimpleNamespace(index=[x + w / 2, y + h / 2]))
    ui.accept(out[1], "again")
    path, text = ui.export("COCO instances", "polygon")
    assert path.endswith("_coco.json") and "Exported 1" in text
    np.testing.assert_array_equal(out[0].shape[:2], ws.image.shape[:2])


def test_everything_adds_editable_instances_merge_and_panoptic_export(ui_on_photos):
    from annotator.exporters.coco_panoptic import read_coco_panoptic

    ui, ws, _ = ui_on_photos
    _, prompt, *_ = ui.open_image("a.jpg")
    ticks = []
    out = ui.everything(prompt, "samcp", progress=lambda f, desc=None: ticks.append(f))
    saved = ws.store.for_image("a.jpg")
    assert len(saved) > 5 and f"→ {len(saved)} annotations" in out[-1]
    assert "no CLIP" in out[-1]  # says why they are unlabelled
    assert all(a.label == "object" and a.area > 0 and a.prompt["everything"] == "samcp" for a in saved)
    assert ticks and ticks == sorted(ticks) and ticks[-1] == 1.0
    assert len(out[4]) == len(saved)  # the table lists them
    ui.delete(out[1], saved[0].id)
    ui.relabel(out[1], saved[1].id, "table")
    assert len(ws.store.for_image("a.jpg")) == len(saved) - 1 and ws.store.annotations[saved[1].id].label == "table"
    # merge two: one annotation, the union of both, the first one's label
    a, b = saved[1], saved[2]
    out = ui.merge(out[1], f"{a.id}, {b.id}", None)
    assert "Merged" in out[-1] and a.id not in ws.store.annotations and b.id not in ws.store.annotations
    merged = ws.store.for_image("a.jpg")[-1]
    union = decode_rle(a.rle) | decode_rle(b.rle)
    assert merged.label == "table" and np.array_equal(decode_rle(merged.rle), union)
    assert "Cannot merge" in ui.merge(out[1], "99999 1", None)[-1]
    assert "Cannot merge" in ui.merge(out[1], str(merged.id), None)[-1]
    # panoptic export: a zip for download, the JSON + PNGs on disk, non-overlapping
    path, text = ui.export("COCO panoptic", "rle")
    assert path.endswith("_panoptic.zip") and "COCO panoptic" in text
    (img,), _ = read_coco_panoptic(ws.out_dir / f"{ws.slug}_panoptic.json")
    assert img.file_name == "a.jpg" and len(img.segments_info) > 3
    path, text = ui.export("YOLO segmentation", "rle")
    with zipfile.ZipFile(path) as zf:
        assert {"data.yaml", "labels/a.txt"} <= set(zf.namelist())
        assert len(zf.read("labels/a.txt").decode().splitlines()) == len(ws.store.for_image("a.jpg"))
    path, text = ui.export("Label Studio JSON", "rle")
    with zipfile.ZipFile(path) as zf:
        (task,) = json.loads(zf.read(f"{ws.slug}_label_studio.json"))
        assert len(task["predictions"][0]["result"]) == len(ws.store.for_image("a.jpg"))
        assert b"<BrushLabels" in zf.read(f"{ws.slug}_label_studio.xml")
    # the pass choice: PosSAM keeps every patch as its own instance
    before = len(ws.store.for_image("a.jpg"))
    out = ui.everything(out[1], "possam", progress=lambda f, desc=None: None)
    added = ws.store.for_image("a.jpg")[before:]
    assert added and all(a.prompt["everything"] == "possam" and len(a.prompt["patches"]) == 1 for a in added)
