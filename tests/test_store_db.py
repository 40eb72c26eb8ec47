"""The annotation store as a database many writers share (issue 27): SQLite and a real
PostgreSQL server through the same code; writes idempotent by request id; a full disk saves
nothing and says so; two app processes and an ``annotate`` run on one store, one of them
killed with SIGKILL, lose nothing answered OK and store nothing twice."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from annotator.bulk import Journal
from annotator.evaluation import farthest_interior_point
from annotator.formats.coco import to_coco
from annotator.instances import Instances, Source
from annotator.store import AnnotationStore, StoreFullError, os_user

from .conftest import ROOT, instance_mask

N_PHOTOS = 3


def _database(kind: str, request, tmp_path: Path) -> str | Path:
    return tmp_path / "s.annotations.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")


def _square(y: int, x: int, h: int = 20, w: int = 30) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y : y + 4, x : x + 5] = True
    return m


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_same_code_on_sqlite_and_postgres(kind, request, tmp_path, coco_gt):
    """Every store operation, then the COCO export: the same on both databases, and as it
    was from the JSON store (category ids, annotation ids never reused, scores kept)."""
    dataset = f"photos-{uuid.uuid4().hex[:8]}"  # one PostgreSQL server serves every test
    store = AnnotationStore(_database(kind, request, tmp_path), dataset, category_ids={"cat": 17, "dog": 18})
    a = store.add("a.jpg", _square(2, 3), "cat", score=0.75, predicted_iou=0.5, prompt={"points": [[4, 3]]})
    b, c = store.add_instances(
        "sub/b.jpg",
        Instances(np.stack([_square(5, 5), _square(10, 12)]), class_names=["dog", "heron"], source=Source.SAMCP),
    )
    store.add_image("empty.jpg", 30, 20)
    assert (a.category_id, b.category_id, c.category_id) == (17, 18, 19)
    assert store.relabel([c.id], "cat")[0].category_id == 17
    with pytest.raises(ValueError, match="labelled 'dog', 'cat'"):  # parts of two labels: which one?
        store.merge([b.id, c.id])
    merged = store.merge([b.id, c.id], "dog")
    assert merged.id == 4 and merged.source == "merge" and merged.label == "dog"
    with pytest.raises(KeyError):
        store.delete([a.id, 99])  # all or none
    assert len(store.annotations) == 2
    store.delete([a.id])
    assert store.add("a.jpg", _square(1, 1), "cat").id == 5  # never reused
    store.meta["classes"] = ["unicorn"]
    store.set_done("empty.jpg")
    store.set_last_image("sub/b.jpg")
    again = AnnotationStore(_database(kind, request, tmp_path), dataset)  # another connection sees it all
    assert again.counts() == {"a.jpg": 1, "sub/b.jpg": 1} and again.done == {"empty.jpg"}
    assert again.last_image == "sub/b.jpg" and again.declared_categories() == {"unicorn": 20}
    coco = to_coco(again)
    assert [i["file_name"] for i in coco["images"]] == ["a.jpg", "empty.jpg", "sub/b.jpg"]
    assert [(x["id"], x["category_id"]) for x in coco["annotations"]] == [(4, 18), (5, 17)]
    assert {x["name"]: x["id"] for x in coco["categories"]} == {"cat": 17, "dog": 18, "unicorn": 20}
    assert np.array_equal(again.instances("sub/b.jpg").dense_masks()[0], _square(5, 5) | _square(10, 12))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_parallel_duplicates_of_a_request_are_stored_once(kind, request, tmp_path):
    """16 threads on two connections send 4 request ids 4 times each: 4 annotations, and every
    duplicate answered with its first's."""
    database, dataset = _database(kind, request, tmp_path), f"dup-{uuid.uuid4().hex[:8]}"
    stores = [AnnotationStore(database, dataset), AnnotationStore(database, dataset)]
    answers: dict[str, list[int]] = {}
    lock = threading.Lock()

    def write(i: int) -> None:
        rid = f"req-{i % 4}"
        ann = stores[i % 2].add("a.jpg", _square(i % 4, i % 4), f"label {i % 4}", request_id=rid)
        with lock:
            answers.setdefault(rid, []).append(ann.id)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(stores[0].annotations) == 4
    assert all(len(set(ids)) == 1 and len(ids) == 4 for ids in answers.values())
    with pytest.raises(ValueError, match="was used for a add"):
        stores[0].delete([answers["req-0"][0]], request_id="req-0")


