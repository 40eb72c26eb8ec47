"""The annotation page in real Chromium (Playwright): prompts, zoom, shortcuts, selection, label
search, image list, two tabs, reload and restart. Real MobileSAM, real COCO photos; a tiny
random-weight CLIP with the 21,843-name vocabulary drives the label path (its labels mean
nothing, the page's handling of them is what is tested)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.masks import decode_rle
from annotator.store import AnnotationStore
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


def free_port() -> int:
    import socket

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
def labelled_engine(sam_model, tiny_clip_factory):
    """MobileSAM + a tiny random CLIP over the 21,843-name ImageNet-21k vocabulary (random unit
    text embeddings: encoding 21,843 names with a random text tower would only cost time)."""
    import torch

    from annotator.engine import Engine
    from annotator.vocabulary import load_vocabulary

    clf = tiny_clip_factory()
    vocab = load_vocabulary("imagenet21k")
    torch.manual_seed(0)
    dim = clf.model.text_projection.shape[1]
    text = torch.nn.functional.normalize(torch.randn(len(vocab), dim), dim=-1)
    return Engine(sam_model, clf, vocab, text_embeddings=text)


def coordinate_image(path: Path, width: int = 120, height: int = 100) -> None:
    """An image whose colour names its pixel: R = 2x, G = 2y (B = 60), saved losslessly."""
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([2 * xs, 2 * ys, np.full_like(xs, 60)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


@pytest.fixture()
def photos(coco_tiny, coco_gt, tmp_path):
    """Three real COCO photos with ≥ 2 instances each (+ their annotations) and the coordinate image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    picked = []
    for img_id in sorted(coco_gt.getImgIds()):
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
        if len(anns) >= 2 and len(picked) < 3:
            info = coco_gt.loadImgs(img_id)[0]
            shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
            picked.append((info, anns))
    coordinate_image(folder / "zz_coordinates.png")
    return folder, picked


class App:
    """The served app and helpers to drive a page of it."""

    def __init__(self, engine, folder: Path, out: Path):
        from app.page import Server

        self.ws = Workspace.open_folder(engine, folder, out)
        self.server = Server(self.ws, port=free_port())
        self.url = self.server.url

    def close(self):
        self.server.close()


@pytest.fixture()
def app(labelled_engine, photos, tmp_path):
    folder, _ = photos
    served = App(labelled_engine, folder, tmp_path / "out")
    yield served
    served.close()


def open_page(browser, url: str, width: int = 1500, height: int = 950):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url)
    wait_switches(page, 1)
    return page


def wait_switches(page, n: int, timeout: int = 90_000):
    page.wait_for_function("n => (window.OVSAM_PERF?.switches.length || 0) >= n", arg=n, timeout=timeout)


def state(page) -> dict:
    return page.evaluate(
        """() => { const S = OVSAM.snapshot(); return {current: S.current, W: S.W, H: S.H, dw: S.dw, z: S.z,
        tx: S.tx, ty: S.ty, prompt: S.prompt, pending: S.pending, anns: S.anns.map(a => a.id),
        selection: S.selection, tool: S.tool, showMasks: S.showMasks, hover: S.hover,
        suggestions: S.suggestions.map(s => s.name), label: document.querySelector('#ov-label').value}; }"""
    )


def screen_xy(page, x: float, y: float) -> tuple[float, float]:
    """Viewport position of original image pixel coordinates (x, y) as the page draws them."""
    return tuple(
        page.evaluate(
            """([x, y]) => { const S = OVSAM.snapshot(), r = document.querySelector('#ov-canvas').getBoundingClientRect();
            return [r.left + x * (S.dw / S.W) * S.z + S.tx, r.top + y * (S.dh / S.H) * S.z + S.ty]; }""",
            [x, y],
        )
    )


def clicks_done(page) -> int:
    return page.evaluate("() => OVSAM_PERF.clicks.length")


def click_image(page, x: float, y: float, button: str = "left", modifiers=None) -> None:
    """Click at original pixel (x, y) and wait for the new mask to be painted."""
    n = clicks_done(page)
    sx, sy = screen_xy(page, x, y)
    if modifiers:
        for m in modifiers:
            page.keyboard.down(m)
    page.mouse.click(sx, sy, button=button)
    if modifiers:
        for m in modifiers:
            page.keyboard.up(m)
    page.wait_for_function("n => OVSAM_PERF.clicks.length > n", arg=n, timeout=30_000)
    page.wait_for_function("() => !OVSAM.snapshot().labelsPending", timeout=30_000)  # the labels follow the mask


def inside_only(ws, ann_id: int) -> tuple[float, float]:
    """A point inside annotation ``ann_id``'s mask and no other mask of its image (where a click selects it)."""
    ann = ws.store.annotations[ann_id]
    others = [decode_rle(a.rle) for a in ws.store.for_image(ann.image) if a.id != ann_id]
    own = decode_rle(ann.rle) & ~np.logical_or.reduce(others) if others else decode_rle(ann.rle)
    x, y = farthest_interior_point(own)
    return x, y


