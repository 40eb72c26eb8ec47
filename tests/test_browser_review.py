"""Review of a bulk run's predictions in real Chromium (issue 30): `annotate` (annotator.bulk)
prompts real MobileSAM with COCO ground-truth boxes on two real COCO photos, its annotations are
stored as predicted, then the page is driven with the keyboard and the mouse as a person does
it: filter to predicted, step through them (each selected and centred), accept one, fix one
with the brush, reject one, undo the rejection, accept all of the image, mark it reviewed and
step on to the next image with predictions. After each step the counts the page shows and the
states the store holds are checked."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from annotator.bulk import BulkConfig, annotate_folder, load_boxes
from annotator.evaluation import farthest_interior_point
from annotator.masks import decode_rle

from .test_browser import App, browser, open_page, screen_xy, wait_status, wait_switches  # noqa: F401 (fixture)
from .test_browser_edit import stroke

PER_PHOTO = 5  # boxes prompted per photo


@pytest.fixture()
def review_app(engine, coco_tiny, coco_gt, tmp_path):
    """The page served on three COCO photos after a bulk run over them prompted by the
    ground-truth boxes of the first two (PER_PHOTO each); (app, [the two keys], the third key)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    picked = []
    for img_id in sorted(coco_gt.getImgIds()):
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
        if len(anns) >= PER_PHOTO and len(picked) < 3:
            picked.append((coco_gt.loadImgs(img_id)[0], anns[:PER_PHOTO]))
    for info, _ in picked:
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
    gt = json.loads((coco_tiny / "instances.json").read_text())
    gt["images"] = [info for info, _ in picked[:2]]
    gt["annotations"] = [a for _, anns in picked[:2] for a in anns]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(gt))
    out = tmp_path / "out"
    summary = annotate_folder(engine, folder, out, BulkConfig(boxes=load_boxes(boxes)), progress=False)
    assert sum(summary.instances_per_class.values()) == 2 * PER_PHOTO
    served = App(engine, folder, out)
    yield served, sorted(info["file_name"] for info, _ in picked[:2]), picked[2][0]["file_name"]
    served.close()


def store_states(app, key: str) -> dict[int, str]:
    return {a.id: a.state for a in app.ws.store.for_image(key)}


def page_counts(page) -> tuple[str, str]:
    """(this image's counts, the dataset's) as the review panel and the image panel show them."""
    return (page.locator("#ov-review-counts").inner_text(), page.locator("#ov-review-totals").inner_text())


def wait_state(page, ann_id: int, state: str) -> None:
    page.wait_for_function(
        "([id, st]) => OVSAM.snapshot().anns.some(a => a.id === id && a.state === st)", arg=[ann_id, state]
    )


def selected(page) -> list[int]:
    return page.evaluate("() => OVSAM.snapshot().selection")


def listed(page) -> list[int]:
    """The annotation ids the list shows, in order."""
    return [int(i) for i in page.eval_on_selector_all("#ov-anns li", "els => els.map(e => e.dataset.id)")]


def centred(page, ann) -> bool:
    """Whether annotation ``ann``'s box centre is at the canvas's centre (±2 px)."""
    x, y, w, h = ann.bbox
    sx, sy = screen_xy(page, x + w / 2, y + h / 2)
    box = page.locator("#ov-canvas").bounding_box()
    return abs(sx - (box["x"] + box["width"] / 2)) <= 2 and abs(sy - (box["y"] + box["height"] / 2)) <= 2


