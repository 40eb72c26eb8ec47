"""The class panel in real Chromium (issue 29): the project's classes with their counts, a class
renamed with the keyboard (Enter saves, Esc cancels), two merged, the merge undone (the store
byte for byte as it was), a class picked by its key (Ctrl + digit) for a pending mask, and a
class list (``--classes``) refusing another class with the server's reason on screen."""

from __future__ import annotations

import json

from annotator.evaluation import farthest_interior_point

from .conftest import instance_mask
from .test_browser import (  # the fixtures browser, labelled_engine, photos, app too
    app,
    browser,
    click_image,
    labelled_engine,
    open_page,
    photos,
    wait_status,
    wait_switches,
)

__all__ = ["app", "browser", "labelled_engine", "photos"]  # fixtures, used by name


def classes_shown(page) -> list[tuple[str, str]]:
    """(name, "#id · count") of every row of the class panel, in order."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#ov-classes li')].map(li =>
        [li.querySelector('.name').textContent, li.querySelector('.count').textContent])"""
    )


def wait_classes(page, names: list[str]) -> None:
    page.wait_for_function(
        "names => JSON.stringify([...document.querySelectorAll('#ov-classes li')].map(li => li.dataset.name))"
        " === JSON.stringify(names)",
        arg=names,
        timeout=30_000,
    )


def store_state(store) -> str:
    return json.dumps(
        {"annotations": [a.__dict__ for a in store.annotations.values()], "categories": store.categories},
        sort_keys=True,
    )


def test_class_panel_counts_rename_merge_undo_keys_and_class_list(browser, app, photos, coco_gt):
    ws = app.ws
    _, picked = photos
    (info_a, anns_a), (info_b, anns_b) = picked[0], picked[1]
    a, b = info_a["file_name"], info_b["file_name"]
    for key, anns, labels in ((a, anns_a, ["dog", "dog"]), (b, anns_b, ["cat", "person"])):  # annotated earlier
        for ann, label in zip(anns, labels, strict=False):
            ws.store.add(key, instance_mask(coco_gt, ann), label)
    ids = ws.store.categories
    known = {**ids, "canine": ids["dog"], "animal": ids["dog"], "bird": 99_999}  # a rename keeps the id
    by_id = lambda names: sorted(names, key=known.get)  # noqa: E731
    page = open_page(browser, app.url)
    wait_classes(page, by_id(["dog", "cat", "person"]))
    assert dict(classes_shown(page)) == {
        "dog": f"#{ids['dog']} · 2",
        "cat": f"#{ids['cat']} · 1",
        "person": f"#{ids['person']} · 1",
    }

    # rename with the keyboard: double click the name, type, Enter; Esc cancels another
    page.locator("#ov-classes li[data-name='cat'] .name").dblclick()
    field = page.locator("#ov-classes .ov-rename")
    field.press("Control+a")
    field.type("kitten")
    field.press("Escape")
    wait_status(page, "Rename of cat cancelled")
    page.locator("#ov-classes li[data-name='dog'] .name").dblclick()
    field = page.locator("#ov-classes .ov-rename")
    field.press("Control+a")
    field.type("canine")
    field.press("Enter")
    wait_classes(page, by_id(["canine", "cat", "person"]))
    wait_status(page, "Renamed dog → canine on 1 image(s), 2 annotation(s)")
    assert ws.store.categories["canine"] == ids["dog"] and "dog" not in ws.store.categories
    shown = page.evaluate("() => OVSAM.snapshot().anns.map(a => a.label)")  # the image shown, relabelled
    assert page.evaluate("() => OVSAM.snapshot().current") == a and shown == ["canine", "canine"]
    renamed = store_state(ws.store)

    # merge two: check them, "Merge into…", name the class, Enter
    page.locator("#ov-classes li[data-name='canine'] .pick").check()
    assert page.locator("#ov-class-merge").is_disabled()
    page.locator("#ov-classes li[data-name='cat'] .pick").check()
    page.locator("#ov-class-merge").click()
    into = page.locator("#ov-class-into")
    assert into.input_value() == "canine"
    into.fill("animal")
    into.press("Enter")
    wait_classes(page, by_id(["animal", "person"]))
    assert dict(classes_shown(page))["animal"] == f"#{ids['dog']} · 3"
    assert {a.label for a in ws.store.annotations.values()} == {"animal", "person"}

    # undo the merge: the store as it was after the rename, byte for byte
    page.locator("#ov-class-undo").click()
    wait_classes(page, by_id(["canine", "cat", "person"]))
    assert store_state(ws.store) == renamed
    assert page.evaluate("() => OVSAM.snapshot().anns.map(a => a.label)") == ["canine", "canine"]

    # a class by its key for a pending mask: Ctrl + 2 is the second class (by id), Enter accepts
    second = by_id(["canine", "cat", "person"])[1]
    big = max(anns_a[2:] or anns_a, key=lambda x: x["area"])
    click_image(page, *farthest_interior_point(instance_mask(coco_gt, big)))
    page.keyboard.press("Control+2")
    assert page.locator("#ov-label").input_value() == second
    n = len(ws.store.for_image(a))
    page.keyboard.press("Enter")
    page.wait_for_function("n => OVSAM.snapshot().anns.length > n", arg=n, timeout=30_000)
    assert ws.store.for_image(a)[-1].label == second
    count = {"canine": 3, "cat": 2, "person": 2}[second]  # the counts follow the accept
    page.wait_for_function(
        "([n, c]) => document.querySelector(`#ov-classes li[data-name='${n}'] .count`).textContent.endsWith(`· ${c}`)",
        arg=[second, count],
    )

    # a class list (the launcher's --classes FILE): another class is refused, the reason shown
    ws.store.declare_classes({"canine": 1, "cat": 2, "bird": 99_999})
    page.reload()
    wait_switches(page, 1)
    page.wait_for_function("() => document.querySelector('#ov-class-note').textContent.includes('--classes')")
    wait_classes(page, by_id(["canine", "cat", "person", "bird"]))  # bird: count 0; person was there before
    assert page.locator("#ov-classes li[data-name='person']").get_attribute("class").strip() == "unlisted"
    page.keyboard.press("t")
    page.locator("#ov-find").type("zebra")
    page.locator("#ov-find").press("Enter")
    wait_status(page, "'zebra' is not one of this project's classes (--classes)")
    assert "zebra" not in ws.store.categories
    assert not page.errors