def outside_all(ws, key: str) -> tuple[float, float]:
    """A point of image ``key`` that no annotation covers."""
    masks = [decode_rle(a.rle) for a in ws.store.for_image(key)]
    x, y = farthest_interior_point(~np.logical_or.reduce(masks))
    return x, y


def shift_click(page, sx: float, sy: float) -> None:
    page.keyboard.down("Shift")
    page.mouse.click(sx, sy)
    page.keyboard.up("Shift")


def status(page) -> str:
    return page.locator("#ov-status").inner_text()


def wait_status(page, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function("t => document.querySelector('#ov-status').innerText.includes(t)", arg=text, timeout=timeout)


def choose_label(page, label: str) -> None:
    """Type ``label`` in the label field and pick it with the keyboard as a person does: the row
    of that name, else "Create class '…'" (↓ to it, Enter). The field then holds the choice."""
    field = page.locator("#ov-label")
    field.fill(label)
    page.wait_for_function("t => OVSAM.snapshot().resultsFor === t", arg=label.strip())
    rows = page.evaluate("() => OVSAM.snapshot().results")
    named = [i for i, r in enumerate(rows) if not r["create"] and r["name"].lower() == label.strip().lower()]
    want = named[0] if named else next(i for i, r in enumerate(rows) if r["create"])
    for _ in range(want):
        field.press("ArrowDown")
    field.press("Enter")  # takes the row
    page.wait_for_function("() => OVSAM.snapshot().labelChoice !== null")


def accept_with(page, label: str) -> None:
    n = page.evaluate("() => OVSAM.snapshot().anns.length")
    choose_label(page, label)
    page.keyboard.press("Enter")  # the second Enter accepts
    page.wait_for_function("n => OVSAM.snapshot().anns.length > n", arg=n, timeout=30_000)


def open_key(page, key: str) -> None:
    n = page.evaluate("() => OVSAM_PERF.switches.length")
    page.locator(f"#ov-list li[data-key='{key}']").click()
    wait_switches(page, n + 1)


def test_points_box_refine_accept_and_export(browser, app, photos, coco_gt, tmp_path):
    ws = app.ws
    _, picked = photos
    info, anns = picked[0]
    page = open_page(browser, app.url)
    assert state(page)["current"] == info["file_name"]
    first, second = sorted(anns, key=lambda a: -a["area"])[:2]
    gt1 = instance_mask(coco_gt, first)
    px, py = farthest_interior_point(gt1)

    # a left click is a positive point, in original pixels; the mask and its suggestions arrive
    click_image(page, px, py)
    s = state(page)
    assert s["pending"] and s["prompt"]["labels"] == [1]
    assert np.allclose(s["prompt"]["points"][0], [px, py], atol=1.0)
    assert len(s["suggestions"]) == 5 and s["label"] == s["suggestions"][0]
    assert "predicted IoU" in status(page)

    # right click and shift + click are negative points; each refines the mask
    nx, ny = farthest_interior_point(~gt1)
    click_image(page, nx, ny, button="right")
    click_image(page, nx + 2, ny + 2, modifiers=["Shift"])
    assert state(page)["prompt"]["labels"] == [1, 0, 0]
    page.keyboard.press("Control+z")  # undo drops the last point, no decoding
    page.wait_for_function("() => OVSAM.snapshot().prompt.labels.length === 2")
    name1 = coco_gt.loadCats(first["category_id"])[0]["name"]
    accept_with(page, name1)
    (ann1,) = ws.store.for_image(info["file_name"])
    assert ann1.label == name1 and ann1.prompt["labels"] == [1, 0]
    clicked = decode_rle(ann1.rle)
    # the same prompt through the engine directly: the browser's clicks mapped exactly
    emb = ws.engine.embed(ws.load(info["file_name"]))
    direct = ws.engine.predict(emb, point_coords=np.array(ann1.prompt["points"][:1]), point_labels=np.array([1]))
    refined = ws.engine.predict(
        emb,
        point_coords=np.array(ann1.prompt["points"]),
        point_labels=np.array(ann1.prompt["labels"]),
        mask_input=direct.low_res_logits,
    )
    assert mask_iou(clicked, refined.mask) > 0.97
    assert mask_iou(clicked, gt1) > 0.5

    # a drag is a box; Esc clears it
    x, y, w, h = second["bbox"]
    sx0, sy0 = screen_xy(page, x, y)
    sx1, sy1 = screen_xy(page, x + w, y + h)
    n = clicks_done(page)
    page.mouse.move(sx0, sy0)
    page.mouse.down()
    page.mouse.move((sx0 + sx1) / 2, (sy0 + sy1) / 2, steps=3)
    page.mouse.move(sx1, sy1, steps=3)
    page.mouse.up()
    page.wait_for_function("n => OVSAM_PERF.clicks.length > n", arg=n, timeout=30_000)
    s = state(page)
    assert s["prompt"]["points"] == [] and np.allclose(s["prompt"]["box"], [x, y, x + w, y + h], atol=1.5)
    page.keyboard.press("Escape")
    page.wait_for_function("() => { const S = OVSAM.snapshot(); return !S.pending && !S.prompt.box; }")
    # box and points combine: drag again, then a positive point inside
    page.mouse.move(sx0, sy0)
    page.mouse.down()
    page.mouse.move(sx1, sy1, steps=4)
    page.mouse.up()
    page.wait_for_function("n => OVSAM_PERF.clicks.length > n + 1", arg=n, timeout=30_000)
    gt2 = instance_mask(coco_gt, second)
    qx, qy = farthest_interior_point(gt2)
    click_image(page, qx, qy)
    s = state(page)
    assert s["prompt"]["box"] is not None and s["prompt"]["labels"] == [1]
    accept_with(page, "my custom label")  # a name not in the vocabulary: a new category
    saved = ws.store.for_image(info["file_name"])[-1]
    assert saved.label == "my custom label" and mask_iou(decode_rle(saved.rle), gt2) > 0.5
    assert "my custom label" in ws.store.categories

    # export through the Gradio panel; pycocotools reads it back
    page.get_by_text("Export dataset").click()
    page.locator("#export").click()
    page.wait_for_function(
        "() => document.querySelector('#export-status')?.innerText.includes('Exported 2')", timeout=30_000
    )
    from pycocotools.coco import COCO

    coco = COCO(str(ws.out_dir / f"{ws.slug}_coco.json"))
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {name1, "my custom label"}
    assert page.errors == []
    page.close()


def test_click_after_zoom_and_pan_lands_on_the_pixel_under_the_cursor(browser, app):
    page = open_page(browser, app.url)
    open_key(page, "zz_coordinates.png")
    page.keyboard.press("h")  # masks hidden: the canvas shows the photo's own pixels
    rect = page.locator("#ov-canvas").bounding_box()

    def pixel_under(sx: float, sy: float) -> tuple[int, int]:
        """The image pixel the canvas shows at viewport (sx, sy), read from its colour (R = 2x, G = 2y)."""
        r, g = page.evaluate(
            """([sx, sy]) => { const c = document.querySelector('#ov-canvas'), r = c.getBoundingClientRect();
            const d = window.devicePixelRatio || 1;
            const p = c.getContext('2d').getImageData(Math.floor((sx - r.left) * d), Math.floor((sy - r.top) * d), 1, 1).data;
            return [p[0], p[1]]; }""",
            [sx, sy],
        )
        return round(r / 2), round(g / 2)

    cx, cy = rect["x"] + rect["width"] * 0.45, rect["y"] + rect["height"] * 0.55
    for _ in range(3):  # zoom in around the cursor
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, -400)
    page.wait_for_timeout(200)
    s = state(page)
    assert s["z"] > 8
    targets = [(cx + 17, cy - 9), (cx - 23, cy + 31)]
    # pan with the middle button, then once more with space + drag
    page.mouse.move(cx, cy)
    page.mouse.down(button="middle")
    page.mouse.move(cx + 40, cy + 25, steps=4)
    page.mouse.up(button="middle")
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(cx + 70, cy + 45, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    s2 = state(page)
    assert (s2["tx"], s2["ty"]) == pytest.approx((s["tx"] + 70, s["ty"] + 45), abs=1)
    assert state(page)["prompt"]["points"] == []  # panning added no point
    for sx, sy in targets:
        page.keyboard.press("Escape")  # no pending mask over the pixels
        page.wait_for_function("() => { const S = OVSAM.snapshot(); return !S.pending && !S.prompt.points.length; }")
        expected = pixel_under(sx, sy)
        n = clicks_done(page)
        page.mouse.click(sx, sy)
        page.wait_for_function("n => OVSAM_PERF.clicks.length > n", arg=n, timeout=30_000)
        x, y = state(page)["prompt"]["points"][-1]
        assert abs(int(x) - expected[0]) <= 1 and abs(int(y) - expected[1]) <= 1, (x, y, expected)
    # F fits the whole image again
    page.keyboard.press("f")
    assert state(page)["z"] < s["z"] / 4
    assert page.errors == []
    page.close()


def test_shortcuts(browser, app, photos, coco_gt):
    ws = app.ws
    _, picked = photos
    (info0, anns0), (info1, _), _ = picked
    page = open_page(browser, app.url)
    # ? shows the help overlay, Esc closes it
    page.keyboard.press("?")
    assert page.locator("#ov-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#ov-help").is_visible()
    # D / → next, A / ← previous image
    for key, expected in (("d", info1), ("a", info0), ("ArrowRight", info1), ("ArrowLeft", info0)):
        n = page.evaluate("() => OVSAM_PERF.switches.length")
        page.keyboard.press(key)
        wait_switches(page, n + 1)
        assert state(page)["current"] == expected["file_name"], key
    # digits pick suggestions; / focuses the label search; Enter accepts; Ctrl+Z undoes; Esc clears
    big = sorted(anns0, key=lambda a: -a["area"])
    px, py = farthest_interior_point(instance_mask(coco_gt, big[0]))
    click_image(page, px, py)
    sugg = state(page)["suggestions"]
    page.keyboard.press("3")
    assert state(page)["label"] == sugg[2]
    page.keyboard.press("1")
    assert state(page)["label"] == sugg[0]
    qx, qy = farthest_interior_point(instance_mask(coco_gt, big[1]))
    click_image(page, qx, qy)
    assert len(state(page)["prompt"]["points"]) == 2
    page.keyboard.press("Control+z")
    page.wait_for_function("() => OVSAM.snapshot().prompt.points.length === 1")
    page.keyboard.press("Enter")
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 1")
    assert ws.store.for_image(info0["file_name"])[0].label == sugg[0]
    click_image(page, qx, qy)
    page.keyboard.press("Escape")
    page.wait_for_function("() => { const S = OVSAM.snapshot(); return !S.pending && S.prompt.points.length === 0; }")
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "ov-label"
    page.locator("#ov-label").press("Escape")
    # C cycles SAM's three candidate masks for the click, the status line says which
    click_image(page, px, py)
    shown = []
    for _ in range(3):
        token = page.evaluate("() => OVSAM.snapshot().token")
        page.keyboard.press("c")
        page.wait_for_function("t => { const S = OVSAM.snapshot(); return S.pending && S.token !== t; }", arg=token)
        wait_status(page, " of 3")
        shown.append(re.search(r"Mask: (\d+) px, candidate (\d) of 3", status(page)).groups())
    assert sorted(n for _, n in shown) == ["1", "2", "3"] and len({area for area, _ in shown}) == 3  # three masks
    page.keyboard.press("Escape")
    page.wait_for_function("() => !OVSAM.snapshot().pending")
    # H hides and shows masks
    page.keyboard.press("h")
    assert state(page)["showMasks"] is False
    page.keyboard.press("h")
    assert state(page)["showMasks"] is True
    # V select tool: a click selects; M merges (asking for the label when the parts disagree);
    # Delete deletes; N back to segmenting
    click_image(page, qx, qy)
    accept_with(page, "other")
    ids = sorted(a.id for a in ws.store.for_image(info0["file_name"]))
    assert len(ids) == 2
    page.keyboard.press("v")
    assert state(page)["tool"] == "select"
    page.mouse.click(*screen_xy(page, *inside_only(ws, ids[0])))
    shift_click(page, *screen_xy(page, *inside_only(ws, ids[1])))
    assert sorted(state(page)["selection"]) == ids
    page.keyboard.press("m")
    wait_status(page, f"The selection is labelled '{sugg[0]}', 'other'")
    assert sorted(a.id for a in ws.store.for_image(info0["file_name"])) == ids  # nothing merged yet
    choose_label(page, "pair")
    page.keyboard.press("m")
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 1")
    (merged,) = ws.store.for_image(info0["file_name"])
    assert merged.id not in ids and state(page)["selection"] == [merged.id] and merged.label == "pair"
    page.keyboard.press("Delete")
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 0")
    assert ws.store.for_image(info0["file_name"]) == []
    page.keyboard.press("n")
    assert state(page)["tool"] == "segment"
    # E runs the everything pass: instances become annotations
    page.keyboard.press("e")
    page.wait_for_function("() => OVSAM.snapshot().anns.length > 3", timeout=120_000)
    wait_status(page, "Everything")
    assert len(ws.store.for_image(info0["file_name"])) == len(state(page)["anns"])
    assert page.errors == []
    page.close()


def test_select_relabel_delete_merge_by_clicking_and_the_list(browser, app, photos, coco_gt):
    ws = app.ws
    _, picked = photos
    info, anns = picked[0]
    page = open_page(browser, app.url)
    for a in sorted(anns, key=lambda a: -a["area"])[:3]:
        px, py = farthest_interior_point(instance_mask(coco_gt, a))
        click_image(page, px, py)
        accept_with(page, "thing")
    ids = [a.id for a in ws.store.for_image(info["file_name"])]
    assert len(ids) == 3
    page.locator("#ov-tool-select").click()
    inside = [inside_only(ws, i) for i in ids]
    # click selects (highlighted), shift + click adds, a plain click replaces
    page.mouse.click(*screen_xy(page, *inside[0]))
    assert state(page)["selection"] == [ids[0]]
    assert page.locator(f"#ov-anns li[data-id='{ids[0]}']").get_attribute("class").startswith("selected")
    shift_click(page, *screen_xy(page, *inside[1]))
    assert sorted(state(page)["selection"]) == sorted(ids[:2])
    # relabel the selection by key (Enter, no mask pending), then by button
    choose_label(page, "car")
    page.keyboard.press("Enter")
    page.wait_for_function("() => OVSAM.snapshot().anns.filter(a => a.label === 'car').length === 2")
    choose_label(page, "vehicle")
    page.locator("#ov-relabel").click()
    page.wait_for_function("() => OVSAM.snapshot().anns.filter(a => a.label === 'vehicle').length === 2")
    assert [ws.store.annotations[i].label for i in ids] == ["vehicle", "vehicle", "thing"]
    # merge by button: one annotation, the union
    union = decode_rle(ws.store.annotations[ids[0]].rle) | decode_rle(ws.store.annotations[ids[1]].rle)
    page.locator("#ov-merge").click()
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 2")
    merged = ws.store.for_image(info["file_name"])[-1]
    assert np.array_equal(decode_rle(merged.rle), union) and merged.label == "vehicle"
    # hovering a row highlights its mask; its eye hides it
    page.locator(f"#ov-anns li[data-id='{ids[2]}']").hover()
    assert state(page)["hover"] == ids[2]
    page.locator(f"#ov-anns li[data-id='{ids[2]}'] .eye").click()
    assert page.evaluate(f"() => OVSAM.snapshot().anns.find(a => a.id === {ids[2]}).hidden") is True
    page.locator(f"#ov-anns li[data-id='{ids[2]}'] .eye").click()
    # a row click selects; delete by button
    page.locator(f"#ov-anns li[data-id='{ids[2]}'] .name").click()
    assert state(page)["selection"] == [ids[2]]
    page.locator("#ov-delete").click()
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 1")
    assert [a.id for a in ws.store.for_image(info["file_name"])] == [merged.id]
    # a click on empty ground clears the selection
    page.mouse.click(*screen_xy(page, *inside_only(ws, merged.id)))
    assert state(page)["selection"] == [merged.id]
    page.mouse.click(*screen_xy(page, *outside_all(ws, info["file_name"])))
    assert state(page)["selection"] == []
    # the opacity slider changes how masks are drawn
    page.locator("#ov-opacity").fill("80")
    assert page.evaluate("() => OVSAM.snapshot().opacity") == pytest.approx(0.8)
    assert page.errors == []
    page.close()


def drag_box(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag a box between original pixels (x0, y0) and (x1, y1) and wait for its mask."""
    n = clicks_done(page)
    sx0, sy0 = screen_xy(page, x0, y0)
    sx1, sy1 = screen_xy(page, x1, y1)
    page.mouse.move(sx0, sy0)
    page.mouse.down()
    page.mouse.move(sx1, sy1, steps=4)
    page.mouse.up()
    page.wait_for_function("n => OVSAM_PERF.clicks.length > n", arg=n, timeout=30_000)


def test_subtract_and_intersect_by_button(browser, app, photos, coco_gt):
    """Select the annotation to cut, shift + click the one to cut out of it, Subtract: a hole, the
    cutter kept; Intersect on two that no longer overlap says why and changes nothing."""
    ws = app.ws
    _, picked = photos
    info, anns = picked[0]
    big = max(anns, key=lambda a: a["area"])
    px, py = farthest_interior_point(instance_mask(coco_gt, big))
    page = open_page(browser, app.url)
    x, y, w, h = big["bbox"]
    drag_box(page, x, y, x + w, y + h)
    accept_with(page, "thing")
    drag_box(page, px - 20, py - 20, px + 20, py + 20)
    accept_with(page, "thing")
    outer, inner = (a.id for a in ws.store.for_image(info["file_name"]))
    a, b = (decode_rle(ws.store.annotations[i].rle) for i in (outer, inner))
    assert (a & b).sum() > 100
    on_inner = screen_xy(page, *farthest_interior_point(b))  # the one added last is on top there
    page.keyboard.press("v")
    page.mouse.click(*screen_xy(page, *inside_only(ws, outer)))
    shift_click(page, *on_inner)
    assert state(page)["selection"] == [outer, inner]  # the order of selection: the first is cut
    page.locator("#ov-subtract").click()
    wait_status(page, f"Cut {inner} out of annotation {outer}")
    assert np.array_equal(decode_rle(ws.store.annotations[outer].rle), a & ~b)
    assert np.array_equal(decode_rle(ws.store.annotations[inner].rle), b)
    # the hole is on the canvas too: the page's copy of the annotation is the store's
    area = page.evaluate(f"() => OVSAM.snapshot().anns.find(a => a.id === {outer}).area")
    assert area == int((a & ~b).sum())
    page.mouse.click(*screen_xy(page, *inside_only(ws, outer)))
    shift_click(page, *on_inner)
    page.locator("#ov-intersect").click()
    wait_status(page, "no pixel in common")
    assert sorted(a.id for a in ws.store.for_image(info["file_name"])) == [outer, inner]
    # R re-prompts the selected annotation: a click refines its mask, Enter replaces it in place
    page.mouse.click(*screen_xy(page, *inside_only(ws, outer)))
    page.keyboard.press("r")
    wait_status(page, f"Re-prompting annotation {outer}")
    assert state(page)["tool"] == "segment" and state(page)["selection"] == []
    before = decode_rle(ws.store.annotations[outer].rle)
    click_image(page, *farthest_interior_point(b))  # a positive point in the hole
    wait_status(page, f"Re-prompting annotation {outer}")
    page.keyboard.press("Enter")
    wait_status(page, f"Saved annotation {outer}")
    assert sorted(a.id for a in ws.store.for_image(info["file_name"])) == [outer, inner]
    after = ws.store.annotations[outer]
    assert not np.array_equal(decode_rle(after.rle), before) and len(after.prompt["points"]) == 1
    assert page.evaluate(f"() => OVSAM.snapshot().anns.find(a => a.id === {outer}).area") == after.area
    assert page.errors == []
    page.close()


def test_label_search_runs_on_the_server(browser, app):
    page = open_page(browser, app.url)
    field = page.locator("#ov-label")
    field.click()
    field.type("a")
    page.wait_for_function("() => document.querySelectorAll('#ov-label-results li').length > 0")
    assert page.locator("#ov-label-results li:not(.create)").count() == 20  # the best 20 of 21,843
    assert page.locator("#ov-label-results li.create").inner_text() == "+ Create class 'a'"  # no class is 'a'"
    field.fill("")
    field.type("domestic dog")  # a synonym of ImageNet-21k's "dog"
    page.wait_for_function("() => OVSAM.snapshot().resultsFor === 'domestic dog'")  # the whole query answered
    first = page.locator("#ov-label-results li").first.inner_text()
    assert first.startswith("dog") and "domestic dog" in first
    field.press("Enter")  # takes the highlighted name
    assert field.input_value() == "dog"
    # Enter before the search has answered the text typed: it searches first and never takes a
    # name from an older query's results: it takes the highlighted row of the text typed
    field.fill("dom")
    page.wait_for_function("() => OVSAM.snapshot().resultsFor === 'dom'")
    stale = page.evaluate("() => OVSAM.snapshot().results[0].name")
    page.evaluate("() => { document.querySelector('#ov-label').value = 'domestic cat'; }")  # no answer yet
    field.press("Enter")
    page.wait_for_function("() => OVSAM.snapshot().labelChoice !== null")
    assert page.evaluate("() => OVSAM.snapshot().resultsFor") == "domestic cat"
    fresh = page.evaluate("() => OVSAM.snapshot().results[0].name")
    assert fresh != stale and field.input_value() == fresh
    # the vocabulary never travels to the page
    html = page.content()
    assert "Canis familiaris" not in html and "andiron" not in html and len(html) < 300_000
    assert page.errors == []
    page.close()


def test_image_list_done_marks_and_prefetch(browser, app, photos):
    ws = app.ws
    _, picked = photos
    page = open_page(browser, app.url)
    assert page.locator("#ov-list li").count() == 4
    assert page.locator("#ov-progress").inner_text() == "0 / 4"
    page.locator("#ov-done").check()
    page.wait_for_function("() => document.querySelector('#ov-progress').innerText === '1 / 4'")
    assert ws.store.done == {picked[0][0]["file_name"]}
    assert picked[0][0]["file_name"] in ws.store.images  # a done image is in the dataset, even empty
    # the next image was embedded in the background while we looked at this one
    nxt = picked[1][0]["file_name"]
    assert nxt in ws.wait_for_prefetch(timeout=60)
    assert ws.engine.is_cached(ws.load(nxt))
    n = page.evaluate("() => OVSAM_PERF.switches.length")
    page.locator("[data-act='next-todo']").click()
    wait_switches(page, n + 1)
    switch = page.evaluate("() => OVSAM_PERF.switches.at(-1)")
    assert switch["key"] == nxt and switch["cached"] is True
    # filter by name
    page.locator("#ov-filter").fill("coordinates")
    assert page.locator("#ov-list li").count() == 1
    assert page.errors == []
    page.close()


def accepted_layer(page) -> dict:
    """What the layer of accepted masks holds: its painted pixels and size, and the photo's size."""
    return page.evaluate(
        """() => { const S = OVSAM.snapshot({layers: true}), L = S.accepted_layer;
        return {painted: L.painted, size: L.size, photo: [S.dw, S.dh]}; }"""
    )


def test_a_saved_mask_is_not_drawn_on_the_next_photo(browser, app, photos, coco_gt):
    """Found by trying it: accept a mask, press D to a photo without annotations, and the last
    photo's masks must not be drawn over it."""
    _, picked = photos
    _, anns = picked[0]
    page = open_page(browser, app.url)
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, anns[0])))
    accept_with(page, "thing")
    assert accepted_layer(page)["painted"] > 0
    n = page.evaluate("() => OVSAM_PERF.switches.length")
    page.keyboard.press("d")
    wait_switches(page, n + 1)
    layer = accepted_layer(page)
    assert page.evaluate("() => OVSAM.snapshot().anns.length") == 0
    assert layer["painted"] == 0 and layer["size"] == layer["photo"]
    assert page.errors == []
    page.close()