@contextmanager
def _small_disk(where: Path, megabytes: int = 8):
    """A tmpfs of ``megabytes`` at ``where`` (root can mount one here); ``None`` where it cannot."""
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)], capture_output=True
    )
    try:
        yield where if done.returncode == 0 else None
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_saves_nothing_says_507_and_opening_still_works(engine, coco_tiny, coco_gt, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from annotator.workspace import Workspace
    from app.api import PageAPI
    from app.routes import add_routes

    folder = tmp_path / "photos"
    folder.mkdir()
    ids = sorted(coco_gt.getImgIds())[:2]
    for key, img_id in zip(("a.jpg", "b.jpg"), ids, strict=True):
        shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / key)
    ann = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=ids[0], iscrowd=False))[0]
    x, y = farthest_interior_point(instance_mask(coco_gt, ann))
    with _small_disk(tmp_path / "disk") as disk:
        ws = Workspace.open_folder(engine, folder, disk or tmp_path / "out")
        app = FastAPI()
        add_routes(app, PageAPI(ws, prefetch=0))
        http = TestClient(app)
        post = lambda path, **body: http.post(f"/ovsam/api/{path}", json={"session": "t", **body})  # noqa: E731
        assert post("open", key="a.jpg").status_code == 200
        post("click", x=x, y=y)
        assert post("accept", label="first", request_id="r-1").status_code == 200
        if disk is not None:
            filler = _fill(disk)
        else:  # no tmpfs: SQLite's own limit on the file's pages gives the same SQLITE_FULL
            from sqlalchemy import event

            def cap(dbapi_connection, _record):
                pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
                dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

            event.listen(ws.store.engine, "connect", cap)
            ws.store.engine.dispose()
        post("click", x=x, y=y)
        full = post("accept", label="second", request_id="r-2")
        assert full.status_code == 507 and full.json()["error"].startswith("disk full: nothing saved"), full.json()
        assert [a.label for a in ws.store.for_image("a.jpg")] == ["first"]
        assert ws.store.replay("r-2", "add") is None
        assert post("open", key="b.jpg").status_code == 200  # opening and viewing still work
        assert http.get("/ovsam/api/image", params={"key": "b.jpg"}).status_code == 200
        with pytest.raises(StoreFullError):
            ws.store.add("b.jpg", np.ones((4, 4), bool), "x")
        if disk is not None:
            filler.unlink()
        else:
            event.remove(ws.store.engine, "connect", cap)
            ws.store.engine.dispose()
        post("open", key="a.jpg")
        post("click", x=x, y=y)
        assert post("accept", label="second", request_id="r-2").status_code == 200
        assert [a.label for a in ws.store.for_image("a.jpg")] == ["first", "second"]  # nothing written twice
        ws.close()
        ws.store.close()


# ---------------------------------------------------------------------------------------------
# Two app processes and an annotate run on one store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, path: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/ovsam/api/{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _start_app(folder: Path, out: Path, db: str | None, log: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    cmd = [sys.executable, "launch.py", "--images", str(folder), "--out", str(out), "--port", str(port)]
    cmd += ["--backend", "torch", *(["--db", db] if db else [])]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return proc, port


