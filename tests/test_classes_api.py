"""The project's classes through the page's API (issue 29) on real MobileSAM and COCO photos:
the class routes (GET classes, POST classes/rename, classes/merge, classes/history) over HTTP,
a class list (``--classes FILE``) refusing every other label with a 422 that says why, and a
free-text class keeping its id from the page through a bulk run to every export."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from annotator.evaluation import farthest_interior_point
from annotator.vocabulary import load_vocabulary
from annotator.workspace import Workspace

from .conftest import ROOT, instance_mask


def _photos(coco_tiny, coco_gt, folder, n: int = 2) -> list[tuple[str, list[dict]]]:
    """Copy the first ``n`` COCO photos into ``folder``: (file name, their instances) each."""
    folder.mkdir()
    out = []
    for img_id in sorted(coco_gt.getImgIds())[:n]:
        name = coco_gt.loadImgs(img_id)[0]["file_name"]
        shutil.copy(coco_tiny / "images" / name, folder / name)
        out.append((name, coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))))
    return out


def _points(coco_gt, anns, n: int) -> list[tuple[float, float]]:
    """A point inside each of the ``n`` largest instances (x, y original pixels)."""
    big = sorted(anns, key=lambda a: -a["area"])[:n]
    return [tuple(float(v) for v in farthest_interior_point(instance_mask(coco_gt, a))) for a in big]


@pytest.fixture()
def client(engine, coco_tiny, coco_gt, tmp_path):
    from app.api import PageAPI
    from app.routes import add_routes

    photos = _photos(coco_tiny, coco_gt, tmp_path / "photos", 1)
    ws = Workspace.open_folder(engine, tmp_path / "photos", tmp_path / "out")
    app = FastAPI()
    add_routes(app, PageAPI(ws, prefetch=0))
    yield TestClient(app), ws, photos[0]
    ws.close()


def test_class_routes_count_rename_merge_and_undo(client, coco_gt):
    from app import schemas

    http, ws, (key, anns) = client
    post = lambda path, **body: http.post(f"/ovsam/api/{path}", json=body)  # noqa: E731
    post("open", session="s", key=key)
    for (x, y), label in zip(_points(coco_gt, anns, 3), ["dog", "dog", "cat"], strict=True):
        assert post("click", session="s", x=x, y=y).status_code == 200
        assert post("accept", session="s", label=label).status_code == 200
    listed = schemas.ClassesOut.model_validate(http.get("/ovsam/api/classes").json())
    ids = ws.store.categories
    assert [(c.name, c.id, c.count) for c in listed.classes] == [("dog", ids["dog"], 2), ("cat", ids["cat"], 1)]
    assert not listed.restricted and listed.history.undoable == 0

    r = post("classes/rename", old="dog", new="canine", key=key)
    assert r.status_code == 200, r.text
    renamed = schemas.ClassChangeOut.model_validate(r.json())
    assert renamed.moves == [["dog", "canine"]] and renamed.images == [key]
    assert [a.label for a in renamed.annotations] == ["canine", "canine", "cat"]  # the shown image, relabelled
    assert [(c.name, c.id, c.count) for c in renamed.classes] == [("canine", ids["dog"], 2), ("cat", ids["cat"], 1)]
    assert renamed.history.undoable == 1
    assert ws.store.history_depth(key) == (3, 0)  # the image's own history: the three accepts

    r = post("classes/merge", names=["canine", "cat"], into="animal", key=key)
    merged = schemas.ClassChangeOut.model_validate(r.json())
    assert [(c.name, c.id, c.count) for c in merged.classes] == [("animal", ids["dog"], 3)]
    assert {a.label for a in merged.annotations} == {"animal"}

    undone = schemas.ClassChangeOut.model_validate(post("classes/history", way="undo", key=key).json())
    assert undone.done and [(c.name, c.count) for c in undone.classes] == [("canine", 2), ("cat", 1)]
    post("classes/history", way="undo", key=key)
    assert {a.label for a in ws.store.for_image(key)} == {"dog", "cat"} and ws.store.categories == ids
    nothing = post("classes/history", way="undo").json()
    assert nothing["done"] is False and nothing["history"] == {"undoable": 0, "redoable": 2}

    r = post("classes/rename", old="wolf", new="dog")
    assert r.status_code == 404 and "no class 'wolf'" in r.json()["error"]
    r = post("classes/rename", old="dog", new="  ")
    assert r.status_code == 422 and "needs a label" in r.json()["error"]
    r = post("classes/merge", names=["dog"], into="dog")
    assert r.status_code == 422 and "already that class" in r.json()["error"]
    r = post("classes/history", way="sideways")
    assert r.status_code == 422 and r.json()["error"].startswith("way:")
    assert ws.store.categories == ids and ws.store.classes_history_depth() == (0, 2)  # nothing changed


def test_class_list_refuses_every_other_label(engine, coco_tiny, coco_gt, tmp_path):
    from app.api import ApiError, PageAPI

    (key, anns), _ = _photos(coco_tiny, coco_gt, tmp_path / "photos")
    ws = Workspace.open_folder(engine, tmp_path / "photos", tmp_path / "out")
    assert ws.store.declare_classes({"dog": 3, "cat": 5}) == []
    api = PageAPI(ws, prefetch=0)
    assert api.state("s")["classes"] == {"restricted": True, "names": ["cat", "dog"]}
    assert api.classes()["classes"] == [
        {"name": "dog", "id": 3, "count": 0, "listed": True},
        {"name": "cat", "id": 5, "count": 0, "listed": True},
    ]
    api.open("s", key)
    (x1, y1), (x2, y2) = _points(coco_gt, anns, 2)
    api.click("s", x1, y1)

    def refused(call, *args, **kwargs):
        with pytest.raises(ApiError) as err:
            call(*args, **kwargs)
        assert err.value.status == 422, err.value
        assert "'zebra' is not one of this project's classes (--classes): cat, dog" in str(err.value)

    refused(api.accept, "s", "zebra")
    assert api.accept("s", "dog")["annotation"]["label"] == "dog"  # the mask was still pending
    api.click("s", x2, y2)
    cat = api.accept("s", "cat")["annotation"]["id"]
    dog = ws.store.for_image(key)[0].id
    refused(api.relabel, [dog], "zebra")
    refused(api.merge, [dog, cat], "zebra")
    refused(api.rename_class, "dog", "zebra")
    refused(api.find, "s", "dog, zebra")
    found = api.find  # a listed class in other case is the list's: refused only for want of CLIP here
    with pytest.raises(ApiError, match="needs CLIP"):
        found("s", "Dog")
    before = [a.__dict__ for a in ws.store.annotations.values()]
    with pytest.raises(ApiError) as err:  # masks only: everything labels 'object', which is not listed
        api.everything("s", "patches")
    assert err.value.status == 422 and "nothing stored: 'object' is not one of" in str(err.value)
    assert [a.__dict__ for a in ws.store.annotations.values()] == before
    assert {a.category_id for a in ws.store.annotations.values()} == {3, 5}  # the file's ids
    ws.close()


def test_launcher_class_list_file(tmp_path):
    import subprocess
    import sys

    from annotator.vocabulary import VocabularyError
    from app.launch import class_list

    text = tmp_path / "classes.txt"
    text.write_text("# ours\n7: dog\ncat\n12:traffic light\n")
    assert class_list(text) == {"dog": 7, "cat": 2, "traffic light": 12}
    coco = tmp_path / "cats.json"
    coco.write_text(json.dumps({"categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}]}))
    assert class_list(coco) == {"dog": 18, "cat": 17}
    with pytest.raises(VocabularyError, match="no such file"):
        class_list(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="no such file"):
        class_list("coco")  # a registry name is not the project's own list
    out = subprocess.run(
        [sys.executable, "launch.py", "--classes", str(tmp_path / "missing.txt"), "--clip", "none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "--classes" in out.stderr and "no such file" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def coco_engine(sam_model, tiny_clip_factory):
    """MobileSAM + a tiny random CLIP over COCO's 80 classes."""
    from annotator.engine import Engine

    return Engine(sam_model, tiny_clip_factory(), load_vocabulary("coco"))