def test_an_accept_whose_answer_is_lost_is_retried_and_stored_once(browser, app, photos, coco_gt):
    """The server stores the accept but its answer never reaches the page (the connection
    drops): the page sends it again with the same request id and is answered as the first
    time; one annotation, shown once. A 507 (disk full) is not retried and says so."""
    _, picked = photos
    _, anns = picked[0]
    page = open_page(browser, app.url)
    sent = []

    def drop_the_answer(route):
        sent.append(route.request.post_data_json)
        route.fetch()  # the server stores it...
        if len(sent) == 1:
            route.abort("connectionreset")  # ...and the page never hears back
        else:
            route.continue_()

    page.route("**/ovsam/api/accept", drop_the_answer)
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, anns[0])))
    accept_with(page, "thing")
    assert len(sent) == 2 and sent[0]["request_id"] == sent[1]["request_id"] and len(sent[0]["request_id"]) >= 32
    key = page.evaluate("() => OVSAM.snapshot().current")
    assert [a.label for a in app.ws.store.for_image(key)] == ["thing"]
    assert page.evaluate("() => OVSAM.snapshot().anns.length") == 1
    page.unroute("**/ovsam/api/accept")
    page.route(
        "**/ovsam/api/accept",
        lambda route: (sent.append(1), route.fulfill(status=507, json={"error": "disk full: nothing saved (x)"})),
    )
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, anns[1])))
    choose_label(page, "other")
    page.keyboard.press("Enter")
    wait_status(page, "disk full: nothing saved")
    assert len(sent) == 3 and page.evaluate("() => OVSAM.snapshot().pending") is not None  # the mask is kept
    assert page.errors == []
    page.close()


