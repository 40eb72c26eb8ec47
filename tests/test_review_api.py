"""The review of predicted annotations through the page's API (app/api.py, app/routes.py): a
bulk run's predictions (real MobileSAM prompted by COCO ground-truth boxes on real COCO photos)
accepted, rejected, fixed by hand and accepted image by image, each step undone from the store's
history; image status and counts per state; bad requests refused before anything changes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from annotator.bulk import BulkConfig, annotate_folder, load_boxes
from annotator.evaluation import farthest_interior_point
from annotator.masks import decode_rle
from annotator.workspace import Workspace

N_BOXED = 2  # photos with predictions; the third has none


@pytest.fixture()
def predicted(engine, coco_tiny, coco_gt, tmp_path):
    """(PageAPI, workspace, its FastAPI test client, the keys with predictions, the key without)
    after a bulk run prompted by the ground-truth boxes of the first two of three COCO photos."""
    from app.api import PageAPI
    from app.routes import add_routes

    folder = tmp_path / "photos"
    folder.mkdir()
    ids = sorted(coco_gt.getImgIds())[:3]
    names = [coco_gt.loadImgs(i)[0]["file_name"] for i in ids]
    for name in names:
        shutil.copy(coco_tiny / "images" / name, folder / name)
    gt = json.loads((coco_tiny / "instances.json").read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] in ids[:N_BOXED]]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids[:N_BOXED] and not a["iscrowd"]]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(gt))
    out = tmp_path / "out"
    summary = annotate_folder(engine, folder, out, BulkConfig(boxes=load_boxes(boxes)), progress=False)
    assert summary.done == 3 and sum(summary.instances_per_class.values()) == len(gt["annotations"])
    ws = Workspace.open_folder(engine, folder, out)
    api = PageAPI(ws, prefetch=0)
    app = FastAPI()
    add_routes(app, api)
    yield api, ws, TestClient(app), sorted(names[:N_BOXED]), names[N_BOXED]
    ws.close()


def states(ws, key: str) -> dict[int, str]:
    return {a.id: a.state for a in ws.store.for_image(key)}


def test_predictions_are_listed_with_state_status_and_counts(predicted):
    api, ws, _, boxed, empty = predicted
    n = {k: len(ws.store.for_image(k)) for k in boxed}
    st = api.state("t")
    assert st["totals"] == {"predicted": sum(n.values()), "accepted": 0, "rejected": 0}
    rows = {r["key"]: r for r in st["images"]}
    for k in boxed:
        assert rows[k]["counts"] == {"predicted": n[k], "accepted": 0, "rejected": 0}
        # the bulk run marks the images it did done
        assert rows[k]["status"] == ("done" if k in ws.store.done else "in progress")
    assert rows[empty]["counts"] == {"predicted": 0, "accepted": 0, "rejected": 0}
    opened = api.open("t", boxed[0])
    assert {a["state"] for a in opened["annotations"]} == {"predicted"}
    assert len(opened["annotations"]) == n[boxed[0]]


def test_accept_reject_and_back_each_one_undoable_step(predicted):
    api, ws, _, boxed, _ = predicted
    key = boxed[0]
    api.open("t", key)
    first, second, *rest = sorted(states(ws, key))
    total = sum(len(ws.store.for_image(k)) for k in boxed)
    depth0 = ws.store.history_depth(key)[0]

    r = api.review([first], "accepted", key)
    assert [a["state"] for a in r["annotations"]] == ["accepted"]
    assert r["totals"] == {"predicted": total - 1, "accepted": 1, "rejected": 0}
    assert r["changed_images"][0]["counts"]["accepted"] == 1 and r["history"]["undoable"] == depth0 + 1
    r = api.review([second], "rejected", key)
    assert r["totals"] == {"predicted": total - 2, "accepted": 1, "rejected": 1}
    assert states(ws, key)[first] == "accepted" and states(ws, key)[second] == "rejected"
    assert all(states(ws, key)[i] == "predicted" for i in rest)
    # masks, labels and scores stay as predicted
    before = {a.id: (a.rle, a.label, a.score) for a in ws.store.for_image(key)}

    undone = api.travel(key, "undo")
    assert undone["done"] and undone["kind"] == "review"
    assert [(a["id"], a["state"]) for a in undone["annotations"]] == [(second, "predicted")]
    assert undone["changed_images"][0]["counts"]["rejected"] == 0
    assert states(ws, key)[second] == "predicted"
    redone = api.travel(key, "redo")
    assert [(a["id"], a["state"]) for a in redone["annotations"]] == [(second, "rejected")]
    # back to predicted
    api.review([first], "predicted", key)
    assert states(ws, key)[first] == "predicted"
    assert {a.id: (a.rle, a.label, a.score) for a in ws.store.for_image(key)} == before


def test_accept_all_of_an_image_leaves_the_rejected_and_other_images(predicted):
    api, ws, _, boxed, _ = predicted
    key, other = boxed
    ids = sorted(states(ws, key))
    api.review([ids[0]], "rejected", key)
    r = api.review_image(key)
    assert sorted(a["id"] for a in r["annotations"]) == ids[1:]
    assert states(ws, key) == {ids[0]: "rejected", **{i: "accepted" for i in ids[1:]}}
    assert set(states(ws, other).values()) == {"predicted"}
    assert r["changed_images"][0]["counts"] == {"predicted": 0, "accepted": len(ids) - 1, "rejected": 1}
    again = api.review_image(key)  # nothing predicted is left: nothing changes, no step
    assert again["annotations"] == [] and again["history"] == r["history"]
    undone = api.travel(key, "undo")
    assert undone["kind"] == "review" and len(undone["annotations"]) == len(ids) - 1
    assert states(ws, key) == {ids[0]: "rejected", **{i: "predicted" for i in ids[1:]}}


def test_a_hand_fix_or_a_relabel_accepts_the_prediction(predicted):
    api, ws, _, boxed, _ = predicted
    key = boxed[0]
    anns = sorted(ws.store.for_image(key), key=lambda a: -a.area)
    big, small = anns[0], anns[1]
    mask = decode_rle(big.rle)
    x, y = farthest_interior_point(mask)
    fixed = api.edit(big.id, "erase", [[x - 3, y], [x + 3, y]], 2.0)
    assert fixed["annotation"]["state"] == "accepted" and fixed["annotation"]["area"] < big.area
    assert (decode_rle(ws.store.annotations[big.id].rle) <= mask).all()
    relabelled = api.relabel([small.id], "thing")
    assert relabelled["annotations"][0]["state"] == "accepted"
    assert api.state("t")["totals"]["accepted"] == 2
    # undoing the fix brings the prediction back, mask and state
    api.travel(key, "undo")
    api.travel(key, "undo")
    again = ws.store.annotations[big.id]
    assert again.state == "predicted" and np.array_equal(decode_rle(again.rle), mask)


def test_reviewed_marks_the_image_done_and_not_done_clears_it(predicted):
    api, ws, _, boxed, empty = predicted
    key = boxed[0]
    r = api.set_reviewed(key, True)
    assert r["changed_images"][0]["status"] == "reviewed" and r["changed_images"][0]["done"]
    assert key in ws.store.reviewed and key in ws.store.done
    r = api.set_reviewed(key, False)
    assert r["changed_images"][0]["status"] == "done"
    api.set_reviewed(key, True)
    rows = {e["key"]: e for e in api.set_done(key, False)["images"]}
    assert rows[key]["status"] == "in progress" and key not in ws.store.reviewed
    # an image without annotations can be reviewed too (a negative)
    r = api.set_reviewed(empty, True)
    assert r["changed_images"][0]["status"] == "reviewed"


def test_bad_review_requests_are_refused_and_change_nothing(predicted):
    _, ws, http, boxed, _ = predicted
    key, other = boxed
    before = {k: states(ws, k) for k in boxed}
    depth = ws.store.history_depth(key)
    post = lambda path, **body: http.post(f"/ovsam/api/{path}", json=body)  # noqa: E731
    one = sorted(before[key])[0]
    foreign = sorted(before[other])[0]
    cases = [
        ("review", {"ids": [one], "state": "approved", "key": key}, 422, "state: Input should be"),
        ("review", {"ids": [], "state": "accepted", "key": key}, 422, "ids: List should have at least 1 item"),
        ("review", {"ids": ["one"], "state": "accepted", "key": key}, 422, "ids.0: Input should be a valid integer"),
        ("review", {"ids": [one], "state": "accepted"}, 422, "key: Field required"),
        ("review", {"ids": [one, 99999], "state": "accepted", "key": key}, 404, "no annotation 99999"),
        ("review", {"ids": [one, foreign], "state": "rejected", "key": key}, 409, f"annotation {foreign} is on"),
        ("review/image", {"key": "nope.jpg"}, 404, "no image 'nope.jpg'"),
        ("review/image", {}, 422, "key: Field required"),
        ("reviewed", {"key": key, "reviewed": "yes"}, 422, "reviewed: Input should be a valid boolean"),
        ("reviewed", {"key": "../etc/passwd"}, 404, "no image"),
    ]
    for path, body, code, reason in cases:
        r = post(path, **body)
        assert r.status_code == code and reason in r.json()["error"], (path, body, r.status_code, r.json())
    assert {k: states(ws, k) for k in boxed} == before
    assert ws.store.history_depth(key) == depth and ws.store.reviewed == set()
    # the same through HTTP, done right, fits its response model
    from app import schemas

    ok = schemas.ReviewOut.model_validate(post("review", ids=[one], state="accepted", key=key).json())
    assert ok.annotations[0].state == "accepted" and ok.totals.accepted == 1
    schemas.ReviewOut.model_validate(post("review/image", key=key).json())
    schemas.ReviewedOut.model_validate(post("reviewed", key=key, reviewed=True).json())
    schemas.StateOut.model_validate(http.get("/ovsam/api/state", params={"session": "t"}).json())