def _wait_up(proc: subprocess.Popen, port: int, log: Path, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the app exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ovsam/api/state?session=probe", timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not answer in {timeout} s: {log.read_text()[-2000:]}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_app_processes_and_annotate_on_one_store_lose_nothing(kind, request, coco_tiny, coco_gt, tmp_path):
    """Both apps accept masks while ``annotate --boxes`` runs on the same folder and store; app
    A is killed with SIGKILL midway; a retry of one of A's accepts sent to B is answered with
    A's annotation. Every accept answered OK is in the store exactly once, and so are the
    bulk run's annotations."""
    db = None if kind == "sqlite" else request.getfixturevalue("postgres_url")
    folder, out = tmp_path / f"photos{uuid.uuid4().hex[:6]}", tmp_path / "out"
    folder.mkdir()
    img_ids = sorted(coco_gt.getImgIds())[:N_PHOTOS]
    # The box file is cut from instances.json as read from disk: COCOeval (run by other tests on the
    # session's ``coco_gt``) turns that object's polygons into RLE with bytes counts in place.
    dataset = json.loads((coco_tiny / "instances.json").read_text())
    boxes = {
        "images": [i for i in dataset["images"] if i["id"] in img_ids],
        "annotations": [a for a in dataset["annotations"] if a["image_id"] in img_ids and not a["iscrowd"]],
        "categories": dataset["categories"],
    }
    points = {}
    for img_id in img_ids:
        info = coco_gt.loadImgs(img_id)[0]
        shutil.copy(coco_tiny / "images" / info["file_name"], folder / info["file_name"])
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
        points[info["file_name"]] = [farthest_interior_point(instance_mask(coco_gt, a)) for a in anns[:4]]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    apps = [_start_app(folder, out, db, log) for log in logs]
    try:
        for (proc, port), log in zip(apps, logs, strict=True):
            _wait_up(proc, port, log)
        bulk = ["annotate", str(folder), "--out", str(out), "--boxes", str(tmp_path / "boxes.json")]
        annotate = subprocess.Popen(
            [sys.executable, "-m", "annotator", *bulk, "--backend", "torch", *(["--db", db] if db else [])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        answered: dict[str, dict] = {}  # request id -> the annotation answered OK
        lock = threading.Lock()

        def accepts(name: str, port: int, rounds: int) -> None:
            tab = f"tab-{name}"
            for i in range(rounds):
                key = sorted(points)[i % N_PHOTOS]
                x, y = points[key][i % len(points[key])]
                rid = f"{name}-{i}-{uuid.uuid4().hex}"
                try:
                    _post(port, "open", {"session": tab, "key": key})
                    _post(port, "click", {"session": tab, "x": x, "y": y, "key": key})
                    status, body = _post(port, "accept", {"session": tab, "label": f"{name} {i}", "request_id": rid})
                except OSError:  # the process was killed: what it answered before stands
                    return
                if status == 200:
                    with lock:
                        answered[rid] = body["annotation"]

        workers = [threading.Thread(target=accepts, args=(n, p, 8)) for n, (_, p) in zip("AB", apps, strict=True)]
        [w.start() for w in workers]
        while sum(rid.startswith("A-") for rid in list(answered)) < 3 and workers[0].is_alive():
            time.sleep(0.05)
        apps[0][0].send_signal(signal.SIGKILL)  # mid-run
        [w.join(timeout=300) for w in workers]
        a_rid = next(rid for rid in answered if rid.startswith("A-"))
        status, body = _post(apps[1][1], "accept", {"session": "tab-B", "label": "retry", "request_id": a_rid})
        assert status == 200 and body["annotation"]["id"] == answered[a_rid]["id"]  # answered as the first time
        output, _ = annotate.communicate(timeout=600)
        assert annotate.returncode == 0, output
    finally:
        for proc, _ in apps:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    store = AnnotationStore(db or out / f"{folder.name}.annotations.db", folder.name)
    stored = store.annotations.values()
    by_id = {a.id: a for a in stored}
    assert len(by_id) == len(stored)
    assert sum(rid.startswith("A-") for rid in answered) >= 3 and sum(rid.startswith("B-") for rid in answered) == 8
    for ann in answered.values():
        assert by_id[ann["id"]].label == ann["label"] and by_id[ann["id"]].rle == {
            "size": ann["rle"]["size"],
            "counts": ann["rle"]["counts"],
        }
    clicked = [a for a in stored if a.source == "click"]
    assert sorted(a.id for a in clicked) == sorted(a["id"] for a in answered.values())  # each once, none lost
    journal = Journal(out / f"{folder.name}.journal.jsonl").read()
    assert sorted(journal) == sorted(points) and all(o.status == "done" for o in journal.values())
    from_boxes = [a for a in stored if a.source == "box"]
    assert len(from_boxes) == sum(len(o.annotations) for o in journal.values()) > len(boxes["annotations"]) // 2
    assert sorted(store.meta["bulk_imported"]) == sorted(points)
    assert {a.author for a in stored} == {os_user()}