def test_free_text_class_keeps_its_id_from_page_to_bulk_and_every_export(coco_engine, coco_tiny, coco_gt, tmp_path):
    """Issue 29's finding: a free-text class got one id in the page's export and another in a
    bulk export. The page creates two free-text classes (ids after COCO's 90: 91, 92); a bulk run
    of the same folder names the second alone, which on its own it would number 91."""
    from annotator.bulk import BulkConfig, annotate_folder
    from app.api import PageAPI

    folder, out = tmp_path / "photos", tmp_path / "out"
    (key, anns), _ = _photos(coco_tiny, coco_gt, folder)
    ws = Workspace.open_folder(coco_engine, folder, out)
    api = PageAPI(ws, prefetch=0)
    api.open("s", key)
    for (x, y), label in zip(_points(coco_gt, anns, 2), ["zebra crossing", "giraffe crossing"], strict=True):
        api.click("s", x, y)
        api.accept("s", label)
    page_ids = ws.store.categories
    assert page_ids == {"zebra crossing": 91, "giraffe crossing": 92}
    page_coco = json.loads(ws.export("coco").read_text())
    assert {c["name"]: c["id"] for c in page_coco["categories"]} == page_ids
    ws.close()

    config = BulkConfig(method="patches", classes=("giraffe crossing",), class_threshold=0.0)
    summary = annotate_folder(coco_engine, folder, out, config, progress=False)
    assert summary.instances_per_class.get("giraffe crossing", 0) > 0  # threshold 0: every region is one
    ws = Workspace.open_folder(coco_engine, folder, out)
    store = ws.store
    assert store.categories["giraffe crossing"] == 92 and store.categories["zebra crossing"] == 91
    bulk_coco = json.loads(summary.coco_path.read_text())
    names = {c["id"]: c["name"] for c in bulk_coco["categories"]}
    assert names[92] == "giraffe crossing" and names[91] == "zebra crossing"  # not the 91 the run alone gives
    giraffes = [a for a in bulk_coco["annotations"] if a["category_id"] == 92]
    assert len(giraffes) == 1 + summary.instances_per_class["giraffe crossing"]  # the page's and the run's
    # every export of the folder now: the same id (COCO), the same class (YOLO's index, in id
    # order; Label Studio's label names)
    coco = json.loads(ws.export("coco").read_text())
    assert {c["name"]: c["id"] for c in coco["categories"]} == store.categories
    yolo = yaml.safe_load(ws.export("yolo").read_text())
    by_id = sorted(store.categories, key=store.categories.get)
    assert list(yolo["names"].values()) == by_id
    index = {n: i for i, n in yolo["names"].items()}
    yolo_dir = ws.export("yolo").parent
    lines = (yolo_dir / "labels" / key).with_suffix(".txt").read_text().splitlines()
    classes_here = [a.label for a in store.for_image(key)]
    assert sorted(int(line.split()[0]) for line in lines) == sorted(index[n] for n in classes_here)
    tasks = json.loads(ws.export("label-studio").read_text())
    ls_labels = {
        lab for task in tasks for p in task.get("predictions", []) for r in p["result"] for lab in r["value"].get(
            "brushlabels", r["value"].get("polygonlabels", []))
    }  # fmt: skip
    assert ls_labels == {a.label for a in store.annotations.values()}
    ws.close()