def test_two_tabs_do_not_mix_and_reload_and_restart_keep_everything(
    browser, labelled_engine, photos, coco_gt, tmp_path
):
    folder, picked = photos
    (info0, anns0), (info1, anns1), _ = picked
    out = tmp_path / "out"
    app = App(labelled_engine, folder, out)
    a = open_page(browser, app.url)
    b = open_page(browser, app.url)
    open_key(b, info1["file_name"])
    pa = farthest_interior_point(instance_mask(coco_gt, max(anns0, key=lambda x: x["area"])))
    pb = farthest_interior_point(instance_mask(coco_gt, max(anns1, key=lambda x: x["area"])))
    click_image(a, *pa)
    click_image(b, *pb)
    click_image(a, pa[0] + 3, pa[1] + 3)
    sa, sb = state(a), state(b)
    assert sa["current"] == info0["file_name"] and sb["current"] == info1["file_name"]
    assert len(sa["prompt"]["points"]) == 2 and len(sb["prompt"]["points"]) == 1
    accept_with(b, "from tab b")
    accept_with(a, "from tab a")
    assert [x.label for x in app.ws.store.for_image(info0["file_name"])] == ["from tab a"]
    assert [x.label for x in app.ws.store.for_image(info1["file_name"])] == ["from tab b"]
    b.locator("#ov-done").check()
    b.wait_for_function("() => document.querySelector('#ov-progress').innerText === '1 / 4'")
    # a reload comes back to the tab's image with everything accepted and the done mark
    b.reload()
    wait_switches(b, 1)
    s = state(b)
    assert s["current"] == info1["file_name"] and len(s["anns"]) == 1
    assert b.locator("#ov-done").is_checked()
    a.close()
    b.close()
    app.close()
    # an app restart over the same store: the last image worked on, its annotations, the marks
    again = App(labelled_engine, folder, out)
    try:
        c = open_page(browser, again.url)
        s = state(c)
        assert s["current"] == info1["file_name"] and len(s["anns"]) == 1  # tab b opened it last
        assert c.locator("#ov-progress").inner_text() == "1 / 4"
        assert AnnotationStore(again.ws.store.path).done == {info1["file_name"]}
        c.close()
    finally:
        again.close()


