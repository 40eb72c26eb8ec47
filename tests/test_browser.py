"""End to end in a real browser: launch the app, click an object, accept, reload, box, export."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.exporters.coco_panoptic import read_coco_panoptic
from annotator.workspace import Workspace

from .conftest import instance_mask

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is required in CI (.ci/run installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served_app(engine, coco_tiny, coco_gt, tmp_path_factory):
    """The app over two real COCO photos, served on localhost."""
    from app.ui import build_ui

    folder = tmp_path_factory.mktemp("photos")
    picked = []
    for img_id in sorted(coco_gt.getImgIds()):
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
        if len(anns) >= 2 and len(picked) < 2:
            info = coco_gt.loadImgs(img_id)[0]
            shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
            picked.append((info, anns))
    out = tmp_path_factory.mktemp("exports")
    ws = Workspace.open_folder(engine, folder, out)
    port = _free_port()
    demo = build_ui(ws)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield ws, f"http://127.0.0.1:{port}", picked
    demo.close()


def _wait_status(page, text: str, timeout: int = 60_000) -> str:
    page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text, timeout=timeout)
    return page.locator("#status").inner_text()


def _click_image(page, x: float, y: float) -> None:
    img = page.locator("#canvas img")
    box = img.bounding_box()
    natural_w = page.evaluate("() => document.querySelector('#canvas img').naturalWidth")
    natural_h = page.evaluate("() => document.querySelector('#canvas img').naturalHeight")
    img.click(position={"x": x * box["width"] / natural_w, "y": y * box["height"] / natural_h})


def _set_label(page, name: str) -> None:
    field = page.locator("#label input")
    field.click()
    field.fill(name)
    field.press("Enter")
    page.locator("#status").click()  # blur: the dropdown commits its value


def test_click_accept_reload_box_export(browser, served_app, coco_gt, tmp_path):
    ws, url, picked = served_app
    info, anns = picked[0]
    assert ws.keys[0] == info["file_name"]
    first, second = sorted(anns, key=lambda a: -a["area"])[:2]
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#canvas img", timeout=60_000)
    _wait_status(page, info["file_name"])

    # 1. a click on the largest object gives its mask
    gt1 = instance_mask(coco_gt, first)
    px, py = farthest_interior_point(gt1)
    _click_image(page, px, py)
    status = _wait_status(page, "Mask:")
    assert "predicted IoU" in status
    name1 = coco_gt.loadCats(first["category_id"])[0]["name"]
    _set_label(page, name1)
    page.locator("#accept").click()
    _wait_status(page, "Saved annotation")
    page.screenshot(path=str(tmp_path / "after_accept.png"))

    # 2. a reload comes back to the same image with the accepted annotation
    page.reload()
    page.wait_for_selector("#canvas img", timeout=60_000)
    _wait_status(page, info["file_name"])
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=f"{name1}", timeout=30_000)

    # 3. a box from two clicks gives the second object
    page.get_by_label("Box (2 clicks)").check()
    x, y, w, h = second["bbox"]
    _click_image(page, x, y)
    _wait_status(page, "opposite corner")
    _click_image(page, x + w, y + h)
    _wait_status(page, "Mask:")
    _set_label(page, "my custom label")
    page.locator("#accept").click()
    _wait_status(page, "Saved annotation 2")

    # 4. export and read it back with pycocotools
    page.locator("#export").click()
    page.wait_for_function(
        "() => document.querySelector('#export-status').innerText.includes('Exported 2')", timeout=30_000
    )
    coco_json = (ws.out_dir / f"{ws.slug}_coco.json").read_text()

    # 5. merge the two into one, then export COCO panoptic
    page.locator("#merge-ids textarea, #merge-ids input").first.fill("1 2")
    page.locator("#merge").click()
    _wait_status(page, "into annotation 3")
    page.get_by_label("COCO panoptic").check()
    page.locator("#export").click()
    page.wait_for_function(
        "() => document.querySelector('#export-status').innerText.includes('COCO panoptic')", timeout=30_000
    )
    for choice, said in (("YOLO segmentation", "YOLO"), ("Label Studio JSON", "Label Studio")):  # every format offered
        page.get_by_label(choice).check()
        page.locator("#export").click()
        page.wait_for_function(
            f"() => document.querySelector('#export-status').innerText.includes('as {said}')", timeout=30_000
        )
    page.close()
    assert (ws.out_dir / f"{ws.slug}_yolo" / "data.yaml").is_file()
    assert len(json.loads((ws.out_dir / f"{ws.slug}_label_studio.json").read_text())) == 1
    (pan,), _ = read_coco_panoptic(ws.out_dir / f"{ws.slug}_panoptic.json")
    assert len(pan.segments_info) == 1 and pan.segments_info[0]["area"] == ws.store.annotations[3].area

    from pycocotools.coco import COCO

    coco_path = tmp_path / "coco.json"
    coco_path.write_text(coco_json)
    coco = COCO(str(coco_path))
    exported = {coco.loadCats(a["category_id"])[0]["name"]: a for a in coco.loadAnns(coco.getAnnIds())}
    assert set(exported) == {name1, "my custom label"}
    assert coco.loadImgs(exported[name1]["image_id"])[0]["file_name"] == info["file_name"]
    clicked = coco.annToMask(exported[name1]).astype(bool)
    assert clicked[int(py), int(px)]
    # the browser click produced the engine's own mask for that point: coordinates map right
    ws.activate(info["file_name"])
    direct_result = ws.engine.predict(point_coords=np.array([[px, py]]), point_labels=np.array([1]))
    direct, direct_iou = direct_result.mask, direct_result.predicted_iou
    assert mask_iou(clicked, direct) > 0.97
    gt2 = instance_mask(coco_gt, second)
    assert mask_iou(coco.annToMask(exported["my custom label"]).astype(bool), gt2) > 0.5
    assert np.isclose(exported[name1]["predicted_iou"], direct_iou)
