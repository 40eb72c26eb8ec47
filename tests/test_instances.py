"""The one instance container: validation, indexing, RLE / dense, and supervision both ways."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.everything.patches import PatchConfig
from annotator.instances import UNLABELLED, Instances, Source
from annotator.masks import encode_rle


def _masks() -> np.ndarray:
    m = np.zeros((3, 12, 16), bool)
    m[0, 2:5, 3:7] = True
    m[1, 6:12, 0:16] = True
    m[2, 11, 15] = True
    return m


def test_construction_validates_and_fills_defaults():
    made = Instances(_masks(), scores=[0.5, None, 0.25], source=Source.SAMCP)
    assert made.image_size == (12, 16) and len(made) == 3
    assert made.boxes.tolist() == [[3, 2, 7, 5], [0, 6, 16, 12], [15, 11, 16, 12]]
    assert list(made.class_names) == [UNLABELLED] * 3 and list(made.class_ids) == [-1] * 3
    assert made.score_or_none(1) is None and made.score_or_none(0) == 0.5
    assert made.areas.tolist() == [12, 96, 1]
    with pytest.raises(ValueError, match="3 instances"):
        Instances(_masks(), scores=[0.5, 0.1])
    with pytest.raises(ValueError, match="bool"):
        Instances(_masks().astype(np.uint8))
    with pytest.raises(ValueError, match="unknown source"):
        Instances(_masks(), source="guess")
    with pytest.raises(ValueError, match="image of"):
        Instances([encode_rle(m) for m in _masks()], image_size=(10, 10))
    with pytest.raises(ValueError, match="data"):
        Instances(_masks(), data={"points": np.zeros((2, 2))})


def test_rle_and_dense_forms_agree_and_index_alike():
    dense = Instances(_masks(), scores=[0.1, 0.9, 0.5], class_names=["a", "b", "c"], data={"k": np.arange(3)})
    rle = Instances(dense.rles(), scores=dense.scores, class_names=dense.class_names, data={"k": np.arange(3)})
    assert rle.image_size == dense.image_size and np.array_equal(rle.boxes, dense.boxes)
    assert np.array_equal(rle.dense_masks(), dense.masks) and np.array_equal(rle.areas, dense.areas)
    best = rle.sorted_by_score()
    assert list(best.class_names) == ["b", "c", "a"] and list(best.data["k"]) == [1, 2, 0]
    assert np.array_equal(best.mask(0), _masks()[1])
    both = Instances.concat([dense[[0]], rle[1:]])
    assert not both.dense and list(both.class_names) == ["a", "b", "c"]
    assert len(Instances.empty((12, 16))) == 0


def test_supervision_round_trip_on_real_patches(engine, coco_image):
    import supervision as sv

    image, _ = coco_image
    patches = engine.segment_everything(engine.embed(image), PatchConfig(points_per_side=8))
    assert len(patches) > 3
    det = patches.to_supervision()
    assert isinstance(det, sv.Detections) and len(det) == len(patches)
    assert np.array_equal(det.mask, patches.masks) and np.allclose(det.xyxy, patches.boxes)
    assert set(det.data["source"]) == {"patches"}
    # supervision's own helpers read our masks and boxes as theirs
    assert np.array_equal(sv.mask_to_xyxy(det.mask), np.maximum(patches.boxes - [0, 0, 1, 1], 0))
    back = Instances.from_supervision(det)
    assert np.array_equal(back.masks, patches.masks) and np.allclose(back.scores, patches.scores)
    assert set(back.source) == {Source.PATCHES} and np.allclose(back.data["stability"], patches.data["stability"])
    boxes_only = sv.Detections(xyxy=np.array([[2.0, 3.0, 6.0, 8.0]]), confidence=np.array([0.7]))
    one = Instances.from_supervision(boxes_only, image_size=(10, 10))
    assert one.areas.tolist() == [20] and one.source[0] is Source.IMPORTED
