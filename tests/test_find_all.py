"""Find all (text prompts): the selection rule on constructed embeddings, the real path on COCO
photos with a tiny random CLIP (engine, bulk, page API, eval), and the message without CLIP."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from annotator.bulk import BulkConfig, annotate_folder
from annotator.everything.pipeline import EverythingConfig
from annotator.masks import rle_iou
from annotator.text_prompts import LabelsUnavailable, TextQueryClassifier, parse_classes, resolve_classes
from annotator.vocabulary import Vocabulary, load_vocabulary

PATCHES = EverythingConfig(method="patches")  # one instance per SAM patch: the rule is seen per region


def _vocab() -> Vocabulary:
    return Vocabulary(
        "toy",
        ("car", "sedan", "person", "dog", "tree"),
        (("car", "automobile"), ("sedan",), ("person", "human"), ("dog",), ("tree",)),
        (3, 4, 1, 18, 50),
        (True, True, True, True, False),
    )


def _unit(*parts: tuple[int, float], dim: int = 8) -> torch.Tensor:
    v = torch.zeros(dim)
    for axis, w in parts:
        v[axis] = w
    return v / v.norm()


def test_parse_classes_from_text_and_file(tmp_path):
    assert parse_classes(" car,person ,, Car, traffic   light") == ["car", "person", "traffic light"]
    listed = tmp_path / "classes.txt"
    listed.write_text("# what to find\ncar\nperson, dog\n\n")
    assert parse_classes(str(listed)) == ["car", "person", "dog"]
    # a vocabulary file, as the page's --classes reads it: ids and synonyms are not class names
    ids = tmp_path / "ids.txt"
    ids.write_text("1:person\n7: dog,doggo\n")
    assert parse_classes(str(ids)) == ["person", "dog"]
    with pytest.raises(ValueError, match="at least one class"):
        parse_classes(" , ")


def test_names_resolve_to_the_vocabulary_or_free_text():
    vocab = _vocab()
    car, auto, giraffe, tree = resolve_classes(["Car", "automobile", "giraffe", "tree"], vocab)
    assert (car.name, car.vocab_indices, car.category_id) == ("car", (0,), 3)
    assert (auto.name, auto.vocab_indices, auto.category_id) == ("automobile", (0,), 51)  # a synonym: the user's
    # word (a new category after the vocabulary's largest id, 50), car's text embedding
    assert (giraffe.name, giraffe.vocab_indices, giraffe.category_id, giraffe.isthing) == ("giraffe", (), 52, True)
    assert not tree.isthing
    crane = load_vocabulary("imagenet21k").lookup("crane")
    assert len(crane) == 2  # both homonyms leave the background


def test_selection_rule_on_constructed_embeddings():
    """Text embeddings on orthogonal axes; regions built so that the outcome is known."""
    vocab = _vocab()
    vocab_text = torch.stack([_unit((k, 1.0)) for k in range(5)])  # car, sedan, person, dog, tree on axes 0-4
    named = resolve_classes(["car", "person", "giraffe"], vocab)
    named_text = torch.stack([vocab_text[0], vocab_text[2], _unit((5, 1.0))])  # giraffe: free text on axis 5
    regions = torch.stack(
        [
            _unit((0, 1.0)),  # a car: car wins
            _unit((0, 0.7), (1, 0.714)),  # a car that sedan outranks: p(car) = 1 / (1 + e^1.4) = 0.198
            _unit((3, 1.0)),  # a dog: background
            _unit((5, 1.0)),  # a giraffe (free text) wins
            torch.zeros(8),  # an empty region
        ]
    )
    rule = TextQueryClassifier(named, named_text, vocab_text)
    full = rule.distribution(regions)
    assert full.shape == (5, 3 + 5)
    assert torch.allclose(full[:4].sum(1), torch.ones(4)) and not full[4].any()
    assert not full[:, 3 + 0].any() and not full[:, 3 + 2].any()  # car and person are not their own background
    p = rule.probs(regions)
    assert p.shape == (5, 3)
    assert p[0].argmax() == 0 and p[0, 0] > 0.99
    assert not p[1].any() and not p[2].any() and not p[4].any()
    assert p[3].argmax() == 2 and p[3, 2] > 0.99
    # the threshold keeps the outranked car, not the dog
    assert 0.19 < float(full[1, 0]) < 0.21
    low = TextQueryClassifier(named, named_text, vocab_text, threshold=0.15).probs(regions)
    assert low[1, 0] == pytest.approx(float(full[1, 0])) and not low[2].any()
    assert not TextQueryClassifier(named, named_text, vocab_text, threshold=0.25).probs(regions)[1].any()
    # with no background, every non-empty region takes its best named class
    alone = TextQueryClassifier(named, named_text, None).probs(regions)
    assert alone[:4].any(dim=1).all() and not alone[4].any()
    with pytest.raises(ValueError, match="threshold"):
        TextQueryClassifier(named, named_text, vocab_text, threshold=1.5)


@pytest.fixture(scope="module")
def coco_engine(sam_model, tiny_clip_factory):
    """MobileSAM + a tiny random CLIP over COCO's 80 classes (text embeddings by its text tower)."""
    from annotator.engine import Engine

    return Engine(sam_model, tiny_clip_factory(), load_vocabulary("coco"))


