"""Sign-in (HTTP Basic, --auth), the Host and Origin checks (DNS rebinding, cross-origin writes)
and the CORS policy, on the whole app (build_app: the API, the static files, the Gradio page)
with real MobileSAM."""

import base64
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from annotator.evaluation import farthest_interior_point
from annotator.workspace import Workspace
from app.auth import is_loopback, load_users
from app.security import allowed_hosts, host_name

from .conftest import ROOT, instance_mask


@pytest.fixture(scope="module")
def app_client(engine, coco_tiny, coco_gt, tmp_path_factory):
    from app.page import build_app

    tmp = tmp_path_factory.mktemp("security")
    folder = tmp / "photos"
    folder.mkdir()
    img_id = sorted(coco_gt.getImgIds())[0]
    shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / "a.jpg")
    ws = Workspace.open_folder(engine, folder, tmp / "out")
    ws.store.add_image("a.jpg", 10, 10)
    yield TestClient(build_app(ws, prefetch=0), base_url="http://127.0.0.1:7860"), ws
    ws.close()


def test_a_foreign_host_header_is_refused(app_client):
    http, _ = app_client
    assert http.get("/ovsam/api/state", params={"session": "t"}).status_code == 200
    assert http.get("/ovsam/api/state", params={"session": "t"}, headers={"host": "localhost:7860"}).status_code == 200
    for host in ("attacker.example", "attacker.example:7860", "127.0.0.1.attacker.example", "localhost.evil:7860"):
        r = http.post("/ovsam/api/delete", json={"ids": [1]}, headers={"host": host})
        assert r.status_code == 403 and "is not served here" in r.json()["error"], host
        assert http.get("/", headers={"host": host}).status_code == 403  # the page too
    assert http.get("/").status_code == 200


def test_writes_from_another_origin_are_refused(app_client):
    http, ws = app_client
    body = {"key": "a.jpg", "done": True}
    for origin in ("http://localhost:9999", "http://127.0.0.1:7861", "https://attacker.example", "null"):
        r = http.post("/ovsam/api/done", json=body, headers={"origin": origin})
        assert r.status_code == 403 and "may not write here" in r.json()["error"], origin
    assert ws.store.done == set()  # nothing written
    assert http.post("/ovsam/api/done", json=body, headers={"origin": "http://127.0.0.1:7860"}).status_code == 200
    assert http.post("/ovsam/api/done", json={"key": "a.jpg", "done": False}).status_code == 200  # no Origin: a script


def test_no_other_origin_may_read(app_client):
    """Gradio's own policy admitted any http://localhost:* page with credentials; the app's CORS
    policy admits none, for the API and Gradio's routes alike."""
    http, _ = app_client
    for path in ("/ovsam/api/state?session=t", "/config"):
        pre = http.options(path, headers={"origin": "http://localhost:9999", "access-control-request-method": "GET"})
        assert "access-control-allow-origin" not in pre.headers, (path, dict(pre.headers))
        got = http.get(path, headers={"origin": "http://localhost:9999"})
        assert "access-control-allow-origin" not in got.headers, path


def test_allowed_hosts():
    assert host_name("[::1]:7860") == "::1" and host_name("Example.ORG:80") == "example.org"
    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts("10.0.0.5", ["annot.lab"]) == {"localhost", "127.0.0.1", "::1", "10.0.0.5", "annot.lab"}
    assert allowed_hosts("0.0.0.0") is None  # any host; the Origin check still applies
    assert allowed_hosts("0.0.0.0", ["annot.lab:7860"]) == {"localhost", "127.0.0.1", "::1", "annot.lab"}


def _basic(user: str, password: str) -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_with_users_every_request_signs_in_and_annotations_name_their_author(engine, coco_tiny, coco_gt, tmp_path):
    from app.page import build_app

    folder = tmp_path / "photos"
    folder.mkdir()
    img_id = sorted(coco_gt.getImgIds())[0]
    shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / "a.jpg")
    ann = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))[0]
    x, y = farthest_interior_point(instance_mask(coco_gt, ann))
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    users = load_users(["ana:s3cret:with:colons", "bo:pw"])
    assert users == {"ana": "s3cret:with:colons", "bo": "pw"}
    http = TestClient(build_app(ws, prefetch=0, users=users), base_url="http://127.0.0.1:7860")
    try:
        for path in ("/", "/config", "/ovsam/api/state?session=t", "/ovsam/static/js/main.js"):
            r = http.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith('Basic realm="ovsam-annotator"')
        for bad in (_basic("ana", "wrong"), _basic("eve", "pw"), {"authorization": "Basic !!notbase64"}, {}):
            r = http.post("/ovsam/api/delete", json={"ids": [1]}, headers=bad)
            assert r.status_code == 401 and "sign in" in r.json()["error"]
        assert http.get("/", headers=_basic("ana", "s3cret:with:colons")).status_code == 200
        me = _basic("bo", "pw")
        post = lambda path, **b: http.post(f"/ovsam/api/{path}", json={"session": "t", **b}, headers=me)  # noqa: E731
        assert post("open", key="a.jpg").status_code == 200
        post("click", x=x, y=y)
        accepted = post("accept", label="thing").json()["annotation"]
        assert ws.store.annotations[accepted["id"]].author == "bo"
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "nobody would be asked to sign in"),
        (["--host", "192.168.1.7", "--auth", "nocolon"], "expected USER:PASSWORD"),
        (["--auth", "a:1", "--auth", "a:2"], "named twice"),
        (["--auth-file", "/nonexistent/users.txt"], "No such file"),
    ],
)
def test_the_launcher_refuses_to_serve_the_network_without_users(args, message):
    out = subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("annot.lab")
