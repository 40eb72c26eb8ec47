"""Undo and redo of every change in the store's history (issue 28, item 6), and the hand edits
of a mask (brush, eraser, polygons, outline moves) on real COCO masks: each step undone leaves
the store's annotations, categories and images, and its COCO export, byte for byte as they
were; a reopened store (a restart) keeps the history; a new change clears the redo steps."""

from __future__ import annotations

import itertools
import json
import uuid

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import text

from annotator.formats.coco import to_coco
from annotator.instances import Instances, Source
from annotator.mask_edit import apply_edit, move_outline, outline_rings, polygon_mask, stroke_mask
from annotator.masks import decode_rle
from annotator.store import AnnotationStore

from .conftest import instance_mask


def _photo_masks(coco_gt, n: int = 3):
    """The first photo of the dev set with ``n`` or more instances: its file name, size, masks."""
    for img_id in sorted(coco_gt.imgs):
        anns = [a for a in coco_gt.imgToAnns[img_id] if not a["iscrowd"]]
        if len(anns) >= n:
            info = coco_gt.imgs[img_id]
            return info["file_name"], (info["height"], info["width"]), [instance_mask(coco_gt, a) for a in anns[:n]]
    raise AssertionError("no photo with enough instances")


def _state(store: AnnotationStore) -> str:
    """Everything a user sees of the store: annotations, categories, images, the COCO export
    (but its ``info``, which holds the time of export)."""
    coco = to_coco(store)
    del coco["info"]
    return json.dumps(
        {
            "annotations": [a.__dict__ for a in store.annotations.values()],
            "categories": store.categories,
            "images": [i.__dict__ for i in store.images.values()],
            "coco": coco,
        },
        sort_keys=True,
        default=str,
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_change_undone_and_redone_byte_for_byte(kind, request, tmp_path, coco_gt):
    database = tmp_path / "h.annotations.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    dataset = f"h-{uuid.uuid4().hex[:8]}"
    key, _size, (m1, m2, m3) = _photo_masks(coco_gt)
    store = AnnotationStore(database, dataset)
    y, x = np.argwhere(m1)[len(np.argwhere(m1)) // 2]  # a pixel of the first mask
    states = [_state(store)]
    changes = [
        lambda: store.add(key, m1, "person", score=0.8, prompt={"points": [[5, 5]], "labels": [1]}),
        lambda: store.add_instances(
            key, Instances(np.stack([m2, m3]), class_names=["dog", "dog"], source=Source.SAMCP)
        ),
        lambda: store.relabel([store.for_image(key)[1].id], "zebra"),  # a new category
        lambda: store.merge([a.id for a in store.for_image(key)[1:]], "dog"),
        lambda: store.edit(store.for_image(key)[0].id, lambda m: apply_edit(m, "erase", [[x, y], [x + 20, y + 5]], 6)),
        lambda: store.subtract([a.id for a in store.for_image(key)]),
        lambda: store.delete([store.for_image(key)[-1].id]),
    ]
    for change in changes:
        change()
        states.append(_state(store))
    assert store.history_depth(key) == (len(changes), 0)
    store.close()
    store = AnnotationStore(database, dataset)  # a restart: the history is in the database
    for i in range(len(changes), 0, -1):
        step = store.undo(key)
        assert step is not None and _state(store) == states[i - 1], f"undo of change {i}"
        assert (step.undoable, step.redoable) == (i - 1, len(changes) - i + 1)
    assert store.undo(key) is None  # nothing left to undo
    assert len(store.images) == 0 and store.categories == {}  # the first accept's image row went too
    for i in range(1, len(changes) + 1):
        step = store.redo(key)
        assert step is not None and _state(store) == states[i], f"redo of change {i}"
    assert store.redo(key) is None
    store.undo(key)
    store.undo(key)
    store.add(key, m3, "cat")  # a new change: the redo branch is gone
    assert store.history_depth(key) == (len(changes) - 1, 0)
    assert store.redo(key) is None


def test_undo_is_per_image_idempotent_and_refused_when_changed_outside(tmp_path, coco_gt):
    key, _size, (m1, m2, _) = _photo_masks(coco_gt)
    store = AnnotationStore(tmp_path / "h.annotations.db")
    a = store.add(key, m1, "person")
    store.add("other.jpg", m2, "dog")
    first = store.undo(key, request_id="u-1")
    again = store.undo(key, request_id="u-1")  # a retry: answered as the first time, nothing more undone
    assert first == again and first.removed == [a.id] and first.kind == "add"
    assert [x.image for x in store.annotations.values()] == ["other.jpg"]
    with pytest.raises(ValueError, match="used for a undo"):
        store.redo(key, request_id="u-1")
    store.redo(key)
    # a bulk run keeps no history; a change it made since blocks the undo that would clobber it
    b = store.add(key, m2, "dog")
    store.add_instances(key, Instances(m1[None], class_names=["bulk"]), history=False)
    store.delete([b.id])
    store.add_instances("x.jpg", Instances(m1[None], class_names=["bulk"]), history=False)
    assert store.history_depth("x.jpg") == (0, 0)
    store.undo(key)  # the delete: b is back
    assert b.id in store.annotations
    with store.engine.begin() as conn:  # a change behind the history's back (another program)
        conn.execute(text("UPDATE annotations SET label = 'moved' WHERE id = :i"), {"i": b.id})
    with pytest.raises(ValueError, match=f"annotation {b.id} was changed since"):
        store.undo(key)  # would delete b, as it was added: refused, nothing changed
    assert store.annotations[b.id].label == "moved"


def test_brush_eraser_and_polygons_on_a_coco_mask(coco_gt):
    _, (h, w), (mask, _, _) = _photo_masks(coco_gt)
    path = [[40.3, 60.7], [90.1, 75.2], [130.6, 140.9]]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    within = np.zeros((h, w), bool)
    for (ax, ay), (bx, by) in itertools.pairwise(path):  # the rule, written again plainly
        d = np.array([bx - ax, by - ay])
        s = np.clip(((xx - ax) * d[0] + (yy - ay) * d[1]) / (d @ d), 0, 1)
        within |= np.hypot(xx - ax - s * d[0], yy - ay - s * d[1]) <= 7.5
    assert np.array_equal(stroke_mask((h, w), path, 7.5), within)
    painted, erased = apply_edit(mask, "brush", path, 7.5), apply_edit(mask, "erase", path, 7.5)
    assert np.array_equal(painted ^ mask, within & ~mask) and np.array_equal(erased ^ mask, within & mask)
    square = [[100, 100], [140, 100], [140, 130], [100, 130]]
    assert polygon_mask((h, w), square).sum() == 40 * 30  # the pixels whose centre is inside
    holed = apply_edit(
        painted | polygon_mask((h, w), [[90, 90], [150, 90], [150, 140], [90, 140]]), "polygon_cut", square
    )
    rings = outline_rings(holed)
    assert any(r.hole for r in rings)
    coco = mask_utils.encode(np.asfortranarray(holed.astype(np.uint8)))
    assert not mask_utils.decode(coco)[115, 120] and mask_utils.decode(coco)[95, 95]  # the hole survives RLE
    # a vertex of the hole dragged outwards: only the pixels between the old and new ring change
    hole = next(r for r in rings if r.hole)
    moved = hole.points.copy()
    moved[0] += [-8, -6]
    edited = move_outline(holed, hole.points, moved, hole=True)
    swept = polygon_mask((h, w), moved) ^ polygon_mask((h, w), hole.points)
    assert (edited ^ holed).any() and not ((edited ^ holed) & ~swept).any()
    with pytest.raises(ValueError, match="radius"):
        stroke_mask((h, w), path, 0)
    with pytest.raises(ValueError, match="3 or more"):
        polygon_mask((h, w), [[1, 1], [2, 2]])


def test_a_redo_whose_category_id_was_taken_meanwhile_gets_another(tmp_path, coco_gt):
    key, _, (m1, m2, _) = _photo_masks(coco_gt)
    store = AnnotationStore(tmp_path / "h.annotations.db")
    a = store.add(key, m1, "zebra")
    store.undo(key)  # "zebra" goes with it; its id is free
    store.add("other.jpg", m2, "yak")  # takes that id (a new name: the next free one)
    assert store.category_id("yak") == a.category_id
    store.redo(key)  # the other image's change did not clear this image's redo
    (back,) = store.for_image(key)
    assert back.label == "zebra" and back.category_id != a.category_id == store.category_id("yak")
    assert store.categories["zebra"] == back.category_id
    store.undo(key)  # the step knows the id its row has now
    assert store.for_image(key) == [] and "zebra" not in store.categories


def test_an_edit_is_stored_in_place_and_undone(tmp_path, coco_gt):
    key, _, (m1, _, _) = _photo_masks(coco_gt)
    store = AnnotationStore(tmp_path / "h.annotations.db")
    a = store.add(key, m1, "person", score=0.9)
    new = apply_edit(m1, "brush", [[10, 10], [60, 40]], 5)
    b = store.edit(a.id, lambda m: m | new, request_id="e-1")
    assert b.id == a.id and b.label == "person" and b.score == 0.9 and b.prompt["edited"]
    assert np.array_equal(decode_rle(b.rle), new) and b.area == new.sum()
    assert store.edit(a.id, lambda m: m | new, request_id="e-1") == b  # a retry
    assert store.edit(a.id, lambda m: m) == b and store.history_depth(key) == (2, 0)  # no change, no step
    with pytest.raises(ValueError, match="delete it instead"):
        store.edit(a.id, np.zeros_like)
    store.undo(key)
    assert store.annotations[a.id] == a
