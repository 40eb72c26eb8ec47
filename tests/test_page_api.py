"""The page's API (app/api.py) on real MobileSAM and COCO photos, without a browser
(test_browser.py drives the same through Chromium)."""

from __future__ import annotations

import json
import shutil
import threading
import time
import zipfile

import numpy as np
import pytest

from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.masks import decode_rle
from annotator.sam_frame import upsample_logits
from annotator.store import AnnotationStore
from annotator.workspace import Workspace

from .conftest import instance_mask


@pytest.fixture()
def api_on_photos(engine, coco_tiny, coco_gt, tmp_path):
    from app.api import PageAPI

    folder = tmp_path / "photos"
    folder.mkdir()
    img_ids = sorted(coco_gt.getImgIds())[:2]
    for name, img_id in zip(("a.jpg", "c.jpg"), img_ids, strict=True):
        shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / name)
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_ids[0], iscrowd=False))
    yield PageAPI(ws), ws, anns
    ws.close()


def test_corrupt_image_is_reported_and_nothing_is_lost(api_on_photos):
    from app.api import ApiError

    api, ws, anns = api_on_photos
    api.open("s", "a.jpg")
    x, y, w, h = anns[0]["bbox"]
    api.click("s", x + w / 2, y + h / 2)
    api.accept("s", "thing")
    with pytest.raises(ApiError, match="corrupt") as err:
        api.open("s", "b_corrupt.jpg")
    assert err.value.status == 422 and "b_corrupt.jpg" in str(err.value)
    with pytest.raises(ApiError) as err:
        api.open("s", "../etc/passwd")
    assert err.value.status == 404
    with pytest.raises(ApiError, match="corrupt"):
        api.image_bytes("b_corrupt.jpg")
    # the tab still holds its image; every call answers with a reason, not a crash
    assert api.click("s", 5, 5)["mask"] is not None
    with pytest.raises(ApiError, match="outside"):
        api.click("s", 10_000, 5)
    with pytest.raises(ApiError, match="label"):
        api.accept("s", "  ")
    with pytest.raises(ApiError, match="no annotation"):
        api.delete([999])
    with pytest.raises(ApiError, match="open an image"):
        api.click("fresh-tab", 5, 5)
    # a click made on a.jpg that arrives after the tab moved on is refused, not put on c.jpg
    api.open("s", "c.jpg")
    with pytest.raises(ApiError, match=r"now shows 'c\.jpg'") as err:
        api.click("s", 5, 5, key="a.jpg")
    assert err.value.status == 409
    assert api.click("s", 5, 5, key="c.jpg")["prompt"]["points"] == [[5.0, 5.0]]  # nothing else landed
    assert ws.store.for_image("a.jpg")[0].label == "thing"


def test_prompt_refines_with_low_res_logits_and_undo_restores(api_on_photos, coco_gt):
    api, ws, anns = api_on_photos
    opened = api.open("s", "a.jpg")
    assert (opened["width"], opened["height"]) == ws.load("a.jpg").shape[1::-1] and opened["scale"] == 1.0
    big = max(anns, key=lambda a: a["area"])
    gt = instance_mask(coco_gt, big)
    px, py = farthest_interior_point(gt)
    r1 = api.click("s", px, py)
    nx, ny = farthest_interior_point(~gt)
    r2 = api.click("s", nx, ny, positive=False)
    assert r2["prompt"]["labels"] == [1, 0] and r2["engine_ms"] > 0
    # the second decode used the first mask's logits as mask_input (SAM's refinement)
    emb = ws.engine.embed(ws.load("a.jpg"))
    first = ws.engine.predict(emb, point_coords=np.array([[px, py]]), point_labels=np.array([1]))
    refined = ws.engine.predict(
        emb, point_coords=np.array([[px, py], [nx, ny]]), point_labels=np.array([1, 0]), mask_input=first.low_res_logits
    )
    shown = decode_rle(r2["mask"]["rle"])
    assert np.array_equal(shown, refined.mask)
    # the outline runs along the mask's boundary pixels
    for poly in r2["mask"]["outline"]:
        xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
        assert shown[ys, xs].all()
    assert api.undo("s")["mask"]["rle"] == r1["mask"]["rle"]
    assert api.undo("s")["mask"] is None
    assert api.box(
        "s", [big["bbox"][0] + big["bbox"][2], big["bbox"][1], big["bbox"][0], big["bbox"][1] + big["bbox"][3]]
    )["prompt"]["box"] == pytest.approx(
        [big["bbox"][0], big["bbox"][1], big["bbox"][0] + big["bbox"][2], big["bbox"][1] + big["bbox"][3]]
    )
    out = api.accept("s", "  big thing ")
    assert out["annotation"]["label"] == "big thing"
    saved = ws.store.for_image("a.jpg")[0]
    assert mask_iou(decode_rle(saved.rle), gt) > 0.5 and saved.prompt["box"] is not None
    assert api.clear("s")["mask"] is None
    with pytest.raises(Exception, match="nothing to accept"):
        api.accept("s", "x")