def test_corrupt_image_is_reported_and_skipped(browser, labelled_engine, photos, tmp_path):
    folder = photos[0]
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    app = App(labelled_engine, folder, tmp_path / "out")
    try:
        page = open_page(browser, app.url)
        page.locator("#ov-list li[data-key='b_corrupt.jpg']").click()
        wait_status(page, "corrupt")
        assert "b_corrupt.jpg" in status(page)
        # the page still works on the image it showed
        s = state(page)
        assert s["current"] != "b_corrupt.jpg"
        page.keyboard.press("d")
        wait_switches(page, 2)
        assert page.errors == []
        page.close()
    finally:
        app.close()


def test_find_all_then_reject_by_click_accept_one_and_the_rest(browser, app):
    ws = app.ws
    page = open_page(browser, app.url)
    key = state(page)["current"]
    page.select_option("#ov-method", "patches")  # one candidate per SAM patch
    page.keyboard.press("t")
    page.keyboard.type("person, dog")
    page.locator("#ov-find-threshold").fill("0")  # every region takes a named class (the CLIP is random)
    page.locator("#ov-find").press("Enter")
    page.wait_for_function(
        "() => { const f = OVSAM.snapshot().found; return f && f.items.length > 2; }", timeout=120_000
    )
    found = page.evaluate(
        "() => OVSAM.snapshot().found.items.map(f => ({index: f.index, label: f.label, area: f.area, rle: f.rle}))"
    )
    assert {f["label"] for f in found} <= {"person", "dog"} and "Found" in status(page)
    assert page.locator("#ov-found-list li").count() == len(found)
    # a click on the smallest candidate rejects it, and sends no prompt
    smallest = min(found, key=lambda f: f["area"])
    x, y = farthest_interior_point(decode_rle(smallest["rle"]))
    page.mouse.click(*screen_xy(page, x, y))
    page.wait_for_function("n => OVSAM.snapshot().found.items.length === n", arg=len(found) - 1)
    assert smallest["index"] not in page.evaluate("() => OVSAM.snapshot().found.items.map(f => f.index)")
    assert clicks_done(page) == 0 and not state(page)["pending"]
    # accept one from the list, then the rest with Enter
    first = page.locator("#ov-found-list li").first
    label = first.locator(".name").inner_text()
    first.locator(".ok").click()
    page.wait_for_function("() => OVSAM.snapshot().anns.length === 1")
    assert [a.label for a in ws.store.for_image(key)] == [label]
    page.keyboard.press("Enter")
    page.wait_for_function("() => { const S = OVSAM.snapshot(); return S.found === null && S.anns.length > 1; }")
    stored = ws.store.for_image(key)
    assert len(stored) == len(found) - 1 and {a.label for a in stored} <= {"person", "dog"}
    assert all(a.score is not None for a in stored)
    # a second find reuses the patches; Esc rejects every candidate, nothing is stored
    page.locator("#ov-find-btn").click()
    page.wait_for_function("() => OVSAM.snapshot().found !== null", timeout=60_000)
    assert "patches reused" in status(page)
    page.keyboard.press("Escape")
    page.wait_for_function("() => OVSAM.snapshot().found === null")
    assert len(ws.store.for_image(key)) == len(found) - 1 and not page.errors


