"""The page's HTTP routes: every body validated by its pydantic model before anything runs, the
OpenAPI document naming every route's models, and real answers fitting the response models
(real MobileSAM on COCO photos, through FastAPI's test client)."""

import shutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from annotator.evaluation import farthest_interior_point
from annotator.workspace import Workspace

from .conftest import instance_mask


@pytest.fixture()
def client(engine, coco_tiny, coco_gt, tmp_path):
    from app.api import PageAPI
    from app.routes import add_routes

    folder = tmp_path / "photos"
    folder.mkdir()
    img_id = sorted(coco_gt.getImgIds())[0]
    shutil.copy(coco_tiny / "images" / coco_gt.loadImgs(img_id)[0]["file_name"], folder / "a.jpg")
    ws = Workspace.open_folder(engine, folder, tmp_path / "out")
    app = FastAPI()
    add_routes(app, PageAPI(ws, prefetch=0))
    ann = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))[0]
    yield TestClient(app), ws, farthest_interior_point(instance_mask(coco_gt, ann))
    ws.close()


def test_openapi_names_every_route_and_its_models():
    from app import schemas
    from app.routes import POSTS, PREFIX, add_routes

    app = FastAPI()
    add_routes(app, None)
    doc = app.openapi()
    for path, request, response, _ in POSTS:
        op = doc["paths"][PREFIX + path]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(request.__name__)
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(response.__name__)
        assert op["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
    for path in ("state", "progress", "labels", "image"):
        assert "get" in doc["paths"][PREFIX + path]
    assert {"ClickRequest", "PromptAnswer", "FindRequest", "FindOut"} <= set(doc["components"]["schemas"])
    assert schemas.ClickRequest.model_json_schema()["required"] == ["session", "x", "y"]


def test_bad_bodies_are_refused_before_anything_runs(client):
    http, ws, _ = client
    cases = [
        ("click", {"session": "t", "y": 3}, "x: Field required"),
        ("click", {"session": "t", "x": "left", "y": 3}, "x: Input should be a valid number"),
        ("box", {"session": "t", "box": [1, 2, 3]}, "box: List should have at least 4 items"),
        ("open", {"key": "a.jpg"}, "session: Field required"),
        ("open", {"session": "x" * 101, "key": "a.jpg"}, "session: String should have at most 100 characters"),
        ("delete", {"ids": ["one"]}, "ids.0: Input should be a valid integer"),
        ("find", {"session": "t", "classes": "dog", "threshold": "high"}, "threshold: Input should be a valid number"),
    ]
    for path, body, reason in cases:
        r = http.post(f"/ovsam/api/{path}", json=body)
        assert r.status_code == 422 and reason in r.json()["error"], (path, r.json())
    assert ws.store.annotations == {} and ws.store.last_image is None  # nothing touched


def test_hostile_bodies_get_422_naming_the_field(client):
    """What a hostile tester sent (issue 27): each refused before anything runs, naming the field."""
    http, ws, _ = client
    raw = [  # bodies json.dumps would not write: NaN, a 401-digit number
        ("click", '{"session": "t", "x": NaN, "y": 3}', "x: Input should be a finite number"),
        ("click", '{"session": "t", "x": Infinity, "y": 3}', "x: Input should be a finite number"),
        ("click", '{"session": "t", "x": 1' + "0" * 400 + ', "y": 3}', "x: "),
    ]
    cases = [
        ("click", {"session": "t", "x": 1e300, "y": 3}, "x: Input should be less than or equal to 1000000"),
        ("click", {"session": "t", "x": 3, "y": 3, "positive": "false"}, "positive: Input should be a valid boolean"),
        ("box", {"session": "t", "box": [[1, 2], [3, 4], 5, 6]}, "box.0: Input should be a valid number"),
        ("done", {"key": "a.jpg", "done": "false"}, "done: Input should be a valid boolean"),
        ("done", {"key": "a.jpg", "done": 0}, "done: Input should be a valid boolean"),
        ("delete", {"ids": [1.5]}, "ids.0: Input should be a valid integer"),
        ("delete", {"ids": [1.0]}, "ids.0: Input should be a valid integer"),
        ("delete", {"ids": ["1"]}, "ids.0: Input should be a valid integer"),
        ("delete", {"ids": list(range(10_001))}, "ids: List should have at most 10000 items"),
        ("find_accept", {"session": "t", "indices": [True]}, "indices.0: Input should be a valid integer"),
        ("accept", {"session": "t", "label": "x" * 201}, "label: String should have at most 200 characters"),
        (
            "accept",
            {"session": "t", "label": "bell\x07"},
            "label: Value error, a label cannot hold the control character U+0007",
        ),
        (
            "relabel",
            {"ids": [1], "label": "nul\x00"},
            "label: Value error, a label cannot hold the control character U+0000",
        ),
        (
            "merge",
            {"ids": [1, 2], "label": "a\nb"},
            "label: Value error, a label cannot hold the control character U+000A",
        ),
        ("find", {"session": "t", "classes": ["dog", "x" * 201]}, "classes"),
        ("find", {"session": "t", "classes": "dog", "threshold": "NaN"}, "threshold: Input should be a finite number"),
    ]
    answers = [(p, http.post(f"/ovsam/api/{p}", content=b, headers={"content-type": "application/json"}), why)
               for p, b, why in raw] + [(p, http.post(f"/ovsam/api/{p}", json=b), why) for p, b, why in cases]  # fmt: skip
    for path, r, reason in answers:
        assert r.status_code == 422 and reason in r.json()["error"], (path, r.status_code, r.text[:300])
    big = http.post("/ovsam/api/accept", json={"session": "t", "label": "dog", "pad": "x" * (1 << 20)})
    assert big.status_code == 413 and big.json()["error"].startswith("body: at most 1048576 bytes")
    chunked = http.post(  # no Content-Length: counted as it arrives
        "/ovsam/api/delete",
        content=iter([b'{"ids": [', b"1," * 600_000, b"1]}"]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413, chunked.text
    assert ws.store.annotations == {} and ws.store.last_image is None  # nothing touched


def test_a_prompt_holds_at_most_64_points(client):
    from annotator.tabs import MAX_POINTS

    http, _ws, (x, y) = client
    post = lambda path, **body: http.post(f"/ovsam/api/{path}", json={"session": "t", **body})  # noqa: E731
    assert post("open", key="a.jpg").status_code == 200
    for i in range(MAX_POINTS):
        r = post("click", key="a.jpg", x=x + i % 8, y=y + i // 8, positive=True)
        assert r.status_code == 200, r.text
    refused = post("click", key="a.jpg", x=x, y=y)
    assert refused.status_code == 422 and "at most 64 points" in refused.json()["error"]
    assert len(post("undo").json()["prompt"]["points"]) == MAX_POINTS - 1  # undo still works
    assert post("click", key="a.jpg", x=x, y=y).status_code == 200


def test_parallel_accepts_of_one_pending_mask_store_it_once(client):
    """Four accepts of one tab at once (a retrying client, a duplicated tab): one stored, the
    others told there is nothing pending; five trials."""
    from concurrent.futures import ThreadPoolExecutor

    http, ws, (x, y) = client
    post = lambda path, **body: http.post(f"/ovsam/api/{path}", json={"session": "t", **body})  # noqa: E731
    assert post("open", key="a.jpg").status_code == 200
    with ThreadPoolExecutor(4) as pool:
        for trial in range(5):
            assert post("click", key="a.jpg", x=x, y=y).status_code == 200
            answers = list(pool.map(lambda _: post("accept", key="a.jpg", label="dog"), range(4)))
            codes = sorted(r.status_code for r in answers)
            assert codes == [200, 409, 409, 409], [r.text for r in answers]
            assert len(ws.store.for_image("a.jpg")) == trial + 1


def test_answers_fit_their_models(client):
    from app import schemas

    http, ws, (x, y) = client
    post = lambda path, **body: http.post(f"/ovsam/api/{path}", json={"session": "t", **body})  # noqa: E731
    schemas.StateOut.model_validate(http.get("/ovsam/api/state", params={"session": "t"}).json())
    schemas.OpenOut.model_validate(post("open", key="a.jpg").json())
    clicked = schemas.PromptAnswer.model_validate(post("click", key="a.jpg", x=x, y=y).json())
    assert clicked.mask is not None and clicked.area > 0 and clicked.prompt.points == [[x, y]]
    boxed = schemas.PromptAnswer.model_validate(post("box", key="a.jpg", box=[x - 40, y - 40, x + 40, y + 40]).json())
    assert boxed.prompt.box is not None
    schemas.PromptAnswer.model_validate(post("undo").json())
    accepted = schemas.AcceptOut.model_validate(post("accept", key="a.jpg", label="dog").json())
    assert accepted.annotation.label == "dog" and accepted.changed_images[0].n == 1
    assert post("accept", key="a.jpg", label="dog").status_code == 409  # the prompt was cleared
    relabelled = schemas.RelabelOut.model_validate(post("relabel", ids=[accepted.annotation.id], label="cat").json())
    assert relabelled.annotations[0].label == "cat"
    schemas.LabelsOut.model_validate(http.get("/ovsam/api/labels", params={"q": "do"}).json())
    schemas.DoneOut.model_validate(post("done", key="a.jpg", done=True).json())
    schemas.ProgressOut.model_validate(http.get("/ovsam/api/progress", params={"session": "t"}).json())
    deleted = schemas.DeleteOut.model_validate(post("delete", ids=[accepted.annotation.id]).json())
    assert deleted.deleted == [accepted.annotation.id] and ws.store.annotations == {}
    missing = post("delete", ids=[12345])
    assert missing.status_code == 404 and schemas.ErrorOut.model_validate(missing.json()).error == "no annotation 12345"
