"""Engine behaviour on real MobileSAM and real photos; labels with tiny random CLIPs."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.clip_regions import DEFAULT_TEMPLATES, MAX_SYNONYMS
from annotator.engine import Engine
from annotator.evaluation import farthest_interior_point, mask_iou
from annotator.instances import Source
from annotator.vocabulary import load_vocabulary, prompt_phrase

from .conftest import instance_mask


def test_prompts_outside_the_image_are_rejected(engine, coco_image):
    image, _ = coco_image
    h, w = image.shape[:2]
    emb = engine.embed(image)
    with pytest.raises(ValueError, match="outside"):
        engine.predict(emb, point_coords=np.array([[w + 10, 5]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="outside"):
        engine.predict(emb, box=np.array([w + 1, h + 1, w + 50, h + 50]))
    with pytest.raises(ValueError):
        engine.predict(emb)


def test_point_box_and_negative_points(engine, coco_image, coco_gt):
    image, anns = coco_image
    emb = engine.embed(image)
    ann = max(anns, key=lambda a: a["area"])
    gt = instance_mask(coco_gt, ann)
    x, y, bw, bh = ann["bbox"]
    px, py = farthest_interior_point(gt)

    one = engine.predict(emb, point_coords=np.array([[px, py]]), point_labels=np.array([1]))
    assert one.mask.shape == image.shape[:2] and one.mask.dtype == bool
    assert len(one.candidates.iou_predictions) == 3  # a lone point is ambiguous
    assert one.chosen == int(np.argmax(one.candidates.iou_predictions))
    assert one.mask[int(py), int(px)]

    boxed = engine.predict(emb, box=np.array([x, y, x + bw, y + bh]))
    assert len(boxed.candidates.iou_predictions) == 1
    assert mask_iou(boxed.mask, gt) > 0.6
    ys, xs = np.nonzero(boxed.mask)  # the mask stays (nearly) inside its box
    assert xs.min() >= x - 3 and xs.max() <= x + bw + 3 and ys.min() >= y - 3 and ys.max() <= y + bh + 3

    # a negative point on part of the mask removes that part
    inside = np.argwhere(one.mask & ~gt)
    if len(inside):
        ny, nx = inside[len(inside) // 2]
        neg = engine.predict(emb, point_coords=np.array([[px, py], [nx, ny]]), point_labels=np.array([1, 0]))
        assert not neg.mask[ny, nx] or neg.mask.sum() < one.mask.sum()

    refined = engine.predict(
        emb, point_coords=np.array([[px, py]]), point_labels=np.array([1]), mask_input=one.low_res_logits
    )
    assert refined.mask.shape == gt.shape and refined.low_res_logits.shape == (1, 256, 256)


def test_batched_boxes_equal_one_by_one(engine, coco_image):
    image, anns = coco_image
    emb = engine.embed(image)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    assert len(boxes) > 3
    batched = engine.predict_boxes(emb, boxes)
    assert len(batched) == len(boxes) and set(batched.source) == {Source.BOX}
    ones = [engine.predict(emb, box=box) for box in boxes]
    for k, one in enumerate(ones):
        assert abs(batched.predicted_iou[k] - one.predicted_iou) < 1e-3
        assert mask_iou(batched.mask(k), one.mask) > 0.995
        assert batched.data["prompt"][k]["box"] == pytest.approx(list(boxes[k]))
    # batches of several prompts per decoder pass (the CUDA default) decode the same logits
    several = engine.decoder.decode_boxes(emb.sam, boxes, batch_size=4)
    for k, one in enumerate(ones):
        assert abs(float(several.iou_predictions[k]) - one.predicted_iou) < 1e-3
        assert np.abs(several.low_res_logits[k] - one.low_res_logits[0]).max() < 1e-2
    h, w = image.shape[:2]
    with pytest.raises(ValueError, match="outside"):
        engine.predict_boxes(emb, np.array([boxes[0], [w + 1, h + 1, w + 50, h + 50]]))
    assert len(engine.predict_boxes(emb, np.zeros((0, 4)))) == 0


def test_image_cache_is_keyed_by_content_and_bounded(sam_model, coco_image):
    image, _ = coco_image
    eng = Engine(sam_model)
    first = eng.embed(image)
    again = eng.embed(image.copy())
    assert again.digest == first.digest and again.sam is first.sam  # same pixels: no recompute
    flipped = np.ascontiguousarray(image[:, ::-1])
    assert eng.embed(flipped).digest != first.digest and eng.cached_images == 2
    assert eng.embed(image).sam is first.sam  # switching back is a cache hit
    small = Engine(sam_model, cache_bytes=1)  # bound below one image: keeps only the last
    small.embed(image)
    small.embed(flipped)
    assert small.cached_images == 1


def _independent_ranking(clf, vocab, image: np.ndarray, grid: tuple[int, int], mask: np.ndarray) -> list[int]:
    """Class ranking recomputed from raw RN trunk features: pool first, then the attention pool's
    value/output projections (the order CLIP's head applies them), and open_clip's own
    full-context encode_text for the vocabulary."""
    visual = clf.model.visual
    hf, wf = grid
    with torch.no_grad():
        x = clf._to_tensor(image, (hf * 32, wf * 32))
        raw = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))[0]
        pos = visual.attnpool.positional_embedding[1:]
        s = round(pos.shape[0] ** 0.5)
        pos = F.interpolate(pos.reshape(1, s, s, -1).permute(0, 3, 1, 2), size=(hf, wf), mode="bicubic")[0]
        feats = (raw + pos).reshape(raw.shape[0], -1).numpy()
    weights = cv2.resize(mask.astype(np.float32), (wf, hf), interpolation=cv2.INTER_AREA).reshape(-1)
    pooled = (feats * weights).sum(1) / weights.sum()
    ap = visual.attnpool
    with torch.no_grad():
        region = ap.c_proj(ap.v_proj(torch.as_tensor(pooled[None], dtype=torch.float32)))
        region = F.normalize(region, dim=-1).numpy()[0]
        classes = []
        for syns in vocab.synonyms:
            texts = [t.format(prompt_phrase(s)) for s in syns[:MAX_SYNONYMS] for t in DEFAULT_TEMPLATES]
            emb = F.normalize(clf.model.encode_text(clf.tokenizer(texts)), dim=-1).sum(0)
            classes.append((emb / emb.norm()).numpy())
    return list(np.argsort(-(np.stack(classes) @ region)))


def test_labels_equal_an_independent_argmax(sam_model, tiny_clip_factory, coco_image, coco_gt):
    image, anns = coco_image
    vocab = load_vocabulary("coco")
    clf = tiny_clip_factory("tiny_rn_clip")
    eng = Engine(sam_model, clf, vocab, topk=5)
    assert eng.has_labels and "random weights" in eng.labels_unavailable
    emb = eng.embed(image)
    grid = tuple(emb.clip_dense.shape[1:])
    for ann in anns[:4]:
        x, y, bw, bh = ann["bbox"]
        result = eng.predict(emb, box=np.array([x, y, x + bw, y + bh]))
        assert len(result.labels) == 5
        scores = [s.score for s in result.labels]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
        assert all(vocab.ids[vocab.index_of(s.name)] == s.category_id for s in result.labels)
        # the same mask through an independent computation gives the same top label
        suggested = eng.suggest_labels(emb, result.mask)
        ranking = _independent_ranking(clf, vocab, image, grid, result.mask)
        assert suggested[0].name == vocab.names[ranking[0]]
        assert [s.name for s in suggested] == [vocab.names[i] for i in ranking[:5]]


def test_large_vocabulary_half_precision_scan_is_exact(sam_model, tiny_clip_factory, coco_image):
    """Over 2048 classes the scan runs in float16, then rescoring makes the top-k exact."""
    from annotator.classifier import HALF_SCAN_MIN_CLASSES

    image, anns = coco_image
    vocab = load_vocabulary("imagenet21k")
    assert len(vocab) > HALF_SCAN_MIN_CLASSES
    torch.manual_seed(1)
    text = F.normalize(torch.randn(len(vocab), 32), dim=-1)
    eng = Engine(sam_model, tiny_clip_factory("tiny_rn_clip"), vocab, topk=5, text_embeddings=text)
    assert eng.classifier.text_half is not None
    emb = eng.embed(image)
    for ann in anns[:4]:
        x, y, bw, bh = ann["bbox"]
        mask = eng.predict(emb, box=np.array([x, y, x + bw, y + bh])).mask
        got = eng.suggest_labels(emb, mask)
        hf, wf = emb.clip_dense.shape[1:]
        weights = cv2.resize(mask.astype(np.float32), (wf, hf), interpolation=cv2.INTER_AREA)
        region = eng.clip.mask_embeddings(emb.clip_dense, weights[None])[0]
        probs = torch.softmax(text @ region * 100.0, dim=0)
        top = torch.topk(probs, 5)
        assert [s.name for s in got] == [vocab.names[i] for i in top.indices.tolist()]
        np.testing.assert_allclose([s.score for s in got], top.values.numpy(), rtol=2e-3)


def test_convnext_whole_image_pooling_equals_clip_image_embedding(tiny_clip_factory):
    clf = tiny_clip_factory("tiny_convnext_clip", dense_size=128)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    dense = clf.dense_features(image)
    pooled = clf.mask_embeddings(dense, np.ones((1, *dense.shape[1:]), np.float32))
    x = clf._to_tensor(image, (96, 128))
    with torch.no_grad():
        direct = F.normalize(clf.model.encode_image(x), dim=-1)
    torch.testing.assert_close(pooled, direct, atol=1e-5, rtol=1e-4)


def test_text_embeddings_are_cached_on_disk(tiny_clip_factory, tmp_path, monkeypatch):
    vocab = load_vocabulary("coco")
    clf = tiny_clip_factory("tiny_rn_clip", cache_dir=tmp_path)
    first = clf.class_embeddings(vocab)
    files = list((tmp_path / "text_embeddings").glob("*.npy"))
    assert len(files) == 1 and first.shape == (80, 32)
    torch.testing.assert_close(first.norm(dim=1), torch.ones(80))

    fresh = tiny_clip_factory("tiny_rn_clip", cache_dir=tmp_path)  # same seeded weights

    def no_encoding(*a, **k):
        raise AssertionError("text was encoded again instead of read from the cache")

    monkeypatch.setattr(fresh, "encode_texts", no_encoding)
    torch.testing.assert_close(fresh.class_embeddings(vocab), first)
    with pytest.raises(AssertionError, match="encoded again"):  # other templates: another key
        fresh.class_embeddings(vocab, templates=("a {}.",))


def test_trimmed_text_encoding_equals_full_context(tiny_clip_factory):
    clf = tiny_clip_factory("tiny_rn_clip")
    texts = ["a photo of a dog.", "cat", "there is a very large green traffic light in the scene."]
    with torch.no_grad():
        full = F.normalize(clf.model.encode_text(clf.tokenizer(texts)), dim=-1)
    torch.testing.assert_close(clf.encode_texts(texts), full, atol=1e-5, rtol=1e-4)


def test_crop_mode_labels(sam_model, tiny_clip_factory, coco_image):
    image, anns = coco_image
    vocab = load_vocabulary("coco")
    eng = Engine(sam_model, tiny_clip_factory("tiny_rn_clip", mode="crop"), vocab)
    emb = eng.embed(image)
    x, y, bw, bh = anns[0]["bbox"]
    result = eng.predict(emb, box=np.array([x, y, x + bw, y + bh]))
    assert len(result.labels) == 5 and result.labels[0].name in vocab.names


def test_huge_photo(engine):
    rng = np.random.default_rng(1)
    image = np.full((6000, 8000, 3), 90, np.uint8)
    image[2000:4000, 3000:5000] = rng.integers(200, 255, (2000, 2000, 3), dtype=np.uint8)
    result = engine.predict(engine.embed(image), box=np.array([2900, 1900, 5100, 4100]))
    assert result.mask.shape == (6000, 8000)
    square = np.zeros((6000, 8000), bool)
    square[2000:4000, 3000:5000] = True
    assert mask_iou(result.mask, square) > 0.9


def test_prefetch_fills_the_cache_beside_clicks_and_is_never_computed_twice(sam_model, coco_image):
    import threading

    image, _ = coco_image
    other = np.ascontiguousarray(image[::-1])
    third = np.ascontiguousarray(image[:, ::-1])
    eng = Engine(sam_model)
    emb = eng.embed(image)
    before = eng.predict(emb, point_coords=np.array([[100, 100]]), point_labels=np.array([1]))

    encodes, release = [], threading.Event()
    real_encode = eng.decoder.encode

    def slow_encode(img):  # an encoder pass that waits until the test lets it finish
        encodes.append(img.shape)
        release.wait(60)
        return real_encode(img)

    eng.decoder.encode = slow_encode
    worker = threading.Thread(target=eng.prefetch, args=(other,))
    worker.start()
    while not encodes:
        time.sleep(0.01)
    # a click on the image in use does not wait behind the prefetch
    during = eng.predict(emb, point_coords=np.array([[100, 100]]), point_labels=np.array([1]))
    assert np.array_equal(during.mask, before.mask) and worker.is_alive()
    # opening the image being prefetched waits for that pass instead of encoding again
    opened = []
    opener = threading.Thread(target=lambda: opened.append(eng.embed(other)))
    opener.start()
    time.sleep(0.2)
    assert opener.is_alive()
    release.set()
    worker.join(60)
    opener.join(60)
    assert len(encodes) == 1 and opened[0].size == other.shape[:2]
    eng.decoder.encode = real_encode

    # prefetched entries respect the cache bound and never evict the image in use
    small = Engine(sam_model, cache_bytes=1)
    small.embed(image)
    small.prefetch(other)
    assert small.cached_images == 2 and small.is_cached(image) and small.is_cached(other)
    small.prefetch(third)
    assert small.is_cached(image) and small.is_cached(third) and not small.is_cached(other)


def test_the_mask_comes_before_the_labels(sam_model, tiny_clip_factory, coco_image):
    """embed(defer_labels=True) returns once SAM's encoder is done; a click then gets its mask
    while CLIP's dense pass still runs (held here until the test lets it finish), and its
    labels afterwards: the same as when both passes ran first."""
    import threading

    image, anns = coco_image
    vocab = load_vocabulary("coco")
    eng = Engine(sam_model, tiny_clip_factory("tiny_rn_clip"), vocab)
    x, y, bw, bh = anns[0]["bbox"]
    box = np.array([x, y, x + bw, y + bh])
    ref = eng.predict(eng.embed(image), box=box)
    eng.clear_cache()

    release, started = threading.Event(), threading.Event()
    real_dense = eng.clip.dense_features

    def held_dense(img):
        started.set()
        release.wait(60)
        return real_dense(img)

    eng.clip.dense_features = held_dense
    emb = eng.embed(image, defer_labels=True)
    assert started.wait(10) and not emb.labels_ready
    early = eng.predict(emb, box=box, wait_for_labels=False)
    assert early.labels_pending and early.labels == [] and np.array_equal(early.mask, ref.mask)
    assert not emb.labels_ready  # nothing waited for CLIP
    release.set()
    labels = eng.suggest_for(emb, early)
    assert [(s.name, s.score) for s in labels] == [(s.name, s.score) for s in ref.labels]
    assert early.labels == labels and not early.labels_pending
    assert emb.labels_ready and eng.embed(image).labels_ready  # the cached entry holds the dense map
    later = eng.predict(emb, box=box, wait_for_labels=False)  # once it is done, labels come inline
    assert not later.labels_pending and [s.name for s in later.labels] == [s.name for s in ref.labels]
    eng.clip.dense_features = real_dense