def test_review_a_bulk_runs_predictions_with_keys_and_the_brush(browser, review_app):  # noqa: F811
    app, (key, other), empty = review_app
    store = app.ws.store
    preds = sorted(store_states(app, key))
    assert len(preds) == PER_PHOTO and set(store_states(app, key).values()) == {"predicted"}
    page = open_page(browser, app.url)
    # the image list: status per row, the filter "has predictions"
    page.select_option("#ov-image-status", "predicted")
    rows = page.eval_on_selector_all("#ov-list li", "els => els.map(e => e.dataset.key)")
    assert sorted(rows) == [key, other]
    page.select_option("#ov-image-status", "")
    assert page.locator(f'#ov-list li[data-key="{empty}"] .status').inner_text() in ("done", "to do")
    n = page.evaluate("() => OVSAM_PERF.switches.length")
    page.locator(f'#ov-list li[data-key="{key}"]').click()
    wait_switches(page, n + 1)
    page.wait_for_function("k => OVSAM.snapshot().current === k", arg=key)
    total = 2 * PER_PHOTO
    assert page_counts(page) == (
        f"This image: {PER_PHOTO} predicted, 0 accepted, 0 rejected",
        f"Dataset: {total} predicted, 0 accepted, 0 rejected",
    )
    # predicted annotations are drawn dashed and marked in the list; filter the list to them
    page.select_option("#ov-ann-filter", "predicted")
    assert listed(page) == preds
    assert page.locator("#ov-anns li.st-predicted .state").count() == PER_PHOTO

    # Tab selects the first prediction and centres it; Tab again the next, Shift+Tab back
    page.keyboard.press("Tab")
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[0])
    assert centred(page, store.annotations[preds[0]])
    page.keyboard.press("Tab")
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[1])
    assert centred(page, store.annotations[preds[1]])
    page.keyboard.press("Shift+Tab")
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[0])
    wait_status(page, f"Prediction 1 of {PER_PHOTO} on this image: {preds[0]}")

    # Y accepts it, and the next prediction is selected
    page.keyboard.press("y")
    wait_state(page, preds[0], "accepted")
    assert store_states(app, key)[preds[0]] == "accepted"
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[1])
    assert listed(page) == preds[1:]  # the predicted filter no longer lists it
    assert page_counts(page) == (
        f"This image: {PER_PHOTO - 1} predicted, 1 accepted, 0 rejected",
        f"Dataset: {total - 1} predicted, 1 accepted, 0 rejected",
    )

    # the brush fixes the selected prediction: the stroke is stored, and the fix accepts it
    fix = store.annotations[preds[1]]
    before = decode_rle(fix.rle)
    x, y = farthest_interior_point(before)
    page.keyboard.press("b")
    stroke(page, [(x, y), (x + 25, y + 10), (x + 50, y + 20)])
    wait_status(page, f"Painted on annotation {fix.id}")
    after = store.annotations[fix.id]
    assert after.state == "accepted" and (decode_rle(after.rle) & ~before).sum() > 50
    wait_state(page, fix.id, "accepted")
    assert page_counts(page)[0] == f"This image: {PER_PHOTO - 2} predicted, 2 accepted, 0 rejected"

    # Tab goes on from the fixed one; X rejects: hidden, left out of the list and the canvas
    page.keyboard.press("Tab")
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[2])
    page.keyboard.press("x")
    wait_state(page, preds[2], "rejected")
    assert store_states(app, key)[preds[2]] == "rejected"
    page.wait_for_function("id => OVSAM.snapshot().selection[0] === id", arg=preds[3])
    assert preds[2] not in listed(page)
    assert page_counts(page) == (
        f"This image: {PER_PHOTO - 3} predicted, 2 accepted, 1 rejected",
        f"Dataset: {total - 3} predicted, 2 accepted, 1 rejected",
    )
    # the filter "rejected" shows it, greyed
    page.select_option("#ov-ann-filter", "rejected")
    assert listed(page) == [preds[2]] and page.locator("#ov-anns li.st-rejected").count() == 1
    page.select_option("#ov-ann-filter", "predicted")

    # Ctrl+Z undoes the rejection (a review step of the image's history)
    page.keyboard.press("Control+z")
    wait_status(page, "Undid review")
    wait_state(page, preds[2], "predicted")
    assert store_states(app, key)[preds[2]] == "predicted"
    assert preds[2] in listed(page)
    assert page_counts(page)[0] == f"This image: {PER_PHOTO - 2} predicted, 2 accepted, 0 rejected"

    # reject it again, then Ctrl+Enter accepts every prediction left: the rejected one stays
    page.locator(f'#ov-anns li[data-id="{preds[2]}"]').click()
    page.keyboard.press("x")
    wait_state(page, preds[2], "rejected")
    page.keyboard.press("Control+Enter")
    wait_status(page, f"Accepted the {PER_PHOTO - 3} predictions of {key}")
    states = store_states(app, key)
    assert states == {i: "rejected" if i == preds[2] else "accepted" for i in preds}
    assert set(store_states(app, other).values()) == {"predicted"}  # the other image is untouched
    assert listed(page) == []
    assert page_counts(page) == (
        f"This image: 0 predicted, {PER_PHOTO - 1} accepted, 1 rejected",
        f"Dataset: {PER_PHOTO} predicted, {PER_PHOTO - 1} accepted, 1 rejected",
    )

    # the Reviewed box marks the image reviewed (and done); its row says so
    page.locator("#ov-reviewed").check()
    page.wait_for_function(
        "k => document.querySelector(`#ov-list li[data-key='${k}'] .status`).innerText === 'reviewed'", arg=key
    )
    assert key in store.reviewed and key in store.done

    # Tab with nothing left here opens the next image with predictions, at its first
    n = page.evaluate("() => OVSAM_PERF.switches.length")
    page.keyboard.press("Tab")
    wait_switches(page, n + 1)
    first = min(store_states(app, other))
    page.wait_for_function("([k, id]) => OVSAM.snapshot().current === k && OVSAM.snapshot().selection[0] === id",
                           arg=[other, first])  # fmt: skip
    wait_status(page, f"Opened {other}, the next image with predictions")
    assert centred(page, store.annotations[first])
    assert re.fullmatch(rf"This image: {PER_PHOTO} predicted, 0 accepted, 0 rejected", page_counts(page)[0])
    assert page.errors == []
    page.close()
