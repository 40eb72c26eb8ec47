"""The page's import panel in real Chromium (issue 30): a COCO file of the folder's photos
uploaded with the mouse lands as predictions (the canvas shows them at once, the store holds
them as pycocotools decodes them), a malformed file is refused with its file and record on the
page and nothing imported, and the export panel's "Accepted only" leaves the predictions out."""

from __future__ import annotations

import json
from pathlib import Path

from .test_browser import app, browser, labelled_engine, open_page, photos, state  # fixtures too

__all__ = ["app", "browser", "labelled_engine", "photos"]  # fixtures, used by name


def _coco_of(coco_tiny: Path, keys: list[str], out: Path) -> dict:
    data = json.loads((coco_tiny / "instances.json").read_text())
    ids = {im["id"] for im in data["images"] if im["file_name"] in keys}
    small = {
        **data,
        "images": [im for im in data["images"] if im["id"] in ids],
        "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
    }
    out.write_text(json.dumps(small))
    return small


def _import(page, path: Path, expect: str) -> str:
    page.locator("#import-format input").click()
    page.get_by_role("option", name="COCO instances JSON").click()
    clear = page.locator("#import-file button[aria-label='Clear']")
    if clear.count():  # the file uploaded before
        clear.first.click()
    page.locator("#import-file input[type=file]").set_input_files(str(path))
    page.wait_for_function("() => document.querySelector('#import-file')?.innerText.includes('.json')", timeout=30_000)
    page.locator("#import").click()
    page.wait_for_function(  # the answer (Gradio shows a timer meanwhile, and the last answer)
        "e => (document.querySelector('#import-status')?.innerText || '').includes(e)", arg=expect, timeout=60_000
    )
    return page.evaluate("() => document.querySelector('#import-status').innerText")


def test_import_panel_uploads_predictions_and_refuses_a_bad_file(browser, app, photos, coco_tiny, tmp_path):
    _, picked = photos
    keys = [info["file_name"] for info, _ in picked]
    page = open_page(browser, app.url)
    current = state(page)["current"]
    assert current in keys and state(page)["anns"] == []

    # a malformed file: its record named on the page, nothing imported
    broken = _coco_of(coco_tiny, keys, tmp_path / "broken.json")
    broken["annotations"][0]["category_id"] = 4242
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    text = _import(page, tmp_path / "broken.json", "Nothing imported")
    assert f"annotation {broken['annotations'][0]['id']}" in text and "4242" in text
    assert len(app.ws.store.annotations) == 0

    small = _coco_of(coco_tiny, keys, tmp_path / "good.json")
    text = _import(page, tmp_path / "good.json", f"imported {len(small['annotations'])} annotations on 3 images")
    stored = {a.data["original_id"]: a for a in app.ws.store.annotations.values()}
    assert set(stored) == {a["id"] for a in small["annotations"]}
    assert {a.state for a in stored.values()} == {"predicted"}
    # the canvas reloaded the image shown: its annotations are those imported
    image_id = next(im["id"] for im in small["images"] if im["file_name"] == current)
    expected = sorted(a.id for a in stored.values() if a.image == current)
    page.wait_for_function("n => OVSAM.snapshot().anns.length === n", arg=len(expected), timeout=30_000)
    assert sorted(state(page)["anns"]) == expected
    assert len(expected) == sum(a["image_id"] == image_id for a in small["annotations"])

    # exporting accepted only: nothing accepted yet, so nothing to export
    page.get_by_label("Accepted only").check()
    page.locator("#export").click()
    page.wait_for_function(
        "() => document.querySelector('#export-status')?.innerText.includes('nothing accepted yet')", timeout=30_000
    )
    assert page.errors == []
