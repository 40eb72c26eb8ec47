"""Bulk runs resumed: a skipped file retried once it changed (or with --retry-skipped), the
summary in words, the progress bar's running total, COCO's category ids kept with --boxes, and
one id per class across a bulk run, the page's path and every export of the folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from annotator.bulk import BulkConfig, Journal, annotate_folder, load_boxes
from annotator.outputs import FolderOutputs
from annotator.store import AnnotationStore

from .conftest import ROOT

SMALL = "000000404484.jpg"  # 320×240: a dog, a person, a potted plant, a teddy bear, a tv
BIG = "000000329219.jpg"  # 640×427: 21 instances, a dog and people among them
GOOD, BROKEN = BIG, SMALL  # BIG comes first, then SMALL is skipped
BROKEN_NOTE = "fix it and run again, or --retry-skipped)"


def _coco_subset(coco_tiny: Path, files: list[str], out: Path) -> Path:
    """COCO's own instances JSON of ``files`` only (all its categories, COCO's ids)."""
    data = json.loads((coco_tiny / "instances.json").read_text())
    images = [im for im in data["images"] if im["file_name"] in files]
    ids = {im["id"] for im in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids and not a["iscrowd"]]
    out.write_text(json.dumps(data))
    return out


def _journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in next(out.glob("*.journal.jsonl")).read_text().splitlines()]


def _categories(coco_path: Path) -> dict[str, int]:
    return {c["name"]: c["id"] for c in json.loads(Path(coco_path).read_text())["categories"]}


@pytest.fixture()
def folder_with_a_broken_photo(coco_tiny, tmp_path):
    """GOOD, and BROKEN cut to its first 3000 bytes (a truncated JPEG, unreadable), and COCO's
    boxes of both."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(coco_tiny / "images" / GOOD, folder / GOOD)
    (folder / BROKEN).write_bytes((coco_tiny / "images" / BROKEN).read_bytes()[:3000])
    boxes = _coco_subset(coco_tiny, [GOOD, BROKEN], tmp_path / "boxes.json")
    return folder, boxes


