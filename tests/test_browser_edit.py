"""Hand edits and undo in real Chromium (issue 28): the brush and the eraser change exactly the
pixels under the brush (±1 px) at zoom 1 and zoom 4; a polygon adds a region and another cuts
a hole the COCO export keeps; a vertex drag moves the outline; every action undone and redone
leaves the store as it was, byte for byte, and a reload keeps the history."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from annotator.evaluation import farthest_interior_point
from annotator.formats.coco import to_coco
from annotator.masks import decode_rle

from .conftest import instance_mask
from .test_browser import (  # the fixtures browser, labelled_engine, photos, app too
    accept_with,
    app,
    browser,
    choose_label,
    click_image,
    drag_box,
    inside_only,
    labelled_engine,
    open_page,
    photos,
    screen_xy,
    state,
    wait_status,
)


def covered(shape, path, radius) -> np.ndarray:
    """The pixels whose centre lies within ``radius`` of the polyline ``path`` (original pixels),
    computed plainly here, apart from the code under test."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros(shape, bool)
    for (ax, ay), (bx, by) in itertools.pairwise(path):
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        out |= np.hypot(xx - ax - t * dx, yy - ay - t * dy) <= radius
    return out


def within_one_pixel(got: np.ndarray, expected: np.ndarray) -> bool:
    """Every pixel where ``got`` and ``expected`` differ is on ``expected``'s boundary (±1 px)."""
    k = np.ones((3, 3), np.uint8)
    e = expected.astype(np.uint8)
    band = cv2.dilate(e, k).astype(bool) & ~cv2.erode(e, k).astype(bool)
    return not ((got ^ expected) & ~band).any()


def zoom_to(page, z: float, x: float, y: float) -> None:
    """One wheel event over original pixel (x, y) that brings the view's zoom to ``z`` (the
    pixel stays under the pointer)."""
    s = state(page)
    page.mouse.move(*screen_xy(page, x, y))
    page.mouse.wheel(0, -math.log(z / s["z"]) / 0.0015)
    page.wait_for_function("z => Math.abs(OVSAM.snapshot().z - z) < 1e-6", arg=z)


def stroke(page, path, modifiers=()) -> list[tuple[float, float]]:
    """Drag along ``path`` (original pixels) with ≥ 100 pointer moves; returns the original
    pixels of every point the pointer passed (the path as the page saw it)."""
    screens = [screen_xy(page, x, y) for x, y in path]
    for m in modifiers:
        page.keyboard.down(m)
    page.mouse.move(*screens[0])
    page.mouse.down()
    for b in screens[1:]:
        page.mouse.move(*b, steps=100)
    page.mouse.up()
    for m in modifiers:
        page.keyboard.up(m)
    return list(path)