def test_sams_three_candidates_cycle_as_undo_steps_and_the_shown_one_is_accepted(api_on_photos, coco_gt):
    """C on the page: a click's three candidates (SAM's multimask output) one after another,
    cycling; a box's three from one more decode; each an undo step; accept stores the one shown."""
    from app.api import ApiError

    api, ws, anns = api_on_photos
    api.open("s", "a.jpg")
    with pytest.raises(ApiError, match="click an object first") as err:
        api.candidate("s")
    assert err.value.status == 422
    big = max(anns, key=lambda a: a["area"])
    px, py = farthest_interior_point(instance_mask(coco_gt, big))
    clicked = api.click("s", px, py)
    assert clicked["candidates"] == 3
    emb = ws.engine.embed(ws.load("a.jpg"))
    decoded = ws.engine.predict(emb, point_coords=np.array([[px, py]]), point_labels=np.array([1])).candidates
    shown = [clicked]
    for _ in range(3):
        shown.append(api.candidate("s", "a.jpg"))
    order = [r["candidate"] for r in shown]
    assert sorted(order[1:]) == [1, 2, 3] and order[3] == order[0]  # every candidate once, back to the first
    for r in shown[1:]:  # each is SAM's candidate as decoded, at full resolution
        logits = decoded.low_res_logits[r["candidate"] - 1]
        want = upsample_logits(logits, emb.sam.input_size, emb.sam.original_size)
        assert np.array_equal(decode_rle(r["mask"]["rle"]), want)
        assert r["predicted_iou"] == pytest.approx(float(decoded.iou_predictions[r["candidate"] - 1]), abs=1e-4)
    assert len({r["mask"]["rle"]["counts"] for r in shown[1:]}) == 3  # three different masks
    assert [r["prompt"] for r in shown] == [clicked["prompt"]] * 4  # the prompt stays
    for r in reversed(shown[:-1]):  # each candidate was one undo step
        assert api.undo("s")["mask"]["rle"] == r["mask"]["rle"]
    other = api.candidate("s")
    out = api.accept("s", "part")
    assert out["annotation"]["area"] == other["area"] == int(decode_rle(ws.store.for_image("a.jpg")[0].rle).sum())
    # a box decodes to one mask; C decodes it once more with multimask output
    x, y, w, h = big["bbox"]
    boxed = api.box("s", [x, y, x + w, y + h])
    assert boxed["candidates"] == 1
    again = api.candidate("s")
    assert again["candidates"] == 3 and again["mask"]["rle"] != boxed["mask"]["rle"]


