"""The project's classes in the store (issue 29): counts per class, rename and merge in one
transaction, undone and redone byte for byte through the dataset-wide class history (across a
restart, on SQLite and PostgreSQL), refused when the rows changed since; a declared class list
(``--classes FILE``) with the file's ids, refusing every other label."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from annotator.formats.coco import to_coco
from annotator.store import AnnotationStore

from .conftest import instance_mask


def _photos(coco_gt, n_images: int = 2, n: int = 3):
    """The first ``n_images`` photos of the dev set with ``n`` or more instances: key, masks."""
    out = []
    for img_id in sorted(coco_gt.imgs):
        anns = [a for a in coco_gt.imgToAnns[img_id] if not a["iscrowd"]]
        if len(anns) >= n:
            out.append((coco_gt.imgs[img_id]["file_name"], [instance_mask(coco_gt, a) for a in anns[:n]]))
        if len(out) == n_images:
            return out
    raise AssertionError("not enough photos with instances")


def _state(store: AnnotationStore, history: bool = True) -> str:
    """Everything of the store a user sees: annotations, categories, images, meta, the COCO
    export (but its ``info``, which holds the time of export), the image histories' depths."""
    coco = to_coco(store)
    del coco["info"]
    return json.dumps(
        {
            "annotations": [a.__dict__ for a in store.annotations.values()],
            "categories": store.categories,
            "images": [i.__dict__ for i in store.images.values()],
            "meta": dict(store.meta),
            "coco": coco,
            "history": {k: store.history_depth(k) for k in store.images} if history else None,
        },
        sort_keys=True,
        default=str,
    )


def _store(kind, request, tmp_path) -> tuple[object, str]:
    database = tmp_path / "c.annotations.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    return database, f"c-{uuid.uuid4().hex[:8]}"


def _fill(store: AnnotationStore, photos) -> None:
    (a, (a1, a2, a3)), (b, (b1, b2, _b3)) = photos
    store.add(a, a1, "dog", score=0.7)
    store.add(a, a2, "dog")
    store.add(a, a3, "person", score=0.9)
    store.add(b, b1, "cat")
    store.add(b, b2, "person")
    store.meta["classes"] = ["dog", "cat", "bird"]  # declared (annotate --classes): exported even unused


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_rename_and_merge_undone_and_redone_byte_for_byte(kind, request, tmp_path, coco_gt):
    database, dataset = _store(kind, request, tmp_path)
    photos = _photos(coco_gt)
    store = AnnotationStore(database, dataset)
    _fill(store, photos)
    ids = store.categories
    per_image = {k: store.history_depth(k) for k in store.images}
    states = [_state(store)]

    renamed = store.rename_category("dog", "canine")
    assert renamed.moves == [["dog", "canine"]] and renamed.images == [photos[0][0]]
    assert store.categories["canine"] == ids["dog"] and "dog" not in store.categories  # the id stays
    assert [a.label for a in store.for_image(photos[0][0])] == ["canine", "canine", "person"]
    assert [a.score for a in store.for_image(photos[0][0])] == [0.7, None, 0.9]  # a rename keeps the scores
    assert store.meta["classes"] == ["canine", "cat", "bird"]
    assert {k: store.history_depth(k) for k in store.images} == per_image  # not a step of any image
    assert store.classes_history_depth() == (1, 0)
    states.append(_state(store))

    merged = store.merge_categories(["canine", "cat"], "person")
    assert merged.moves == [["canine", "person"], ["cat", "person"]]
    assert sorted(store.categories) == ["bird", "person"]  # "bird": declared, so exported
    assert store.categories["person"] == ids["person"]
    assert {a.category_id for a in store.annotations.values()} == {ids["person"]}
    assert store.meta["classes"] == ["person", "bird"]
    counts = {c.name: (c.id, c.count) for c in store.category_counts()}
    assert counts == {"person": (ids["person"], 5), "bird": (store.categories["bird"], 0)}
    states.append(_state(store))

    store.close()
    store = AnnotationStore(database, dataset)  # a restart: the class history is in the database
    assert store.undo_classes().moves == [["person", "cat"], ["person", "canine"]]
    assert _state(store) == states[1]
    assert store.undo_classes().moves == [["canine", "dog"]]
    assert _state(store) == states[0]
    assert store.undo_classes() is None and store.classes_history_depth() == (0, 2)
    assert store.redo_classes() is not None and _state(store) == states[1]
    assert store.redo_classes() is not None and _state(store) == states[2]
    assert store.redo_classes() is None
    store.undo_classes(), store.undo_classes()
    assert _state(store) == states[0]
    # a new class change clears what is left to redo
    store.rename_category("cat", "kitty")
    assert store.classes_history_depth() == (1, 0)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_refusals_change_nothing(kind, request, tmp_path, coco_gt):
    database, dataset = _store(kind, request, tmp_path)
    photos = _photos(coco_gt)
    store = AnnotationStore(database, dataset)
    _fill(store, photos)
    before = _state(store)
    with pytest.raises(KeyError, match="no class 'wolf'"):
        store.rename_category("wolf", "dog")
    with pytest.raises(ValueError, match="needs a label"):
        store.rename_category("dog", "   ")
    with pytest.raises(ValueError, match="already that class"):
        store.rename_category("dog", " dog ")
    with pytest.raises(KeyError, match="no class 'wolf'"):
        store.merge_categories(["dog", "wolf"], "cat")
    with pytest.raises(ValueError, match="control character"):
        store.merge_categories(["dog", "cat"], "a\x07b")
    assert _state(store) == before and store.classes_history_depth() == (0, 0)

    a, b = photos[0][0], photos[1][0]
    store.rename_category("dog", "canine")
    store.undo(a), store.redo(a)  # the image's last step (a person) is not the rename's
    # an earlier step holds the old label: refused until the rename is undone
    store.undo(a)
    with pytest.raises(ValueError, match="class rename"):
        store.undo(a)
    store.redo(a)
    store.add(b, photos[1][1][2], "canine")  # the class given to a new annotation since
    renamed = _state(store)
    with pytest.raises(ValueError, match="labelled 'canine' since"):
        store.undo_classes()
    assert _state(store) == renamed
    store.undo(b)  # that annotation undone: the rename can be undone again
    store.undo_classes()
    assert _state(store, history=False) == json.dumps({**json.loads(before), "history": None}, sort_keys=True)
    store.undo(a), store.undo(a)  # and the image's own history works again
    store.redo(a), store.redo(a)

    store.rename_category("dog", "canine")
    store.relabel([store.for_image(a)[0].id], "person")  # one of its annotations relabelled since
    relabelled = _state(store)
    with pytest.raises(ValueError, match="deleted or relabelled since"):
        store.undo_classes()
    assert _state(store) == relabelled
    store.undo(a)
    store.undo_classes()
    store.add(b, photos[1][1][2], "canine")  # the name taken again meanwhile: redo refused
    with pytest.raises(ValueError, match="class 'canine' again"):
        store.redo_classes()
    with pytest.raises(ValueError, match="name the image"):
        store.undo("")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_rename_with_request_id_is_stored_once(kind, request, tmp_path, coco_gt):
    database, dataset = _store(kind, request, tmp_path)
    store = AnnotationStore(database, dataset)
    _fill(store, _photos(coco_gt))
    first = store.rename_category("dog", "canine", request_id="r-1")
    again = store.rename_category("dog", "canine", request_id="r-1")  # a retry: the first answer
    assert again.moves == first.moves and again.ids == first.ids
    assert store.classes_history_depth() == (1, 0)
    undone = store.undo_classes(request_id="u-1")
    assert store.undo_classes(request_id="u-1").moves == undone.moves  # not a second undo
    assert store.classes_history_depth() == (0, 1)