def test_one_class_file_gives_the_same_ids_to_the_page_and_annotate(coco_engine, coco_tiny, coco_gt, tmp_path):
    """``launch.py --classes FILE`` then ``annotate --classes FILE`` on the same folder: the run
    takes the ids the page's start gave (the file's), not those it would resolve alone (COCO's
    for "person", 91 for a free-text class)."""
    from annotator.bulk import BulkConfig, annotate_folder
    from annotator.text_prompts import parse_classes
    from app.launch import class_list

    folder, out = tmp_path / "photos", tmp_path / "out"
    _photos(coco_tiny, coco_gt, folder, 1)
    listed = tmp_path / "classes.txt"
    listed.write_text("giraffe crossing\nperson\n")  # ids 1, 2 (in order); COCO's person is 1
    ws = Workspace.open_folder(coco_engine, folder, out)
    assert ws.store.declare_classes(class_list(listed)) == []  # as the launcher does at start
    ws.close()
    config = BulkConfig(method="patches", classes=tuple(parse_classes(str(listed))), class_threshold=0.0)
    summary = annotate_folder(coco_engine, folder, out, config, progress=False)
    coco = json.loads(summary.coco_path.read_text())
    assert {c["name"]: c["id"] for c in coco["categories"]} == {"giraffe crossing": 1, "person": 2}
    assert coco["annotations"] and {a["category_id"] for a in coco["annotations"]} <= {1, 2}