def test_subtract_cuts_a_hole_the_coco_export_keeps_and_intersect_keeps_the_overlap(api_on_photos, coco_gt):
    from pycocotools.coco import COCO

    from app.api import ApiError

    api, ws, anns = api_on_photos
    api.open("s", "a.jpg")
    big = max(anns, key=lambda a: a["area"])
    px, py = farthest_interior_point(instance_mask(coco_gt, big))
    x, y, w, h = big["bbox"]
    api.box("s", [x, y, x + w, y + h])
    outer = api.accept("s", "thing")["annotation"]["id"]
    api.box("s", [px - 25, py - 25, px + 25, py + 25])  # a small region inside it
    inner = api.accept("s", "thing")["annotation"]["id"]
    a, b = (decode_rle(ws.store.annotations[i].rle) for i in (outer, inner))
    assert (a & b).sum() > 100 and (a & ~b).any()
    with pytest.raises(ApiError, match="two or more different"):
        api.subtract([outer, outer])
    cut = api.subtract([outer, inner])["annotation"]
    assert cut["id"] == outer and cut["label"] == "thing" and cut["area"] == int((a & ~b).sum())  # changed in place
    assert np.array_equal(decode_rle(ws.store.annotations[outer].rle), a & ~b)
    assert np.array_equal(decode_rle(ws.store.annotations[inner].rle), b)  # the cutter stays
    coco = COCO(str(ws.outputs.export(ws.store, "coco")))
    exported = coco.loadAnns([outer])[0]
    assert np.array_equal(coco.annToMask(exported).astype(bool), a & ~b)  # the hole, read back by pycocotools
    with pytest.raises(ApiError, match="nothing to cut") as err:
        api.subtract([outer, inner])  # nothing overlaps any more: nothing changes
    assert err.value.status == 422
    with pytest.raises(ApiError, match="no pixel in common"):
        api.intersect([outer, inner])
    api.box("s", [px, py - 25, px + 60, py + 25])  # overlaps the right half of the inner one
    right = api.accept("s", "thing")["annotation"]["id"]
    c = decode_rle(ws.store.annotations[right].rle)
    both = api.intersect([inner, right])
    assert sorted(both["removed"]) == sorted([inner, right]) and both["annotation"]["label"] == "thing"
    assert np.array_equal(decode_rle(ws.store.annotations[both["annotation"]["id"]].rle), b & c)
    assert sorted(a.id for a in ws.store.for_image("a.jpg")) == sorted([outer, both["annotation"]["id"]])


def test_a_saved_annotation_is_re_prompted_from_its_mask_and_replaced_in_place(api_on_photos, coco_gt):
    from annotator.sam_frame import mask_to_logits
    from app.api import ApiError

    api, ws, anns = api_on_photos
    api.open("s", "a.jpg")
    big = max(anns, key=lambda a: a["area"])
    gt = instance_mask(coco_gt, big)
    px, py = farthest_interior_point(gt)
    api.click("s", px, py)
    saved = api.accept("s", "thing")["annotation"]["id"]
    first = decode_rle(ws.store.annotations[saved].rle)
    started = api.reprompt("s", saved, "a.jpg")
    assert started["replaces"] == saved and np.array_equal(decode_rle(started["mask"]["rle"]), first)
    assert started["prompt"]["points"] == [[px, py]]  # its prompt is kept
    wrong = (gt & ~first) if (gt & ~first).sum() > (first & ~gt).sum() else (first & ~gt)
    qx, qy = farthest_interior_point(wrong)
    positive = bool(gt[int(qy), int(qx)])
    refined = api.click("s", qx, qy, positive=positive)
    emb = ws.engine.embed(ws.load("a.jpg"))
    want = ws.engine.predict(
        emb,
        point_coords=np.array([[px, py], [qx, qy]]),
        point_labels=np.array([1, int(positive)]),
        mask_input=mask_to_logits(first, emb.sam.input_size),
    )
    assert refined["replaces"] == saved and np.array_equal(decode_rle(refined["mask"]["rle"]), want.mask)
    assert not np.array_equal(want.mask, first)
    out = api.accept("s", "better thing")["annotation"]
    assert out["id"] == saved and out["label"] == "better thing" and len(ws.store.for_image("a.jpg")) == 1
    assert np.array_equal(decode_rle(ws.store.annotations[saved].rle), want.mask)  # replaced in place
    assert ws.store.annotations[saved].prompt["points"] == [[px, py], [qx, qy]]
    # undo back past the start ends the re-prompt: nothing is replaced
    api.reprompt("s", saved)
    assert api.undo("s")["replaces"] is None
    with pytest.raises(ApiError, match="nothing to accept"):
        api.accept("s", "x")
    with pytest.raises(ApiError) as err:
        api.reprompt("s", 999)
    assert err.value.status == 404
    api.open("s", "c.jpg")
    with pytest.raises(ApiError, match="not of the image shown") as err:
        api.reprompt("s", saved)
    assert err.value.status == 409