def test_the_mask_comes_before_the_labels(browser, sam_model, tiny_clip_factory, photos, coco_gt, tmp_path):
    """A photo whose CLIP pass is still running (held by the test): the mask is painted first,
    "Labels coming" shows, a typed label is accepted at once, Enter with nothing typed accepts
    with the best label when it arrives; a fallback note stays in view."""
    import threading

    import torch

    from annotator.engine import Engine
    from annotator.vocabulary import load_vocabulary

    clf = tiny_clip_factory()
    vocab = load_vocabulary("imagenet21k")
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(len(vocab), clf.model.text_projection.shape[1]), dim=-1)
    engine = Engine(sam_model, clf, vocab, text_embeddings=text)
    engine.notes.append("openvino bf16 output of sam-TinyViT differs from torch; running in f32 instead")
    release = threading.Event()
    real_dense = clf.dense_features
    clf.dense_features = lambda img: (release.wait(60), real_dense(img))[1]
    folder, picked = photos
    info, anns = picked[0]
    served = App(engine, folder, tmp_path / "out")
    try:
        page = open_page(browser, served.url)  # the photo is shown: SAM's encoder is done, CLIP is not
        assert "sam-TinyViT differs" in page.locator("#ov-notice").inner_text()
        px, py = farthest_interior_point(instance_mask(coco_gt, anns[0]))
        sx, sy = screen_xy(page, px, py)
        page.mouse.click(sx, sy)
        page.wait_for_function("() => OVSAM_PERF.clicks.length === 1", timeout=30_000)
        s = state(page)
        assert s["pending"] and s["suggestions"] == [] and s["label"] == ""
        assert page.evaluate("() => OVSAM.snapshot().labelsPending")
        assert "Labels coming" in page.locator("#ov-suggestions").inner_text()
        accept_with(page, "typed before the labels")  # Accept works before the labels arrive
        assert [a.label for a in served.ws.store.for_image(info["file_name"])] == ["typed before the labels"]

        page.mouse.click(sx, sy)
        page.wait_for_function("() => OVSAM_PERF.clicks.length === 2 && OVSAM.snapshot().labelsPending", timeout=30_000)
        page.keyboard.press("Enter")  # nothing typed: accepted with the best label once it is here
        wait_status(page, "once the labels are here")
        assert len(served.ws.store.for_image(info["file_name"])) == 1
        release.set()
        page.wait_for_function("() => OVSAM.snapshot().anns.length === 2", timeout=30_000)
        saved = served.ws.store.for_image(info["file_name"])[-1]
        assert saved.label in vocab.names and saved.score is not None

        click_image(page, px, py)  # CLIP is done: the labels come with the mask
        assert len(state(page)["suggestions"]) == 5 and state(page)["label"] == state(page)["suggestions"][0]
        assert page.errors == []
        page.close()
    finally:
        clf.dense_features = real_dense
        served.close()