def test_a_skipped_file_is_retried_once_it_changed_or_when_asked(
    engine, folder_with_a_broken_photo, coco_tiny, tmp_path, capsys
):
    folder, boxes_path = folder_with_a_broken_photo
    out = tmp_path / "out"
    config = BulkConfig(boxes=load_boxes(boxes_path))
    first = annotate_folder(engine, folder, out, config, progress=True)
    bar = capsys.readouterr().err
    assert first.unreadable == [BROKEN] and "truncated" in first.skipped[BROKEN] and first.annotated == first.done == 1
    assert first.report() == f"2 images: 1 annotated now, 1 skipped (unreadable: {BROKEN}; {BROKEN_NOTE}"
    n_good, n_broken = (len(config.boxes[k]) for k in (GOOD, BROKEN))
    # the bar's postfix is the running total (GOOD's boxes), not the last image's count (0)
    assert n_good > 5 and re.findall(r"instances=(\d+)", bar)[-1] == str(n_good)
    skipped_line = _journal_lines(out)[-1]
    assert skipped_line["key"] == BROKEN and skipped_line["file"]["size"] == 3000

    # unchanged: not read again
    again = annotate_folder(engine, folder, out, config, progress=False)
    assert len(_journal_lines(out)) == 2 and again.unreadable == [BROKEN]
    assert again.report() == (
        f"2 images: 0 annotated now, 1 done in an earlier run, 1 skipped (unreadable: {BROKEN}; {BROKEN_NOTE}"
    )
    # --retry-skipped: read again (still broken, skipped again)
    asked = annotate_folder(engine, folder, out, config, progress=False, retry_skipped=True)
    assert [ln["key"] for ln in _journal_lines(out)] == [GOOD, BROKEN, BROKEN] and asked.unreadable == [BROKEN]

    # fixed (a good photo in its place): annotated on the next run, with its boxes
    shutil.copy(coco_tiny / "images" / BROKEN, folder / BROKEN)
    fixed = annotate_folder(engine, folder, out, config, progress=False)
    assert fixed.skipped == {} and fixed.done == 2 and fixed.annotated == 1 and fixed.retried == 1
    assert fixed.report() == "2 images: 1 annotated now (1 of them skipped before), 1 done in an earlier run"
    coco = json.loads(fixed.coco_path.read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == n_good + n_broken
    assert _categories(fixed.coco_path)["person"] == 1 and _categories(fixed.coco_path)["dog"] == 18
    # and then nothing is left: a fourth run reads nothing
    annotate_folder(engine, folder, out, config, progress=False)
    assert len(_journal_lines(out)) == 4


def test_a_skipped_line_of_an_older_journal_is_retried_once(engine, folder_with_a_broken_photo, tmp_path):
    """A journal written before files were recorded: its skipped image is read once more, then
    recorded, then left alone."""
    folder, boxes_path = folder_with_a_broken_photo
    out = tmp_path / "out"
    config = BulkConfig(boxes=load_boxes(boxes_path))
    annotate_folder(engine, folder, out, config, progress=False)
    journal = next(out.glob("*.journal.jsonl"))
    lines = _journal_lines(out)
    for line in lines:
        line.pop("file")
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert Journal(journal).read()[BROKEN].file is None
    annotate_folder(engine, folder, out, config, progress=False)
    annotate_folder(engine, folder, out, config, progress=False)
    assert [ln["key"] for ln in _journal_lines(out)] == [GOOD, BROKEN, BROKEN]


def test_a_failed_and_a_skipped_image_are_told_apart_in_the_summary(engine, folder_with_a_broken_photo, monkeypatch):
    import annotator.bulk.step as step

    folder, boxes_path = folder_with_a_broken_photo

    def out_of_memory(eng, image, key, cfg):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(step, "annotate_image", out_of_memory)
    run = annotate_folder(
        engine, folder, folder.parent / "out", BulkConfig(boxes=load_boxes(boxes_path)), progress=False
    )
    assert run.failed == [GOOD] and run.unreadable == [BROKEN] and set(run.skipped) == {GOOD, BROKEN}
    assert run.report() == (
        f"2 images: 0 annotated now, 1 skipped (unreadable: {BROKEN}; {BROKEN_NOTE}, "
        f"1 failed (a model error: {GOOD}; tried again when you run again)"
    )


def test_summary_names_a_few_and_counts_the_rest(engine, coco_tiny, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    shutil.copy(coco_tiny / "images" / SMALL, folder / SMALL)
    for i in range(7):
        (folder / f"bad{i}.png").write_bytes(b"")
    run = annotate_folder(engine, folder, tmp_path / "out", BulkConfig(boxes={}), progress=False, max_images=5)
    assert run.report() == (
        "8 images: 1 annotated now, 4 skipped (unreadable: bad0.png, bad1.png, bad2.png, bad3.png; "
        "fix them and run again, or --retry-skipped), 3 not tried yet (run again to continue)"
    )
    rest = annotate_folder(engine, folder, tmp_path / "out", BulkConfig(boxes={}), progress=False)
    assert rest.report().startswith("8 images: 0 annotated now, 1 done in an earlier run, 7 skipped (unreadable: ")
    assert "bad4.png and 2 more; fix them" in rest.report()


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "annotator", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _id_warnings(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("WARNING annotator.bulk")]


@pytest.mark.parametrize("vocab", [None, "coco", "conflicting"])
def test_cli_boxes_keep_the_coco_files_ids(vocab, coco_tiny, tmp_path):
    """``annotate --boxes instances.json``: person 1 and dog 18 in the export, with or without
    ``--vocab`` (not imagenet21k's 5 and 2168); a --vocab numbering them otherwise is named in
    one warning line per class."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(coco_tiny / "images" / SMALL, folder / SMALL)
    boxes = _coco_subset(coco_tiny, [SMALL], tmp_path / "instances.json")
    extra = []
    if vocab == "conflicting":
        (tmp_path / "classes.txt").write_text("dog\nperson\n")  # dog 1, person 2
        extra = ["--vocab", str(tmp_path / "classes.txt")]
    elif vocab:
        extra = ["--vocab", vocab]
    out = tmp_path / "out"
    proc = _cli("annotate", str(folder), "--out", str(out), "--boxes", str(boxes), "--clip", "none", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 image: 1 annotated now" in proc.stdout
    cats = _categories(out / "photos_coco.json")
    assert cats == {"person": 1, "dog": 18, "potted plant": 64, "tv": 72, "teddy bear": 88}
    warnings = _id_warnings(proc)
    if vocab == "conflicting":
        assert sorted(warnings) == [
            "WARNING annotator.bulk.run: class 'dog': the --boxes file gives it id 18, --vocab classes.txt id 1; "
            "the store keeps the file's 18",
            "WARNING annotator.bulk.run: class 'person': the --boxes file gives it id 1, --vocab classes.txt id 2; "
            "the store keeps the file's 1",
        ], proc.stderr
    else:
        assert warnings == [], proc.stderr
    # a second run says nothing new and changes no id
    again = _cli("annotate", str(folder), "--out", str(out), "--boxes", str(boxes), "--clip", "none", *extra)
    assert again.returncode == 0 and _categories(out / "photos_coco.json") == cats
    assert "1 image: 0 annotated now, 1 done in an earlier run" in again.stdout


def test_a_store_that_named_a_class_before_keeps_its_id_and_says_so(engine, coco_tiny, tmp_path, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(coco_tiny / "images" / SMALL, folder / SMALL)
    boxes = load_boxes(_coco_subset(coco_tiny, [SMALL], tmp_path / "instances.json"))
    out = tmp_path / "out"
    outputs = FolderOutputs(folder, out)
    before = outputs.open_store(category_ids={"dog": 2168, "cat": 1})  # an earlier run with imagenet21k's ids
    assert before.category_id("dog") == 2168 and before.category_id("cat") == 1
    before.close()
    with caplog.at_level("WARNING", logger="annotator.bulk.run"):
        run = annotate_folder(engine, folder, out, BulkConfig(boxes=boxes), progress=False)
    cats = _categories(run.coco_path)
    assert cats["dog"] == 2168 and cats["person"] not in (1, 18)  # COCO's 1 is the store's cat
    said = [r.getMessage() for r in caplog.records if r.name == "annotator.bulk.run"]
    assert sorted(said) == [
        "class 'dog' has id 2168, not the --boxes file's 18: this folder's store gave it 2168 before this run, "
        "and ids never change; the exports use 2168",
        f"class 'person' has id {cats['person']}, not the --boxes file's 1: this folder's store gives 1 to 'cat'; "
        f"the exports use {cats['person']}",
    ]
    assert {n: cats[n] for n in ("potted plant", "tv", "teddy bear")} == {
        "potted plant": 64,
        "tv": 72,
        "teddy bear": 88,
    }


def test_a_class_keeps_one_id_across_bulk_the_page_and_every_export(sam_model, coco_tiny, tmp_path):
    """A free-text class made by a bulk run, then accepted on another image through the page's
    path (Workspace + Tabs): one category in COCO (the bulk run's id), one YOLO class index, one
    Label Studio label, on both images."""
    from annotator.engine import Engine
    from annotator.tabs import Tabs
    from annotator.vocabulary import load_vocabulary
    from annotator.workspace import Workspace

    engine = Engine(sam_model, vocabulary=load_vocabulary("imagenet21k"))  # the page's default vocabulary
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (SMALL, BIG):
        shutil.copy(coco_tiny / "images" / name, folder / name)
    per_image = tmp_path / "boxes"
    per_image.mkdir()
    data = json.loads((coco_tiny / "instances.json").read_text())
    small_id = next(im["id"] for im in data["images"] if im["file_name"] == SMALL)
    anns = [a for a in data["annotations"] if a["image_id"] == small_id]
    (per_image / f"{Path(SMALL).stem}.json").write_text(
        json.dumps([{"bbox": anns[0]["bbox"], "label": "red mug"}, {"bbox": anns[1]["bbox"], "label": "person"}])
    )
    out = tmp_path / "out"
    run = annotate_folder(engine, folder, out, BulkConfig(boxes=load_boxes(per_image)), progress=False)
    assert run.done == 2 and run.instances_per_class == {"red mug": 1, "person": 1}  # BIG: no boxes, a negative
    bulk_ids = AnnotationStore(run.store_path).categories
    assert bulk_ids["person"] == 5 and bulk_ids["red mug"] > max(engine.vocabulary.ids)  # free text: a new id

    ws = Workspace.open_folder(engine, folder, out)
    tab = Tabs(ws, prefetch=0).tab("s")
    tab.open(BIG)
    for label, box in (("red mug", [100, 100, 260, 300]), ("person", [300, 50, 420, 400])):
        tab.box(box)
        tab.accept(label)
    assert ws.store.categories == bulk_ids

    coco = json.loads(ws.export("coco").read_text())
    assert _categories(ws.export("coco")) == {"red mug": bulk_ids["red mug"], "person": 5}
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    by_image = {(files[a["image_id"]], a["category_id"]) for a in coco["annotations"]}
    assert by_image == {(k, bulk_ids[c]) for k in (SMALL, BIG) for c in ("red mug", "person")}

    data_yaml = ws.export("yolo")
    names = yaml.safe_load(data_yaml.read_text())["names"]
    index = {v: int(k) for k, v in names.items()}
    assert sorted(names.values()) == ["person", "red mug"]  # once each
    for key in (SMALL, BIG):
        lines = (data_yaml.parent / "labels" / f"{Path(key).stem}.txt").read_text().splitlines()
        assert sorted(int(ln.split()[0]) for ln in lines) == sorted(index.values())

    tasks = json.loads(ws.export("label-studio").read_text())
    assert len(tasks) == 2
    for task in tasks:
        labels = {lab for r in task["predictions"][0]["result"] for lab in r["value"].get("brushlabels", [])}
        assert labels == {"person", "red mug"}
    ws.close()