@pytest.fixture(scope="module")
def photo(coco_image):
    return coco_image[0]


def test_find_all_reuses_patches_embeds_free_text_once_and_follows_the_rule(coco_engine, photo, monkeypatch):
    import annotator.everything.pipeline as pipeline

    emb = coco_engine.embed(photo)
    result = coco_engine.everything(emb, PATCHES)
    assert coco_engine.is_segmented(emb, PATCHES)

    def no_sam(*args, **kwargs):
        raise AssertionError("SAM ran again on a segmented image")

    monkeypatch.setattr(pipeline, "generate_patches", no_sam)
    encoded = []
    encode_texts = coco_engine.clip.encode_texts
    monkeypatch.setattr(
        coco_engine.clip, "encode_texts", lambda texts, **kw: encoded.append(texts) or encode_texts(texts, **kw)
    )
    classes = ["person", "dog", "zebra crossing"]
    everyone = coco_engine.find_all(emb, classes, threshold=0.0, config=PATCHES)
    winners = coco_engine.find_all(emb, classes, config=PATCHES)
    assert len(encoded) == 1 and all("zebra crossing" in t for t in encoded[0])  # free text: embedded once
    assert len(everyone) == len(result.patches)  # threshold 0: every region takes a named class
    assert set(everyone.class_names) <= set(classes) and ((everyone.scores > 0) & (everyone.scores <= 1)).all()
    # winners only: exactly the patches whose best named class beats every other COCO class
    seg = coco_engine.embeddings.get(emb.digest).segmented
    query = coco_engine.text_query(classes)
    full = query.distribution(seg.dense)
    expected = torch.nonzero(full[:, :3].max(1).values > full[:, 3:].max(1).values).flatten().tolist()
    assert sorted(i for (i,) in winners.data["patches"]) == sorted(expected)
    assert all(p == {"everything": "patches", "classes": classes} for p in winners.data["prompt"])
    assert len(winners) < len(everyone)


def test_without_clip_find_all_says_why(engine, photo):
    with pytest.raises(LabelsUnavailable, match=r"needs CLIP.*no CLIP model loaded"):
        engine.find_all(engine.embed(photo), ["person"])