def test_tabs_do_not_mix_and_store_writes_are_serialised(api_on_photos):
    api, ws, _ = api_on_photos
    api.open("tab-a", "a.jpg")
    api.open("tab-b", "c.jpg")
    ra = api.click("tab-a", 100, 100)
    rb = api.click("tab-b", 100, 100)
    assert ra["mask"]["rle"] != rb["mask"]["rle"]  # each decoded on its own image
    assert len(api.click("tab-a", 120, 110)["prompt"]["points"]) == 2
    assert len(api.click("tab-b", 130, 110)["prompt"]["points"]) == 2  # its own first point + this one
    # many accepts from two threads at once: every one lands, ids unique, the file is whole
    errors = []

    def worker(tab, key, n):
        try:
            for i in range(n):
                api.click(tab, 50 + 10 * i, 60)
                api.accept(tab, f"{tab} {i}")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t, k, 5)) for t, k in (("tab-a", "a.jpg"), ("tab-b", "c.jpg"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert sorted(a.label for a in ws.store.for_image("a.jpg")) == sorted(f"tab-a {i}" for i in range(5))
    assert sorted(a.label for a in ws.store.for_image("c.jpg")) == sorted(f"tab-b {i}" for i in range(5))
    on_disk = AnnotationStore(ws.store.path).annotations.values()  # a second connection: what was committed
    assert len(on_disk) == 10 and len({a.id for a in on_disk}) == 10


def test_select_ops_done_marks_and_state(api_on_photos):
    from app.api import ApiError

    api, ws, _ = api_on_photos
    assert api.state("s")["current"] == "a.jpg" and api.state("s")["vocab_size"] == 0
    api.open("s", "a.jpg")
    ids = []
    for x in (100, 300, 500):
        api.click("s", x, 200)
        ids.append(api.accept("s", "thing")["annotation"]["id"])
    assert api.relabel(ids[:2], "table")["annotations"][0]["label"] == "table"
    union = decode_rle(ws.store.annotations[ids[0]].rle) | decode_rle(ws.store.annotations[ids[1]].rle)
    merged = api.merge(ids[:2])["annotation"]
    assert merged["label"] == "table" and np.array_equal(decode_rle(ws.store.annotations[merged["id"]].rle), union)
    with pytest.raises(ApiError, match="two or more"):
        api.merge([merged["id"]])
    with pytest.raises(ApiError, match="labelled 'table', 'thing': name the merged") as err:
        api.merge([merged["id"], ids[2]])  # parts of two labels and none given: nothing is merged
    assert err.value.status == 422 and len(ws.store.for_image("a.jpg")) == 2
    api.delete([ids[2]])
    assert [a.id for a in ws.store.for_image("a.jpg")] == [merged["id"]]
    images = api.set_done("c.jpg", True)["images"]
    assert [(i["key"], i["n"], i["done"]) for i in images] == [
        ("a.jpg", 1, False),
        ("b_corrupt.jpg", 0, False),
        ("c.jpg", 0, True),
    ]
    assert "c.jpg" in ws.store.images  # a done image without annotations is a negative of the dataset
    api.set_done("c.jpg", False)
    assert ws.store.done == set()
    # the next images are embedded in the background when one opens
    assert "c.jpg" in ws.wait_for_prefetch(timeout=60)  # the corrupt b_corrupt.jpg was skipped
    assert ws.engine.is_cached(ws.load("c.jpg"))


def test_everything_adds_editable_instances_and_exports(api_on_photos):
    from app.page import export

    api, ws, _ = api_on_photos
    api.open("s", "a.jpg")
    seen, finished = [], threading.Event()

    def watch():
        while not finished.is_set():
            seen.append(api.progress("s")["progress"])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        out = api.everything("s", "samcp")
    finally:
        finished.set()
    saved = ws.store.for_image("a.jpg")
    assert len(saved) > 5 and len(out["annotations"]) == len(saved) and out["already_annotated"] == 0
    # E pressed again: the same instances repeat the annotations and are not added twice
    again = api.everything("s", "samcp")
    assert again["annotations"] == [] and again["already_annotated"] == len(saved)
    assert len(ws.store.for_image("a.jpg")) == len(saved)
    assert "no CLIP" in out["how"] and all(a.label == "object" and a.prompt["everything"] == "samcp" for a in saved)
    watcher.join(timeout=5)
    assert any(p is not None and 0 < p < 1 for p in seen)  # progress was readable meanwhile
    # exports offered by the page: COCO, panoptic zip, YOLO zip, Label Studio zip
    path, text = export(ws, "COCO instances", "polygon")
    assert path.endswith("_coco_polygons.json") and f"Exported {len(saved)}" in text  # RLE: _coco.json
    from annotator.formats.coco_panoptic import read_coco_panoptic

    path, text = export(ws, "COCO panoptic")
    assert path.endswith("_panoptic.zip")
    (img,), _ = read_coco_panoptic(ws.out_dir / f"{ws.slug}_panoptic.json")
    assert img.file_name == "a.jpg" and len(img.segments_info) > 3
    path, _ = export(ws, "YOLO segmentation")
    with zipfile.ZipFile(path) as zf:
        assert len(zf.read("labels/a.txt").decode().splitlines()) == len(saved)
    path, _ = export(ws, "Label Studio JSON")
    with zipfile.ZipFile(path) as zf:
        (task,) = json.loads(zf.read(f"{ws.slug}_label_studio.json"))
        assert len(task["predictions"][0]["result"]) == len(saved)


def test_large_photo_travels_downscaled_and_clicks_map_back(engine, tmp_path):
    from PIL import Image

    from app.api import MAX_DISPLAY_SIDE, PageAPI

    folder = tmp_path / "big"
    folder.mkdir()
    h, w = 1200, 5000  # longer side over MAX_DISPLAY_SIDE
    rgb = np.full((h, w, 3), 40, np.uint8)
    rgb[300:900, 2000:3500] = (230, 200, 30)
    Image.fromarray(rgb).save(folder / "wide.jpg", quality=95)
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    api = PageAPI(ws)
    opened = api.open("s", "wide.jpg")
    scale = opened["scale"]
    assert scale == MAX_DISPLAY_SIDE / w
    import cv2

    shown = cv2.imdecode(np.frombuffer(api.image_bytes("wide.jpg")[0], np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (round(h * scale), round(w * scale))
    r = api.click("s", 2750, 600)  # original pixels
    mask = decode_rle(r["mask"]["rle"])
    assert mask.shape == shown.shape[:2]
    box = np.zeros_like(mask)
    box[round(300 * scale) : round(900 * scale), round(2000 * scale) : round(3500 * scale)] = True
    assert mask_iou(mask, box) > 0.9
    api.accept("s", "panel")
    (ann,) = ws.store.for_image("wide.jpg")
    assert ann.rle["size"] == [h, w]  # the store keeps full resolution
    ws.close()


def test_undo_history_is_bounded(engine, coco_image):
    from annotator.session import PromptSession

    image, _ = coco_image
    session = PromptSession("k", engine.embed(image), max_history=2)
    for x in (100, 120, 140):
        session.add_point(engine, x, 100)
    assert len(session.prompt.points) == 3
    assert session.undo() is not None and len(session.prompt.points) == 2
    assert session.undo() is None and session.prompt.empty  # older steps were dropped


def test_the_page_gets_the_mask_before_the_labels(sam_model, tiny_clip_factory, coco_tiny, coco_gt, tmp_path):
    """open waits for SAM's encoder only; a click on a photo whose CLIP pass still runs answers
    with the mask and labels_pending; Accept works at once with the label typed; suggest gives
    the labels of the mask the tab shows, named by its token."""
    import threading

    from annotator.engine import Engine
    from annotator.vocabulary import load_vocabulary
    from app.api import PageAPI

    folder = tmp_path / "photos"
    folder.mkdir()
    img_id = sorted(coco_gt.getImgIds())[0]
    shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / "a.jpg")
    engine = Engine(sam_model, tiny_clip_factory("tiny_rn_clip"), load_vocabulary("coco"))
    release = threading.Event()
    real_dense = engine.clip.dense_features
    engine.clip.dense_features = lambda img: (release.wait(60), real_dense(img))[1]  # CLIP held until released
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    api = PageAPI(ws, prefetch=0)
    opened = api.open("s", "a.jpg")
    assert opened["labels_ready"] is False
    ann = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))[0]
    px, py = farthest_interior_point(instance_mask(coco_gt, ann))
    first = api.click("s", px, py, key="a.jpg")
    assert first["mask"] is not None and first["labels_pending"] and first["labels"] == []
    saved = api.accept("s", "my label", key="a.jpg")["annotation"]  # Accept before the labels: the label typed
    assert saved["label"] == "my label" and saved["score"] is None
    second = api.click("s", px, py, key="a.jpg")
    assert second["labels_pending"] and second["token"] != first["token"]
    answer = []
    waiter = threading.Thread(target=lambda: answer.append(api.suggest("s", "a.jpg")))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # waits for CLIP's pass, outside the engine lock:
    assert api.click("s", px + 2, py, key="a.jpg")["mask"] is not None  # a click goes on meanwhile
    release.set()
    waiter.join(60)
    (labels,) = answer
    third = api.tabs.tab("s").prompt.result
    assert labels["token"] == f"{id(third):x}" and len(labels["labels"]) == 5  # the mask the tab shows now
    assert api.click("s", px, py, key="a.jpg")["labels_pending"] is False  # CLIP done: labels inline
    best = labels["labels"][0]["name"]
    api.clear("s")
    api.click("s", px, py, key="a.jpg")
    assert api.accept("s", best, key="a.jpg")["annotation"]["score"] is not None
    engine.clip.dense_features = real_dense
    ws.close()


def test_hand_edits_and_undo_redo_through_the_api(api_on_photos, coco_gt):
    """Brush and polygon on the pending mask (prompt steps), a drawn mask accepted as
    ``manual``, hand edits of a saved annotation and an outline ring moved, each one undoable
    change; undo and redo through the API restore the store exactly (issue 28, items 1, 2, 6)."""
    from app.api import ApiError

    api, ws, anns = api_on_photos
    before = api.open("s", "a.jpg")["history"]
    assert before == {"undoable": 0, "redoable": 0}
    # a mask drawn by hand from nothing: a polygon, then a brush stroke, each a prompt step
    r = api.paint("s", "polygon_add", [[10, 10], [60, 10], [60, 40], [10, 40]], key="a.jpg")
    assert r["area"] == 50 * 30 and r["prompt"]["points"] == []
    r = api.paint("s", "brush", [[70, 25], [90, 25]], radius=4, key="a.jpg")
    assert r["area"] > 50 * 30
    undone = api.undo("s")
    assert undone["area"] == 50 * 30 and undone["redoable"] == 1  # the stroke undone
    assert api.redo("s")["area"] == r["area"]  # and back (Ctrl+Y in the page)
    assert api.undo("s")["area"] == 50 * 30
    with pytest.raises(ApiError, match="nothing would be left") as err:  # everything erased: refused
        api.paint("s", "erase", [[0, 25], [100, 25]], radius=40)
    assert err.value.status == 422 and api.redo("s")["area"] == r["area"]  # nothing changed, redo still there
    api.undo("s")
    api.paint("s", "brush", [[20, 45], [30, 45]], radius=2)  # a new step: the redo is forgotten
    assert api.redo("s")["redoable"] == 0
    api.undo("s")
    drawn = api.accept("s", "sign")["annotation"]
    assert ws.store.annotations[drawn["id"]].source == "manual"
    # a click's mask with a hole cut by polygon, then accepted
    big = max(anns, key=lambda a: a["area"])
    x, y = farthest_interior_point(instance_mask(coco_gt, big))
    api.click("s", x, y)
    cut = [[x - 6, y - 6], [x + 6, y - 6], [x + 6, y + 6], [x - 6, y + 6]]
    holed = api.paint("s", "polygon_cut", cut)
    ann = api.accept("s", "thing")["annotation"]
    mask = decode_rle(ws.store.annotations[ann["id"]].rle)
    assert not mask[int(y), int(x)] and holed["area"] == mask.sum()
    snapshot = [a.__dict__ for a in ws.store.annotations.values()]
    # hand edits of the saved annotation: eraser stroke, brush stroke, an outline ring moved
    e1 = api.edit(ann["id"], "erase", [[x - 20, y], [x + 20, y]], radius=3, request_id="e-1")
    assert e1["annotation"]["area"] < ann["area"] and e1["history"]["undoable"] == 3
    assert api.edit(ann["id"], "erase", [[x - 20, y], [x + 20, y]], radius=3, request_id="e-1") == e1  # a retry
    rings = api.outline(ann["id"])["rings"]
    hole = next(r for r in rings if r["hole"])
    moved = [list(p) for p in hole["points"]]
    moved[0] = [moved[0][0] - 5, moved[0][1] - 5]
    e2 = api.move_outline(ann["id"], hole["points"], moved, True)
    assert e2["annotation"]["area"] < e1["annotation"]["area"]  # the hole grew
    with pytest.raises(ApiError, match="radius") as err:
        api.edit(ann["id"], "brush", [[5, 5]])
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        api.edit(12345, "brush", [[5, 5]], radius=2)
    assert err.value.status == 404
    # undo both edits: the store is as it was after the accept, byte for byte; redo brings them back
    assert api.travel("a.jpg", "undo")["kind"] == "edit"
    step = api.travel("a.jpg", "undo")
    assert step["annotations"][0]["area"] == ann["area"] and step["history"] == {"undoable": 2, "redoable": 2}
    assert [a.__dict__ for a in ws.store.annotations.values()] == snapshot
    assert api.travel("a.jpg", "redo")["annotations"][0]["area"] == e1["annotation"]["area"]
    # undo the accepts too; then nothing is left to undo
    api.travel("a.jpg", "undo")
    api.travel("a.jpg", "undo")
    last = api.travel("a.jpg", "undo")
    assert last["removed"] == [drawn["id"]] and not len(ws.store.annotations)
    assert api.travel("a.jpg", "undo")["done"] is False
    assert api.open("s", "a.jpg")["history"] == {"undoable": 0, "redoable": 4}


def test_label_search_offers_a_new_class_and_keeps_to_a_fixed_class_list(sam_model, coco_tiny, coco_gt, tmp_path):
    from annotator.engine import Engine
    from annotator.vocabulary import load_vocabulary
    from app.api import PageAPI

    folder = tmp_path / "photos"
    folder.mkdir()
    info = coco_gt.loadImgs(sorted(coco_gt.getImgIds())[0])[0]
    shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
    ws = Workspace.open_folder(Engine(sam_model, None, load_vocabulary("coco")), folder, tmp_path / "out")
    try:
        api = PageAPI(ws)
        found = api.labels("girafe")
        assert found["results"][0]["name"] == "giraffe" and found["results"][0]["fuzzy"]
        assert found["create"] == "girafe"  # offered, never made by the search itself
        assert api.labels("Giraffe")["create"] is None  # a class of that name exists (any case)
        ws.store.category_id("rockett")  # a class of the project, not of the vocabulary
        hit = api.labels("rocket")["results"][0]
        assert hit == {"name": "rockett", "synonym": None, "gloss": None, "fuzzy": False, "in_project": True}
        ws.store.declare_classes({"person": 1, "bicycle": 2, "tram": 7})
        fixed = api.labels("bi")
        assert [r["name"] for r in fixed["results"]] == ["bicycle"] and fixed["create"] is None
        assert [r["name"] for r in api.labels("trma")["results"]] == ["tram"]  # a typo of a listed class
        assert api.labels("car") == {"results": [], "create": None}  # not on the list: nothing to pick
    finally:
        ws.close()
