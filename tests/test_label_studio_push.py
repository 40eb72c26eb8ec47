"""push-label-studio against a real Label Studio 1.23 server on localhost.

The server runs from its own virtual environment (``.cache/label-studio-1.23``, made on first
use; ``LABEL_STUDIO_BIN`` points at another install) with a fresh database, and we authenticate
the way its users do in 1.23, where legacy tokens are off: log in, create a personal access
token.  Three COCO photos are annotated by MobileSAM from their ground-truth boxes, pushed, and
read back through the API: every image byte, mask and label must have arrived intact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from annotator.bulk import BulkConfig, annotate_folder, load_boxes
from annotator.evaluation import mask_iou
from annotator.formats.label_studio import LabelStudioPushError, PushConfig, connect, labeling_config, push_folder
from annotator.masks import decode_rle, polygons_to_mask
from annotator.store import AnnotationStore

from .conftest import ROOT

LABEL_STUDIO = "label-studio~=1.23.0"
EMAIL, PASSWORD = "reviewer@example.com", "not-a-real-secret-42"
N_PHOTOS = 3


@dataclass
class Server:
    url: str
    token: str  # personal access token
    document_root: Path  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT


def _label_studio_bin() -> Path:
    if os.environ.get("LABEL_STUDIO_BIN"):
        return Path(os.environ["LABEL_STUDIO_BIN"])
    venv = ROOT / ".cache" / "label-studio-1.23"
    exe = venv / "bin" / "label-studio"
    if not exe.exists():  # its dependencies are not ours: a venv of its own
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LABEL_STUDIO], check=True, timeout=1200)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _personal_access_token(url: str) -> str:
    """What a user does: log in, then Account & Settings → Personal Access Token → Create."""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as web:
        web.get("/user/login/")
        form = {"email": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": web.cookies["csrftoken"]}
        web.post("/user/login/", data=form).raise_for_status()
        response = web.post("/api/token/", headers={"X-CSRFToken": web.cookies["csrftoken"]})
        response.raise_for_status()
        return response.json()["token"]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    exe = _label_studio_bin()
    root = tmp_path_factory.mktemp("label_studio")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(root / "data"),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root),
    }
    log = (root / "server.log").open("wb")
    cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    cmd += ["--username", EMAIL, "--password", PASSWORD]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"label-studio exited ({proc.returncode}):\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio not up after 300 s:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(2)
        yield Server(url, _personal_access_token(url), root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def annotated(engine, coco_tiny, coco_gt, label_studio):
    """3 COCO photos (one in ``sub dir/``) under the server's document root, annotated by
    MobileSAM from their ground-truth boxes with their labels; returns (folder, store)."""
    folder = label_studio.document_root / "photos"
    (folder / "sub dir").mkdir(parents=True)
    ids = sorted(coco_gt.getImgIds())[:N_PHOTOS]
    for i, img_id in enumerate(ids):
        name = coco_gt.loadImgs(img_id)[0]["file_name"]
        shutil.copy(coco_tiny / "images" / name, folder / ("sub dir" if i == 0 else "") / name)
    gt = json.loads((coco_tiny / "instances.json").read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] in ids]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids and not a["iscrowd"]]
    boxes = label_studio.document_root / "boxes.json"
    boxes.write_text(json.dumps(gt))
    out = label_studio.document_root / "exports"
    summary = annotate_folder(engine, folder, out, BulkConfig(boxes=load_boxes(boxes)), progress=False)
    store = AnnotationStore(summary.store_path)
    assert len(store.images) == N_PHOTOS and len(store.annotations) > 10
    return folder, store


def _tasks(client, project_id: int) -> list:
    return list(client.tasks.list(project=project_id, fields="all"))


def _image_bytes(client, url: str) -> bytes:
    response = client._client_wrapper.httpx_client.request(url.lstrip("/"), method="GET")
    assert response.status_code == 200, url
    return response.content


def _journal(path: Path) -> dict[str, int]:
    return {r["key"]: r["task"] for r in map(json.loads, path.read_text().splitlines()) if r["prediction"]}


def test_legacy_tokens_are_off_and_the_personal_access_token_works(label_studio):
    client = connect(label_studio.url, label_studio.token)
    assert client.users.whoami().email == EMAIL
    assert client.jwt_settings.get().legacy_api_tokens_enabled is False


def test_upload_push_arrives_intact_and_resumes_after_a_failure(label_studio, annotated, tmp_path, monkeypatch):
    from label_studio_sdk.converter.brush import decode_rle as decode_brush
    from label_studio_sdk.predictions.client import PredictionsClient

    folder, store = annotated
    config = PushConfig(url=label_studio.url, api_key=label_studio.token, project_title="photos brush upload")
    journal = tmp_path / "push.jsonl"

    real_create, calls = PredictionsClient.create, []

    def network_drops_on_the_second_prediction(self, **kwargs):
        calls.append(kwargs["task"])
        if len(calls) == 2:
            raise httpx.ConnectError("network down")
        return real_create(self, **kwargs)

    monkeypatch.setattr(PredictionsClient, "create", network_drops_on_the_second_prediction)
    with pytest.raises(LabelStudioPushError, match="network down"):
        push_folder(store, folder, config, journal)
    monkeypatch.undo()

    resumed = push_folder(store, folder, config, journal)
    assert not resumed.created_project and resumed.already_pushed == 1
    assert resumed.tasks_created == 1 and resumed.predictions_created == 2  # the dropped one is finished
    client = connect(label_studio.url, label_studio.token)
    tasks = {t.id: t for t in _tasks(client, resumed.project_id)}
    assert len(tasks) == N_PHOTOS  # nothing twice
    task_of = _journal(journal)
    assert sorted(task_of) == sorted(store.images)
    n = 0
    for key, task_id in task_of.items():
        task = tasks[task_id]
        assert _image_bytes(client, task.data["image"]) == (folder / key).read_bytes()
        (pred,) = task.predictions
        anns = store.for_image(key)
        ious = [a.predicted_iou for a in anns]  # box prompts with given labels: the score is mask quality
        assert pred.model_version == "ovsam-annotator" and pred.score == pytest.approx(np.mean(ious))
        assert len(pred.result) == len(anns)
        for region in pred.result:
            ann = store.annotations[int(region["id"][1:])]
            assert ann.image == key and region["value"]["brushlabels"] == [ann.label]
            assert region["score"] == pytest.approx(ann.predicted_iou)
            h, w = region["original_height"], region["original_width"]
            mask = decode_brush(region["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
            assert np.array_equal(mask, decode_rle(ann.rle))
            n += 1
    assert n == len(store.annotations)

    again = push_folder(store, folder, config, journal)
    assert again.already_pushed == N_PHOTOS and again.tasks_created == again.predictions_created == 0
    deleted_key = sorted(task_of)[0]
    client.tasks.delete(id=task_of[deleted_key])  # a reviewer deletes a task: the next push restores it
    restored = push_folder(store, folder, config, journal)
    assert restored.tasks_created == 1 and restored.already_pushed == N_PHOTOS - 1
    assert len(_tasks(client, resumed.project_id)) == N_PHOTOS


def test_cli_local_files_polygons_from_environment(label_studio, annotated, tmp_path):
    folder, store = annotated
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root),
    }
    out = store.path.parent
    cmd = [sys.executable, "-m", "annotator", "push-label-studio", str(folder), "--out", str(out)]
    cmd += ["--images", "local-files", "--regions", "polygon", "--project", "photos polygons local"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    url_line = next(line for line in proc.stdout.splitlines() if line.startswith("project URL: "))
    project_id = int(url_line.split("/projects/")[1].split("/")[0])
    assert url_line == f"project URL: {label_studio.url}/projects/{project_id}/data"

    client = connect(label_studio.url, label_studio.token)
    tasks = _tasks(client, project_id)
    assert len(tasks) == N_PHOTOS
    ious = []
    for task in tasks:
        assert task.data["image"].startswith("/data/local-files/?d=photos/")
        key = next(k for k in store.images if task.data["image"].endswith(k.replace(" ", "%20")))
        assert _image_bytes(client, task.data["image"]) == (folder / key).read_bytes()
        (pred,) = task.predictions
        parts: dict[int, list] = {}
        for region in pred.result:
            ann = store.annotations[int(region["id"][1:].split("p")[0])]
            assert ann.image == key and region["value"]["polygonlabels"] == [ann.label]
            assert region["meta"]["text"][0].startswith(f"by {ann.author}, ")  # who made it, kept by the server
            h, w = region["original_height"], region["original_width"]
            parts.setdefault(ann.id, []).append(
                [v for x, y in region["value"]["points"] for v in (x * w / 100, y * h / 100)]
            )
        assert sorted(parts) == sorted(a.id for a in store.for_image(key))
        ious += [mask_iou(polygons_to_mask(p, h, w), decode_rle(store.annotations[i].rle)) for i, p in parts.items()]
    assert np.mean(ious) > 0.99

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and f"{N_PHOTOS} already there" in rerun.stdout
    assert len(_tasks(client, project_id)) == N_PHOTOS


def test_reused_project_gets_missing_classes_and_bad_setups_are_refused(label_studio, annotated, tmp_path):
    from label_studio_sdk.label_interface import LabelInterface

    folder, store = annotated
    client = connect(label_studio.url, label_studio.token)
    labels = sorted({a.label for a in store.annotations.values()})
    assert "person" in labels and len(labels) > 1
    project = client.projects.create(title="team project", label_config=labeling_config(["person", "zebra"]))
    summary = push_folder(
        store, folder, PushConfig(label_studio.url, label_studio.token, project_id=project.id), tmp_path / "j.jsonl"
    )
    assert not summary.created_project and summary.labels_added == [x for x in labels if x != "person"]
    control = LabelInterface(client.projects.get(id=project.id).label_config).get_control("label")
    assert set(control.labels) == set(labels) | {"zebra"}  # added, nothing removed

    text_project = client.projects.create(
        title="a text project",
        label_config='<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>',
    )
    config = PushConfig(label_studio.url, label_studio.token, project_id=text_project.id)
    with pytest.raises(LabelStudioPushError, match="lacks"):
        push_folder(store, folder, config, tmp_path / "j2.jsonl")
    assert len(_tasks(client, text_project.id)) == 0
    elsewhere = PushConfig(label_studio.url, label_studio.token, "x y z", images="local-files", document_root=tmp_path)
    with pytest.raises(LabelStudioPushError, match="not inside the local-files document root"):
        push_folder(store, folder, elsewhere, tmp_path / "j4.jsonl")
    assert not [p for p in client.projects.list(title="x y z") if p.title == "x y z"]  # refused before any change
    with pytest.raises(LabelStudioPushError, match="refused the token"):
        push_folder(store, folder, PushConfig(label_studio.url, "not-a-token", "x y z"), tmp_path / "j3.jsonl")
