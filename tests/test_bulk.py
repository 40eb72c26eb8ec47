"""Bulk auto-annotation: resumable after a kill, bad files skipped, output equal to an uninterrupted run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from pycocotools.coco import COCO

from annotator.bulk import BulkConfig, Journal, annotate_folder, load_boxes
from annotator.store import AnnotationStore

from .conftest import ROOT

N_PHOTOS = 4
N_BOXES = 38  # the second photo gets none: a done image with nothing found, still exported


@pytest.fixture()
def photo_folder(coco_tiny, coco_gt, tmp_path):
    """4 COCO photos (one in a sub-folder), a corrupt JPEG and a zero-byte PNG; and GT boxes of 3 of them."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    ids = sorted(coco_gt.getImgIds())[:N_PHOTOS]
    for i, img_id in enumerate(ids):
        name = coco_gt.loadImgs(img_id)[0]["file_name"]
        shutil.copy(coco_tiny / "images" / name, folder / ("sub" if i == 0 else "") / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    gt = json.loads((coco_tiny / "instances.json").read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] in ids]
    boxed = [ids[0], *ids[2:]]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in boxed and not a["iscrowd"]][:N_BOXES]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(gt))
    return folder, boxes


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # a line torn by the kill
        return None


def _canonical(coco_path):
    """Export content without ids and dates: per image, sorted (label, RLE counts, bbox)."""
    data = json.loads(coco_path.read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    files = {im["id"]: im["file_name"] for im in data["images"]}
    return sorted(
        (files[a["image_id"]], cats[a["category_id"]], a["segmentation"]["counts"], tuple(a["bbox"]))
        for a in data["annotations"]
    )


def test_resume_after_interruption_equals_uninterrupted_run(engine, photo_folder, tmp_path):
    folder, boxes_path = photo_folder
    config = BulkConfig(boxes=load_boxes(boxes_path))
    whole = annotate_folder(engine, folder, tmp_path / "whole", config, progress=False)
    assert whole.done == N_PHOTOS and set(whole.skipped) == {"broken.jpg", "empty.png"}
    assert all(whole.skipped.values())  # with reasons
    assert sum(whole.instances_per_class.values()) == N_BOXES

    out = tmp_path / "resumed"
    first = annotate_folder(engine, folder, out, config, progress=False, max_images=2)
    assert first.done + len(first.skipped) == 2
    journal = Journal(next(out.glob("*.journal.jsonl")))
    with journal.path.open("a") as f:
        f.write('{"key": "sub/half-written')  # a crash mid-line
    second = annotate_folder(engine, folder, out, config, progress=False)
    assert second.resumed == first.done and second.done == N_PHOTOS
    lines = journal.path.read_text().splitlines()
    assert len([ln for ln in lines if ln.startswith('{"key": "') and ln.endswith("}")]) == N_PHOTOS + 2
    assert _canonical(second.coco_path) == _canonical(whole.coco_path)
    COCO(str(second.coco_path))  # pycocotools reads it
    # a third run has nothing left to do and changes nothing
    before = AnnotationStore(second.store_path).annotations.values()
    third = annotate_folder(engine, folder, out, config, progress=False)
    # skipped images are counted as skipped, not as done by an earlier run
    assert third.resumed == third.done == N_PHOTOS and set(third.skipped) == {"broken.jpg", "empty.png"}
    assert third.images_per_minute == 0
    assert AnnotationStore(third.store_path).annotations.values() == before


def test_flip_tta_reaches_the_bulk_export(engine, photo_folder, tmp_path):
    """``BulkConfig(flip_tta=True)``: the same boxes, each mask now from both views."""
    folder, boxes_path = photo_folder
    boxes = load_boxes(boxes_path)
    plain = annotate_folder(engine, folder, tmp_path / "plain", BulkConfig(boxes=boxes), progress=False)
    tta = annotate_folder(engine, folder, tmp_path / "tta", BulkConfig(boxes=boxes, flip_tta=True), progress=False)
    assert tta.done == plain.done == N_PHOTOS and tta.instances_per_class == plain.instances_per_class
    one, both = (json.loads(r.coco_path.read_text())["annotations"] for r in (plain, tta))
    assert len(one) == len(both) == N_BOXES
    assert [a["category_id"] for a in one] == [b["category_id"] for b in both]  # the same boxes, in order
    changed = sum(a["segmentation"]["counts"] != b["segmentation"]["counts"] for a, b in zip(one, both, strict=True))
    assert changed > N_BOXES // 2  # most masks change


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs, shared by this module's in-process Ray runs."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


MASKS_ONLY = {"clip_model": "none", "vocab": "coco", "device": "cpu"}


def test_ray_run_gives_the_single_process_output(photo_folder, tmp_path, local_ray):
    from annotator.bulk import RayConfig
    from annotator.engine import EngineConfig, build_engine

    folder, boxes_path = photo_folder
    config = BulkConfig(boxes=load_boxes(boxes_path))
    engine = build_engine(EngineConfig(**MASKS_ONLY))  # the actors' engine: the CPU default, its precisions
    single = annotate_folder(engine, folder, tmp_path / "single", config, progress=False)

    def on_ray_run():
        return annotate_folder(
            None,
            folder,
            tmp_path / "ray",
            config,
            progress=False,
            ray=RayConfig(),
            engine_config=EngineConfig(**MASKS_ONLY),
        )

    on_ray = on_ray_run()
    assert on_ray.done == N_PHOTOS and on_ray.skipped == single.skipped  # the same reasons
    assert "corrupt" in on_ray.skipped["broken.jpg"] and "empty" in on_ray.skipped["empty.png"]
    assert _canonical(on_ray.coco_path) == _canonical(single.coco_path)
    journal = Journal(tmp_path / "ray" / "photos.journal.jsonl")
    lines = journal.path.read_text().splitlines()
    outcomes = journal.read()
    assert len(lines) == len(outcomes) == N_PHOTOS + 2  # one line per image
    assert all(o.seconds > 0 for o in outcomes.values())
    # run again on Ray: everything is in the journal, nothing is sent to the cluster
    again = on_ray_run()
    assert again.resumed == N_PHOTOS and again.skipped == single.skipped and again.images_per_minute == 0


def test_ray_actors_that_cannot_load_the_models_stop_the_run_with_the_reason(photo_folder, tmp_path, local_ray):
    from annotator.bulk import RayConfig
    from annotator.engine import EngineConfig

    folder, _ = photo_folder
    missing = tmp_path / "no_such_weights.pt"
    engine_config = EngineConfig(**MASKS_ONLY, sam_checkpoint=str(missing))
    with pytest.raises(RuntimeError, match=r"no_such_weights\.pt"):
        annotate_folder(None, folder, tmp_path / "out", progress=False, ray=RayConfig(), engine_config=engine_config)
    assert not (tmp_path / "out" / "photos_coco.json").exists()


def test_actor_plan_follows_the_cluster_resources():
    from annotator.bulk.ray_runner import ACTOR_MEMORY, RayConfig, plan_actors
    from annotator.engine import EngineConfig

    auto, plain = EngineConfig(), RayConfig()
    gpus = plan_actors({"CPU": 32, "GPU": 4, "memory": 100 * ACTOR_MEMORY}, plain, auto)
    assert (gpus.actors, gpus.num_gpus, gpus.device, gpus.decode_cpus) == (4, 1, "cuda", 1)
    shared = plan_actors({"CPU": 32, "GPU": 4, "memory": 100 * ACTOR_MEMORY}, RayConfig(actors=12), auto)
    assert (shared.actors, shared.num_gpus) == (12, 0.3333)  # 3 per GPU, within Ray's 4 decimals
    cpus = plan_actors({"CPU": 16, "memory": 100 * ACTOR_MEMORY}, plain, auto)
    assert (cpus.actors, cpus.num_cpus, cpus.threads, cpus.device, cpus.decode_cpus) == (16, 1, 1, "cpu", 0)
    fat = plan_actors({"CPU": 16, "memory": 100 * ACTOR_MEMORY}, RayConfig(cpus_per_actor=4), auto)
    assert (fat.actors, fat.num_cpus, fat.threads) == (4, 4, 4)
    assert plan_actors({"CPU": 16, "memory": 5.5 * ACTOR_MEMORY}, plain, auto).actors == 5  # memory bounds it
    assert plan_actors({"CPU": 8, "GPU": 2, "memory": 1e12}, plain, EngineConfig(device="cpu")).device == "cpu"
    assert plan_actors({"CPU": 8, "memory": 1e12}, RayConfig(actors=3), auto).actors == 3
    with pytest.raises(ValueError, match="no GPUs"):
        plan_actors({"CPU": 8, "memory": 1e12}, plain, EngineConfig(device="cuda"))


def _annotate_cmd(folder, out, boxes_path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "annotator", "annotate", str(folder), "--out", str(out),
            "--boxes", str(boxes_path), "--clip", "none", *extra]  # fmt: skip


def _kill_once_journalled(cmd: list[str], journal, lines: int = 2) -> None:
    """Start ``cmd`` and SIGKILL it once ``journal`` holds ``lines`` lines."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= lines:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def _rerun_finishes(cmd: list[str], out, journal) -> None:
    """Run ``cmd`` again: every image journalled once, the COCO export complete."""
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"\n{N_PHOTOS + 2} images: " in done.stdout and "skipped broken.jpg: " in done.stdout
    assert "2 skipped (unreadable: broken.jpg, empty.png; fix them and run again, or --retry-skipped)" in done.stdout
    coco = COCO(str(out / "photos_coco.json"))
    assert len(coco.getImgIds()) == N_PHOTOS and len(coco.getAnnIds()) == N_BOXES
    keys = [item["key"] for item in map(_parse, journal.read_text().splitlines()) if item]
    assert len(keys) == len(set(keys)) == N_PHOTOS + 2  # nothing lost, nothing done twice


def test_cli_killed_halfway_then_rerun(photo_folder, tmp_path):
    folder, boxes_path = photo_folder
    out = tmp_path / "out"
    journal = out / "photos.journal.jsonl"
    cmd = _annotate_cmd(folder, out, boxes_path)
    _kill_once_journalled(cmd, journal)
    assert not (out / "photos_coco.json").exists()
    _rerun_finishes(cmd, out, journal)

    # the exports of what was annotated
    import supervision as sv

    for fmt in ("yolo", "coco-panoptic", "label-studio"):
        cmd = [sys.executable, "-m", "annotator", "export", str(folder), "--out", str(out), "--format", fmt]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    yolo = out / "photos_yolo"
    ds = sv.DetectionDataset.from_yolo(
        str(yolo / "images"), str(yolo / "labels"), str(yolo / "data.yaml"), force_masks=True
    )
    assert len(ds) == N_PHOTOS and sum(len(det) for _, _, det in ds) == N_BOXES
    panoptic = json.loads((out / "photos_panoptic.json").read_text())
    assert len(panoptic["images"]) == len(panoptic["annotations"]) == N_PHOTOS  # the box-less photo: all void
    tasks = json.loads((out / "photos_label_studio.json").read_text())
    assert len(tasks) == N_PHOTOS and sum(len(t["predictions"][0]["result"]) for t in tasks) == N_BOXES
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=photos/")


def test_cli_on_ray_killed_then_rerun(photo_folder, tmp_path):
    """The driver is SIGKILLed while its local Ray annotates; the rerun on Ray finishes the rest."""
    folder, boxes_path = photo_folder
    out = tmp_path / "out"
    journal = out / "photos.journal.jsonl"
    cmd = _annotate_cmd(folder, out, boxes_path, "--ray")
    _kill_once_journalled(cmd, journal)
    before = len(journal.read_text().splitlines())
    assert 2 <= before < N_PHOTOS + 2
    _rerun_finishes(cmd, out, journal)


def test_a_failing_image_is_reported_then_retried_and_bad_boxes_are_skipped(
    engine, photo_folder, tmp_path, monkeypatch
):
    import annotator.bulk.step as step

    folder, boxes_path = photo_folder
    boxes = load_boxes(boxes_path)
    first_key = sorted(boxes)[0]
    boxes[first_key] = [*boxes[first_key], {"bbox": [5000, 5000, 10, 10], "label": "outside"}]
    config = BulkConfig(boxes=boxes)
    real = step.annotate_image

    def flaky(eng, image, key, cfg):
        if key.endswith(first_key):
            raise RuntimeError("out of memory (simulated)")
        return real(eng, image, key, cfg)

    monkeypatch.setattr(step, "annotate_image", flaky)
    broken = annotate_folder(engine, folder, tmp_path / "out", config, progress=False)
    failed = [k for k, why in broken.skipped.items() if "RuntimeError" in why]
    assert len(failed) == 1 and failed[0].endswith(first_key) and broken.done == N_PHOTOS - 1
    monkeypatch.setattr(step, "annotate_image", real)
    fixed = annotate_folder(engine, folder, tmp_path / "out", config, progress=False)
    assert fixed.done == N_PHOTOS and fixed.resumed == N_PHOTOS - 1
    assert sum(fixed.instances_per_class.values()) == N_BOXES and "outside" not in fixed.instances_per_class


def test_the_local_and_the_ray_runner_have_one_signature():
    """``annotate_folder`` only picks a runner: both take the same arguments and give outcomes."""
    import inspect

    from annotator.bulk import LocalRunner, RayRunner

    local, on_ray = inspect.signature(LocalRunner.run), inspect.signature(RayRunner.run)
    assert list(local.parameters) == list(on_ray.parameters) == ["self", "folder", "keys", "config"]
    assert local.return_annotation == on_ray.return_annotation == "Iterator[ImageOutcome]"