def test_brush_and_eraser_change_the_pixels_under_the_brush_at_zoom_1_and_4(browser, app, photos, coco_gt):
    ws = app.ws
    _, picked = photos
    info, anns = picked[0]
    key = info["file_name"]
    big = max(anns, key=lambda a: a["area"])
    page = open_page(browser, app.url)
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, big)))
    accept_with(page, "thing")
    (ann,) = ws.store.for_image(key)
    page.keyboard.press("v")
    page.mouse.click(*screen_xy(page, *inside_only(ws, ann.id)))
    page.keyboard.press("b")
    assert state(page)["tool"] == "brush"
    page.keyboard.press("]")  # 8 → 10 px
    radius = page.evaluate("() => OVSAM.snapshot().brushRadius")
    assert radius == 10
    bx, by, _, bh = ann.bbox
    h, w = info["height"], info["width"]
    for n, z in enumerate((1.0, 4.0)):
        cx, cy = bx + 8, by + bh / 2  # near the mask's left edge
        zoom_to(page, z, cx, cy)
        # the cursor is the brush's size on screen
        page.mouse.move(*screen_xy(page, cx, cy))
        width = page.evaluate("() => document.querySelector('#ov-brush-cursor').getBoundingClientRect().width")
        assert abs(width - 2 * radius * z) < 1
        before = decode_rle(ws.store.annotations[ann.id].rle)
        # paint across the mask's edge, out into the background (at zoom 4 the path stays on screen)
        span = 40 if z == 1 else 25
        path = [(cx - span, cy + 3 + 25 * n), (cx, cy - 4 + 25 * n), (cx + span, cy + 6 + 25 * n)]
        stroke(page, path)
        wait_status(page, f"Painted on annotation {ann.id}")
        after = decode_rle(ws.store.annotations[ann.id].rle)
        assert (after & ~before).sum() > 50, "the stroke added nothing"
        assert within_one_pixel(after, before | covered((h, w), path, radius)), f"brush at zoom {z}"
        # Ctrl + drag erases
        path = [(cx, cy - 8 + 25 * n), (cx + span, cy + 2 + 25 * n)]
        stroke(page, path, modifiers=["Control"])
        wait_status(page, f"Erased from annotation {ann.id}")
        erased = decode_rle(ws.store.annotations[ann.id].rle)
        assert (after & ~erased).sum() > 50
        assert within_one_pixel(erased, after & ~covered((h, w), path, radius)), f"eraser at zoom {z}"
        assert ws.store.history_depth(key) == (1 + 2 * (n + 1), 0)  # a stroke is one undo step
    moves = page.evaluate("() => OVSAM_PERF.brush.length")
    assert moves >= 4 * 100
    assert page.errors == []
    page.close()