@pytest.fixture()
def two_photos(coco_tiny, coco_gt, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for img_id in sorted(coco_gt.getImgIds())[:2]:
        name = coco_gt.loadImgs(img_id)[0]["file_name"]
        shutil.copy(coco_tiny / "images" / name, folder / name)
    return folder


def test_bulk_with_classes_writes_only_those_categories(coco_engine, two_photos, tmp_path):
    from annotator.formats.coco import to_coco
    from annotator.store import AnnotationStore

    classes = ("person", "car", "giraffe crossing")
    config = BulkConfig(method="patches", classes=classes, class_threshold=0.0)  # every region named
    summary = annotate_folder(coco_engine, two_photos, tmp_path / "out", config, progress=False)
    coco = json.loads(summary.coco_path.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names.values()) == sorted(classes)
    assert names[1] == "person" and names[3] == "car" and names[91] == "giraffe crossing"  # COCO's ids, then new
    assert coco["annotations"] and {a["category_id"] for a in coco["annotations"]} <= set(names)
    assert set(summary.instances_per_class) <= set(classes)
    # a journal of these classes is not resumed for another question (its images would be skipped)
    with pytest.raises(ValueError, match="another question"):
        annotate_folder(coco_engine, two_photos, tmp_path / "out", BulkConfig(method="patches"), progress=False)
    # a declared class found nowhere is still listed
    store = AnnotationStore(tmp_path / "declared.db")
    store.meta["classes"] = ["giraffe crossing"]
    assert [c["name"] for c in to_coco(store)["categories"]] == ["giraffe crossing"]


def test_cli_classes_without_clip_or_with_boxes_exits_2(two_photos, tmp_path, capsys):
    from annotator.__main__ import main

    out = str(tmp_path / "out")
    assert main(["annotate", str(two_photos), "--out", out, "--classes", "car", "--clip", "none"]) == 2
    assert "needs CLIP" in capsys.readouterr().err
    assert main(["annotate", str(two_photos), "--out", out, "--classes", "car", "--boxes", "x.json"]) == 2
    assert not (tmp_path / "out").exists()  # nothing started


def test_page_api_finds_then_accepts_some(coco_engine, engine, two_photos, tmp_path):
    from annotator.workspace import Workspace
    from app.api import ApiError, PageAPI

    ws = Workspace.open_folder(coco_engine, two_photos, tmp_path / "out")
    try:
        api = PageAPI(ws, prefetch=0)
        key = ws.keys[0]
        api.open("tab", key)
        with pytest.raises(ApiError, match="probability") as bad:
            api.find("tab", "person", threshold=2, method="patches", key=key)
        assert bad.value.status == 422
        r = api.find("tab", "person, dog", threshold=0.0, method="patches", key=key)
        assert r["found"] and {f["label"] for f in r["found"]} <= {"person", "dog"}
        assert [c["in_vocabulary"] for c in r["classes"]] == [True, True]
        again = api.find("tab", "person, dog", threshold=0.0, method="patches", key=key)
        assert again["reused_patches"] and len(again["found"]) == len(r["found"])
        pick = [f["index"] for f in again["found"][:3]]
        stored = api.find_accept("tab", pick, key=key)
        assert [a["label"] for a in stored["annotations"]] == [again["found"][i]["label"] for i in range(3)]
        assert len(ws.store.for_image(key)) == 3
        with pytest.raises(ApiError, match="already accepted"):
            api.find_accept("tab", pick[:1], key=key)
        third = api.find("tab", "person, dog", threshold=0.0, method="patches", key=key)  # the stored 3 are not offered
        assert third["already_annotated"] >= 3 and len(third["found"]) == len(r["found"]) - third["already_annotated"]
        offered = [f["rle"] for f in third["found"]]
        assert rle_iou([a.rle for a in ws.store.for_image(key)], offered).max() < 0.9
        # a find-all accept is one undoable change: undo removes the three, redo brings them back
        undone = api.travel(key, "undo")
        assert undone["kind"] == "add" and sorted(undone["removed"]) == sorted(a["id"] for a in stored["annotations"])
        assert ws.store.for_image(key) == []
        assert len(api.travel(key, "redo")["annotations"]) == 3 and len(ws.store.for_image(key)) == 3
    finally:
        ws.close()
    masks_only = Workspace.open_folder(engine, two_photos, tmp_path / "out2")
    try:
        api = PageAPI(masks_only, prefetch=0)
        assert "needs CLIP" in api.state("t")["find_unavailable"]
        api.open("t", masks_only.keys[0])
        with pytest.raises(ApiError, match="needs CLIP") as no_clip:
            api.find("t", "person")
        assert no_clip.value.status == 409
    finally:
        masks_only.close()


def test_per_class_ap_and_eval_of_find_all(coco_engine, coco_tiny, coco_gt):
    from annotator.evaluation import evaluate_find_all, per_class_ap

    img_ids = sorted(coco_gt.getImgIds())[:3]
    person, car = coco_gt.getCatIds(catNms=["person"])[0], coco_gt.getCatIds(catNms=["car"])[0]
    gt = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_ids, catIds=[person], iscrowd=False))
    perfect = [
        {"image_id": a["image_id"], "category_id": person, "segmentation": coco_gt.annToRLE(a), "score": 1.0}
        for a in gt
    ]
    ap = per_class_ap(coco_gt, perfect, img_ids, [person, car])
    assert ap[person] == pytest.approx(100.0)
    assert ap[car] in (None, 0.0)  # no detection of cars: 0 where there are cars, None where none
    scores = evaluate_find_all(
        coco_engine,
        coco_tiny / "images",
        coco_tiny / "instances.json",
        ["person"],
        limit=1,
        config=PATCHES,
        progress=False,
    )
    assert scores["images"] == 1 and 0.0 <= scores["AP person"] <= 100.0 and "random" in scores["note"]
    with pytest.raises(ValueError, match="not categories"):
        evaluate_find_all(
            coco_engine, coco_tiny / "images", coco_tiny / "instances.json", ["giraffe crossing"], limit=1
        )


def test_find_all_with_possam_keeps_only_named_scored_instances(coco_engine, photo):
    found = coco_engine.find_all(coco_engine.embed(photo), ["person"], config=EverythingConfig(method="possam"))
    assert (found.scores > 0).all() and set(found.class_names) <= {"person"}
    assert np.isfinite(found.predicted_iou).all()