def test_category_counts_is_one_group_by(tmp_path, coco_gt):
    store = AnnotationStore(tmp_path / "n.db", "n")
    _fill(store, _photos(coco_gt))
    store.category_id("unused")
    statements = []
    from sqlalchemy import event

    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    counts = store.category_counts()
    assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == [statements[-1]]
    assert "GROUP BY" in statements[-1]
    by_name = {c.name: c.count for c in counts}
    expected = {}
    for ann in store.annotations.values():
        expected[ann.label] = expected.get(ann.label, 0) + 1
    assert by_name == {**expected, "unused": 0}
    assert [c.id for c in counts] == sorted(store.categories.values())
    with store.engine.connect() as conn:  # the same figures straight from the table
        rows = conn.execute(text("SELECT label, count(*) FROM annotations GROUP BY label")).all()
    assert dict(rows) == expected


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_declared_class_list(kind, request, tmp_path, coco_gt):
    database, dataset = _store(kind, request, tmp_path)
    (key, (m1, m2, _m3)), _ = _photos(coco_gt)
    store = AnnotationStore(database, dataset)
    store.add(key, m1, "cat")  # made before the list: id 1
    cat = store.categories["cat"]
    warnings = store.declare_classes({"dog": 7, "cat": 3, "bird": cat})
    assert store.categories["dog"] == 7  # the file's id
    assert store.categories["cat"] == cat and "keeps id" in warnings[0]  # the store's id stays
    assert store.categories["bird"] == 8 and "gets id 8" in warnings[1]  # its id was cat's
    assert {c.name: c.count for c in store.category_counts()} == {"cat": 1, "dog": 0, "bird": 0}
    before = _state(store)
    with pytest.raises(ValueError, match="'zebra' is not one of this project's classes"):
        store.add(key, m2, "zebra")
    with pytest.raises(ValueError, match="not one of this project's classes"):
        store.relabel([store.for_image(key)[0].id], "zebra")
    with pytest.raises(ValueError, match="not one of this project's classes"):
        store.rename_category("cat", "zebra")
    assert _state(store) == before and "zebra" not in store.categories
    store.add(key, m2, "dog")
    assert store.for_image(key)[-1].category_id == 7
    store.rename_category("cat", "dog")  # within the list: a merge
    assert store.categories == {"dog": 7, "bird": 8}