def test_polygon_adds_cuts_a_hole_the_export_keeps_and_a_vertex_drag_moves_the_outline(browser, app, photos):
    ws = app.ws
    _, picked = photos
    info, _ = picked[1]
    key = info["file_name"]
    page = open_page(browser, app.url)
    page.locator(f"#ov-list li[data-key='{key}']").click()
    page.wait_for_function("k => OVSAM.snapshot().current === k", arg=key)
    page.keyboard.press("p")
    square = [(100, 100), (260, 100), (260, 220), (100, 220)]
    for x, y in square:
        page.mouse.click(*screen_xy(page, x, y))
    assert len(page.evaluate("() => OVSAM.snapshot().polygon")) == 4
    page.keyboard.press("Enter")  # adds: a mask drawn by hand, pending
    page.wait_for_function("() => OVSAM.snapshot().pending")
    accept_with(page, "sign")
    (ann,) = ws.store.for_image(key)
    h, w = info["height"], info["width"]
    expected = np.zeros((h, w), bool)
    expected[100:220, 100:260] = True  # the pixels whose centre is inside
    assert ann.source == "manual" and within_one_pixel(decode_rle(ann.rle), expected)
    # a hole: select it, draw a polygon inside, Shift + Enter cuts it out
    page.keyboard.press("v")
    page.mouse.click(*screen_xy(page, 110, 110))
    page.keyboard.press("p")
    hole = [(150, 140), (210, 140), (210, 180), (150, 180)]
    for x, y in hole:
        page.mouse.click(*screen_xy(page, x, y))
    page.keyboard.press("Shift+Enter")
    wait_status(page, f"Polygon cut out of annotation {ann.id}")
    holed = decode_rle(ws.store.annotations[ann.id].rle)
    expected[140:180, 150:210] = False
    assert within_one_pixel(holed, expected) and not holed[160, 180]
    coco = to_coco(ws.store)
    (seg,) = [a["segmentation"] for a in coco["annotations"] if a["id"] == ann.id]
    read = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)
    assert np.array_equal(read, holed)  # pycocotools reads the hole back
    # the outline's vertices: drag the outer ring's corner (259.5, 219.5) out by 30 px
    page.wait_for_function(
        "id => OVSAM.snapshot().outline?.id === id && OVSAM.snapshot().outline.rings.some(r => r.hole)", arg=ann.id
    )
    rings = page.evaluate("() => OVSAM.snapshot().outline.rings")
    assert sorted(r["hole"] for r in rings) == [False, True]
    outer = next(r for r in rings if not r["hole"])
    corner = max(outer["points"], key=lambda p: p[0] + p[1])
    page.mouse.move(*screen_xy(page, *corner))
    page.mouse.down()
    page.mouse.move(*screen_xy(page, corner[0] + 30, corner[1] + 30), steps=10)
    page.mouse.up()
    wait_status(page, f"Outline of annotation {ann.id} changed")
    moved = decode_rle(ws.store.annotations[ann.id].rle)
    # Enter with nothing to close does not relabel by surprise; Backspace away from a vertex deletes nothing
    page.keyboard.press("Enter")
    wait_status(page, "Nothing to accept")
    page.mouse.move(*screen_xy(page, 420, 320))
    page.keyboard.press("Backspace")
    wait_status(page, "Backspace removes")
    assert ws.store.annotations[ann.id].label == "sign" and ws.store.history_depth(key) == (3, 0)
    grown = moved & ~holed
    assert grown.sum() > 1000 and not (holed & ~moved).any()  # only pixels outside were added
    assert grown[230, 270] and not moved[160, 180]  # the corner moved out; the hole is still there
    # press the top edge between its vertices and drag: a vertex is added there, the edge bends up
    page.mouse.move(*screen_xy(page, 180, 99.5))
    page.mouse.down()
    page.mouse.move(*screen_xy(page, 180, 70), steps=10)
    page.mouse.up()
    page.wait_for_function("n => OVSAM.snapshot().history.undoable === n", arg=4)
    bent = decode_rle(ws.store.annotations[ann.id].rle)
    assert bent[85, 180] and not moved[85, 180] and not (moved & ~bent).any()
    outer = next(r for r in page.evaluate("() => OVSAM.snapshot().outline.rings") if not r["hole"])
    assert len(outer["points"]) == 5
    # Alt + click deletes the dragged corner again: the corner is cut back to the straight edge
    page.keyboard.down("Alt")
    page.mouse.click(*screen_xy(page, corner[0] + 30, corner[1] + 30))
    page.keyboard.up("Alt")
    page.wait_for_function("n => OVSAM.snapshot().history.undoable === n", arg=5)
    cut = decode_rle(ws.store.annotations[ann.id].rle)
    assert not cut[230, 270] and cut[85, 180] and not cut[160, 180]
    # a polygon half drawn: Backspace takes back its last vertex, Esc drops it, nothing is sent
    page.keyboard.press("Escape")  # the selection too: the next polygon starts a new mask
    for x, y in [(400, 300), (450, 300), (450, 350)]:
        page.mouse.click(*screen_xy(page, x, y))
    page.keyboard.press("Backspace")
    assert len(page.evaluate("() => OVSAM.snapshot().polygon")) == 2
    page.keyboard.press("Escape")
    assert page.evaluate("() => OVSAM.snapshot().polygon") is None
    assert np.array_equal(decode_rle(ws.store.annotations[ann.id].rle), cut)
    assert page.errors == []
    page.close()


def _store_state(ws) -> str:
    coco = to_coco(ws.store)
    del coco["info"]  # the time of export
    return repr((sorted((a.id, a.label, a.rle["counts"], a.area) for a in ws.store.annotations.values()), coco))


