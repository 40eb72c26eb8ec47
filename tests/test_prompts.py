"""Object-aware everything prompts: image segments and the explained-pixels rule, on COCO photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator.everything.prompts import WORK_SIDE, SegmentPromptConfig, SegmentPrompts, segment_image


@pytest.fixture(scope="module")
def photo(coco_image):
    return coco_image[0]


@pytest.fixture(scope="module")
def segments(photo):
    return segment_image(photo)


def test_each_point_lies_inside_its_own_segment(photo, segments):
    height, width = photo.shape[:2]
    n = len(segments.areas)
    assert segments.labels.shape == (height, width) and max(height, width) == WORK_SIDE  # COCO photos are 640
    assert 30 < n < 2000 and segments.areas.sum() == height * width
    cols, rows = np.floor(segments.points / segments.scale).astype(int).T
    assert np.array_equal(segments.labels[rows, cols], np.arange(n))
    # the most interior pixel: no pixel of the segment is farther from its border
    seg = int(np.argmax(segments.areas))
    inside = np.pad((segments.labels == seg).astype(np.uint8), 1)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)[1:-1, 1:-1]
    assert dist[rows[seg], cols[seg]] >= dist.max() - 1.5


def test_large_photos_are_segmented_at_the_working_size(photo, segments):
    big = cv2.resize(photo, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)
    s = segment_image(big)
    assert s.scale == pytest.approx(2.5, rel=0.01) and max(s.labels.shape) == WORK_SIDE
    assert abs(len(s.areas) - len(segments.areas)) <= 0.2 * len(segments.areas)
    assert (s.points[:, 0] < big.shape[1]).all() and (s.points[:, 1] < big.shape[0]).all()


def test_explained_segments_are_skipped_and_prompts_capped(segments):
    order = np.argsort(-segments.areas, kind="stable")
    prompts = SegmentPrompts(segments, SegmentPromptConfig(max_points=10**6))
    first = next(prompts.batches(4))
    assert np.array_equal(first, segments.points[order[:4]])  # largest segments first
    # explain the next two segments entirely: they are never prompted
    for seg in order[4:6]:
        prompts.explain(segments.labels == seg)
    rest = np.concatenate(list(prompts.batches(4)))
    assert len(rest) == len(order) - 6
    assert not any((rest == segments.points[seg]).all(axis=1).any() for seg in order[4:6])
    assert prompts.fraction_visited == 1.0

    capped = SegmentPrompts(segments, SegmentPromptConfig(max_points=9))
    assert sum(len(b) for b in capped.batches(4)) == 9

    everything = SegmentPrompts(segments)
    everything.explain(np.ones(everything.work_size, bool))
    assert list(everything.batches(4)) == []
    with pytest.raises(ValueError, match="shape"):
        everything.explain(np.ones((3, 3), bool))


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        segment_image(np.zeros((10, 10), np.uint8))
