"""Import and review in the store (issue 30): COCO ground truth imported as predictions whose
RLEs are pycocotools' ``annToRLE``, all or nothing (a bad file, a missing image, another size,
a class id conflict leave the store as it was), a second import adds nothing; review states
(accept, reject, accept all of an image) as undoable steps; a person's edit accepts; exports
with ``--only``; a version 2 database upgraded on open; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from annotator.formats.coco import read_coco, to_coco
from annotator.formats.dataset import ReviewedView
from annotator.formats.errors import FormatReadError
from annotator.importer import import_annotations
from annotator.store import AnnotationStore

ROOT = Path(__file__).resolve().parents[1]


def _store(kind, request, tmp_path) -> AnnotationStore:
    database = tmp_path / "r.annotations.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    return AnnotationStore(database, f"r-{uuid.uuid4().hex[:8]}")


def _snapshot(store: AnnotationStore) -> str:
    return json.dumps(
        {
            "annotations": [a.__dict__ for a in store.annotations.values()],
            "categories": store.categories,
            "images": sorted(store.images),
        },
        sort_keys=True,
        default=str,
    )


def _small_coco(coco_tiny: Path, tmp_path: Path, n_images: int = 3) -> tuple[Path, dict]:
    """A COCO file of the first photos of the dev set (crowd regions included)."""
    data = json.loads((coco_tiny / "instances.json").read_text())
    keep = {im["id"] for im in data["images"][:n_images]}
    small = {
        **data,
        "images": [im for im in data["images"] if im["id"] in keep],
        "annotations": [a for a in data["annotations"] if a["image_id"] in keep],
    }
    path = tmp_path / "small.json"
    path.write_text(json.dumps(small))
    return path, small


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_coco_ground_truth_imports_as_predictions_equal_to_ann_to_rle(kind, request, tmp_path, coco_tiny, coco_gt):
    store = _store(kind, request, tmp_path)
    summary = import_annotations(store, coco_tiny / "images", coco_tiny / "instances.json", "coco")
    assert summary.annotations == len(coco_gt.anns) == 815
    assert summary.images == 80
    by_original = {a.data["original_id"]: a for a in store.annotations.values()}
    assert len(by_original) == 815
    for ann in coco_gt.anns.values():
        expected = coco_gt.annToRLE(ann)
        counts = expected["counts"].decode() if isinstance(expected["counts"], bytes) else expected["counts"]
        mine = by_original[ann["id"]]
        assert mine.rle["counts"] == counts, ann["id"]
        assert mine.category_id == ann["category_id"]
        assert mine.label == coco_gt.cats[ann["category_id"]]["name"]
        assert mine.source == "imported" and mine.state == "predicted"
        assert bool(mine.data.get("iscrowd")) == bool(ann["iscrowd"])
    # exported back, crowd regions stay crowd and ids of categories stay COCO's
    exported = to_coco(store)
    crowd = sum(a["iscrowd"] for a in exported["annotations"])
    assert crowd == sum(a["iscrowd"] for a in coco_gt.anns.values()) > 0
    assert {c["name"]: c["id"] for c in exported["categories"]} == {c["name"]: c["id"] for c in coco_gt.cats.values()}
    # the same file again adds nothing
    again = import_annotations(store, coco_tiny / "images", coco_tiny / "instances.json", "coco")
    assert again.annotations == 0 and again.already == 815
    assert len(store.annotations) == 815


def test_bad_imports_leave_the_store_as_it_was(tmp_path, coco_tiny):
    store = AnnotationStore(tmp_path / "b.db", "b")
    small_path, small = _small_coco(coco_tiny, tmp_path)
    import_annotations(store, coco_tiny / "images", small_path, "coco")
    before = _snapshot(store)

    # a malformed file: every bad record named, nothing taken
    broken = json.loads(json.dumps(small))
    broken["annotations"][0]["category_id"] = 999
    broken["annotations"][1]["image_id"] = 424242
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    with pytest.raises(FormatReadError) as err:
        import_annotations(store, coco_tiny / "images", bad, "coco")
    lines = [str(p) for p in err.value.problems]
    assert len(lines) == 2
    assert all(str(bad) in line for line in lines)
    assert f"annotation {broken['annotations'][0]['id']}" in lines[0] and "999" in lines[0]
    assert _snapshot(store) == before

    # an image the folder lacks, and one of another size
    other = json.loads(json.dumps(small))
    other["images"][0]["file_name"] = "not_here.jpg"
    crowded = {a["image_id"] for a in other["annotations"] if a["iscrowd"]}
    resized = next(im for im in other["images"][1:] if im["id"] not in crowded)  # polygons only: any size reads
    resized["width"] += 1
    for a in other["annotations"]:
        a["id"] += 10**6
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(other))
    with pytest.raises(FormatReadError) as err:
        import_annotations(store, coco_tiny / "images", odd, "coco")
    text = str(err.value)
    assert "image not_here.jpg: not in the image folder" in text
    assert f"image {resized['file_name']}: is {resized['width']}x{resized['height']} there, the folder's" in text
    assert _snapshot(store) == before
    # with --missing skip the missing image is skipped and named, but the wrong size still stops it
    with pytest.raises(FormatReadError):
        import_annotations(store, coco_tiny / "images", odd, "coco", missing="skip")
    assert _snapshot(store) == before

    # a class whose id is another class's here
    clash = json.loads(json.dumps(small))
    clash["categories"] = [{**c, "id": c["id"] + 1} for c in clash["categories"]]
    for a in clash["annotations"]:
        a["category_id"] += 1
        a["id"] += 2 * 10**6
    clashing = tmp_path / "clash.json"
    clashing.write_text(json.dumps(clash))
    with pytest.raises(FormatReadError) as err:
        import_annotations(store, coco_tiny / "images", clashing, "coco")
    assert "categories: class 'person' has id 2 there and 1 in this dataset" in str(err.value)
    assert _snapshot(store) == before


def test_missing_images_skipped_on_request(tmp_path, coco_tiny):
    store = AnnotationStore(tmp_path / "s.db", "s")
    small_path, small = _small_coco(coco_tiny, tmp_path)
    small["images"][0]["file_name"] = "elsewhere/not_here.jpg"
    small_path.write_text(json.dumps(small))
    summary = import_annotations(store, coco_tiny / "images", small_path, "coco", missing="skip")
    assert summary.skipped_images == ["elsewhere/not_here.jpg"]
    assert summary.images == 2
    assert "not_here.jpg" not in store.images


def test_images_matched_by_file_name_under_sub_folders(tmp_path, coco_tiny):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    small_path, small = _small_coco(coco_tiny, tmp_path, n_images=2)
    for im in small["images"]:
        shutil.copy(coco_tiny / "images" / im["file_name"], folder / "sub" / im["file_name"])
    store = AnnotationStore(tmp_path / "m.db", "m")
    summary = import_annotations(store, folder, small_path, "coco")
    assert sorted(store.images) == sorted(f"sub/{im['file_name']}" for im in small["images"])
    assert summary.annotations == len(small["annotations"])
    ann = next(iter(store.annotations.values()))
    assert ann.data["original_image"] == ann.image.removeprefix("sub/")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_review_states_are_undoable_and_exports_follow_them(kind, request, tmp_path, coco_tiny):
    store = _store(kind, request, tmp_path)
    small_path, small = _small_coco(coco_tiny, tmp_path, n_images=2)
    import_annotations(store, coco_tiny / "images", small_path, "coco")
    first = small["images"][0]["file_name"]
    anns = store.for_image(first)
    assert len(anns) >= 3 and {a.state for a in anns} == {"predicted"}
    a, b, c = anns[:3]
    store.set_state([a.id], "accepted")
    store.set_state([b.id], "rejected")
    counts = store.state_counts([first])[first]
    assert counts == {"predicted": len(anns) - 2, "accepted": 1, "rejected": 1}
    with pytest.raises(ValueError, match="unknown review state"):
        store.set_state([c.id], "maybe")
    with pytest.raises(KeyError):
        store.set_state([c.id, 10**9], "accepted")
    assert store.get([c.id])[0].state == "predicted"

    # exports: all leaves out the rejected one, accepted keeps the accepted one alone
    all_ids = {x["id"] for x in to_coco(ReviewedView(store, "all"))["annotations"]}
    accepted_ids = {x["id"] for x in to_coco(ReviewedView(store, "accepted"))["annotations"]}
    assert b.id not in all_ids and a.id in all_ids and c.id in all_ids
    assert accepted_ids == {a.id}

    # accept all of the image; the rejected one stays rejected; undo and redo it
    changed = store.accept_image(first)
    assert {x.id for x in changed} == {x.id for x in anns} - {a.id, b.id}
    assert store.state_counts([first])[first] == {"predicted": 0, "accepted": len(anns) - 1, "rejected": 1}
    store.undo(first)
    assert store.state_counts([first])[first]["predicted"] == len(anns) - 2
    store.redo(first)
    assert store.state_counts([first])[first]["predicted"] == 0
    store.undo(first)  # accept all
    store.undo(first)  # reject b
    assert store.get([b.id])[0].state == "predicted"

    # a person's edit accepts
    def erase_one_pixel(mask: np.ndarray) -> np.ndarray:
        out = mask.copy()
        out[tuple(np.argwhere(mask)[0])] = False
        return out

    edited = store.edit(c.id, erase_one_pixel)
    assert edited.state == "accepted"
    relabelled = store.relabel([b.id], "dog")
    assert relabelled[0].state == "accepted"

    # image status
    second = small["images"][1]["file_name"]
    store.add_image("empty.jpg", 10, 10)
    status = store.image_status()
    assert status[first] == "in progress" and status["empty.jpg"] == "to do"
    store.set_done(second)
    store.set_reviewed(first)
    status = store.image_status()
    assert status[first] == "reviewed" and status[second] == "done"
    assert first in store.done


def test_a_version_2_database_gains_states_on_open(tmp_path, coco_tiny):
    path = tmp_path / "old.db"
    store = AnnotationStore(path, "old")
    mask = np.zeros((20, 30), bool)
    mask[2:9, 3:12] = True
    store.add("a.jpg", mask, "dog", prompt={"points": [[5, 5]], "labels": [1]})
    store.add("a.jpg", mask, "cat", prompt={"everything": "samcp"})
    store.close()
    with sqlite3.connect(path) as conn:  # the table as version 2 had it
        conn.execute("ALTER TABLE annotations DROP COLUMN state")
        conn.execute("ALTER TABLE annotations DROP COLUMN data")
        conn.execute("UPDATE datasets SET schema_version = 2")
    reopened = AnnotationStore(path, "old")
    assert [(a.label, a.state) for a in reopened.annotations.values()] == [("dog", "accepted"), ("cat", "predicted")]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT schema_version FROM datasets").fetchone()[0] == 3


def test_import_and_export_on_the_command_line(tmp_path, coco_tiny):
    small_path, small = _small_coco(coco_tiny, tmp_path)
    out = tmp_path / "out"
    images = str(coco_tiny / "images")
    cmd = [sys.executable, "-m", "annotator"]
    done = subprocess.run(
        [*cmd, "import", images, "--from", str(small_path), "--format", "coco", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"imported {len(small['annotations'])} annotations on 3 images" in done.stdout
    done = subprocess.run(
        [*cmd, "export", images, "--out", str(out), "--only", "accepted"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "0 annotations of 3 images" in done.stdout and f"{len(small['annotations'])} predicted" in done.stdout
    assert read_coco(out / "images_coco.json").instances(small["images"][0]["file_name"]).__len__() == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = subprocess.run(
        [*cmd, "import", images, "--from", str(bad), "--format", "coco", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert str(bad) in done.stderr and "nothing imported" in done.stderr


def test_yolo_boxes_become_sam_masks_on_request(tmp_path, coco_tiny, engine, coco_gt):
    from annotator.formats import yolo
    from annotator.masks import decode_rle

    small_path, small = _small_coco(coco_tiny, tmp_path, n_images=2)
    dataset = read_coco(small_path)
    yolo.write(dataset, tmp_path / "det", images_root=coco_tiny / "images", task="detect")
    plain = AnnotationStore(tmp_path / "plain.db", "p")
    boxes = import_annotations(plain, coco_tiny / "images", tmp_path / "det", "yolo")
    sam = AnnotationStore(tmp_path / "sam.db", "s")
    decoded = import_annotations(sam, coco_tiny / "images", tmp_path / "det", "yolo", sam=engine)
    n = len(small["annotations"])
    assert boxes.annotations == decoded.annotations == n and decoded.sam_boxes == n and boxes.sam_boxes == 0

    def mean_iou(store: AnnotationStore) -> float:
        """Each imported mask against the ground truth instance of its image and class it overlaps most."""
        ious = []
        for a in store.annotations.values():
            image_id = next(im["id"] for im in small["images"] if im["file_name"] == a.image)
            mask = decode_rle(a.rle)
            best = 0.0
            for ann in coco_gt.imgToAnns[image_id]:
                if coco_gt.cats[ann["category_id"]]["name"] != a.label or ann["iscrowd"]:
                    continue
                gt = coco_gt.annToMask(ann).astype(bool)
                best = max(best, (gt & mask).sum() / max(1, (gt | mask).sum()))
            ious.append(best)
        return float(np.mean(ious))

    rect, masks = mean_iou(plain), mean_iou(sam)
    assert masks > rect + 0.1, (rect, masks)  # SAM's masks follow the objects, rectangles do not
    assert {a.state for a in sam.annotations.values()} == {"predicted"}