def test_every_action_undone_and_redone_leaves_the_store_byte_for_byte_and_a_reload_keeps_it(
    browser, app, photos, coco_gt
):
    ws = app.ws
    _, picked = photos
    info, anns = picked[0]
    key = info["file_name"]
    a1, a2 = sorted(anns, key=lambda a: -a["area"])[:2]
    page = open_page(browser, app.url)
    states = [_store_state(ws)]

    def saved(n):
        page.wait_for_function("n => OVSAM.snapshot().history.undoable === n", arg=n, timeout=60_000)
        states.append(_store_state(ws))

    click_image(page, *farthest_interior_point(instance_mask(coco_gt, a1)))
    accept_with(page, "one")
    saved(1)
    x, y, w, h = a2["bbox"]
    drag_box(page, x, y, x + w, y + h)
    accept_with(page, "two")
    saved(2)
    first, second = (a.id for a in ws.store.for_image(key))
    page.keyboard.press("v")
    page.mouse.click(*screen_xy(page, *inside_only(ws, first)))
    choose_label(page, "renamed")
    page.locator("#ov-relabel").click()
    saved(3)
    page.keyboard.press("b")
    stroke(page, [(x + w / 2 - 15, y + h / 2), (x + w / 2 + 15, y + h / 2)])  # on `first` (selected)
    saved(4)
    page.keyboard.press("v")
    page.mouse.click(*screen_xy(page, *inside_only(ws, first)))
    page.keyboard.down("Shift")
    page.mouse.click(*screen_xy(page, *inside_only(ws, second)))
    page.keyboard.up("Shift")
    choose_label(page, "merged")
    page.keyboard.press("m")
    saved(5)
    page.keyboard.press("Delete")
    saved(6)
    page.keyboard.press("e")  # everything
    saved(7)
    assert len(states) == 8 and len(set(states)) == 8
    for i in range(7, 0, -1):
        page.keyboard.press("Control+z")
        page.wait_for_function("n => OVSAM.snapshot().history.undoable === n", arg=i - 1, timeout=30_000)
        assert _store_state(ws) == states[i - 1], f"undo of step {i}"
        assert sorted(state(page)["anns"]) == sorted(a.id for a in ws.store.for_image(key))
    page.reload()  # the history is the store's: a reload (or a restart) keeps it
    page.wait_for_function("() => window.OVSAM?.snapshot()?.history.redoable === 7", timeout=90_000)
    for i in range(1, 8):
        page.keyboard.press("Control+Shift+z" if i % 2 else "Control+y")
        page.wait_for_function("n => OVSAM.snapshot().history.undoable === n", arg=i, timeout=30_000)
        assert _store_state(ws) == states[i], f"redo of step {i}"
    assert sorted(state(page)["anns"]) == sorted(a.id for a in ws.store.for_image(key))
    # a new action clears the redo branch
    page.keyboard.press("Control+z")
    page.wait_for_function("() => OVSAM.snapshot().history.redoable === 1")
    page.keyboard.press("n")
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, a1)))
    accept_with(page, "new")
    page.wait_for_function("() => OVSAM.snapshot().history.redoable === 0")
    assert ws.store.history_depth(key) == (7, 0)
    assert page.errors == []
    page.close()


def overlay_painted(page) -> int:
    return page.evaluate(
        """() => { const c = document.querySelector('#ov-overlay'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"""
    )


def test_a_refused_stroke_leaves_no_preview_and_prompt_steps_redo(browser, app, photos, coco_gt):
    _, picked = photos
    info, anns = picked[0]
    big = max(anns, key=lambda a: a["area"])
    x, y = farthest_interior_point(instance_mask(coco_gt, big))
    page = open_page(browser, app.url)
    page.locator("#ov-tool-eraser").click()  # nothing pending, nothing selected: nothing to erase
    stroke(page, [(x - 10, y), (x + 10, y)])
    wait_status(page, "nothing drawn")
    assert overlay_painted(page) == 0  # the preview is gone with the refusal
    page.keyboard.press("n")
    click_image(page, x, y)
    clicked = page.evaluate("() => OVSAM.snapshot().pending") and state(page)
    page.keyboard.press("b")
    bx, by, bw, bh = big["bbox"]
    stroke(page, [(bx + bw - 10, by + bh / 2), (min(bx + bw + 25, info["width"] - 1), by + bh / 2)])  # out of the mask
    wait_status(page, "edited by hand")
    painted = page.locator("#ov-status").inner_text().split(",")[0]  # "Mask: N px"
    page.keyboard.press("Control+z")
    page.wait_for_function("() => OVSAM.snapshot().pending && !document.querySelector('#ov-redo').disabled")
    assert not page.locator("#ov-status").inner_text().startswith(painted + ",")
    page.keyboard.press("Control+y")  # the stroke comes back
    page.wait_for_function("t => document.querySelector('#ov-status').innerText.startsWith(t + ',')", arg=painted)
    assert clicked and overlay_painted(page) == 0
    assert page.errors == []
    page.close()
