"""Image loading of awkward files, and vocabularies."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from annotator.images import ImageLoadError, list_images, load_image, write_sample_images
from annotator.label_search import LabelSearch, commonness, singular_forms
from annotator.vocabulary import VocabularyError, load_vocabulary


def test_real_coco_photo(coco_tiny):
    path = sorted((coco_tiny / "images").glob("*.jpg"))[0]
    img = load_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[:2] == Image.open(path).size[::-1]


def test_grayscale_rgba_16bit_palette(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp_path / "g.png")
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray((rng.random((20, 30)) * 65535).astype(np.uint16)).save(tmp_path / "d.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert("P").save(tmp_path / "p.png")
    for name in "gadp":
        img = load_image(tmp_path / f"{name}.png")
        assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    a = load_image(tmp_path / "a.png")
    assert tuple(a[0, 0]) == (255, 0, 0) and tuple(a[0, 29]) == (255, 255, 255)
    d = load_image(tmp_path / "d.png")
    assert d.max() == 255 and d.min() == 0  # 16-bit range stretched to 8 bits


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise for display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half now on top


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "missing"])
def test_bad_files_raise_a_clear_error(tmp_path, coco_tiny, kind):
    path = tmp_path / "bad.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = sorted((coco_tiny / "images").glob("*.jpg"))[0].read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "garbage":
        path.write_bytes(b"this is not an image" * 100)
    with pytest.raises(ImageLoadError, match=r"bad\.jpg"):
        load_image(path)


def test_list_and_samples(tmp_path):
    paths = write_sample_images(tmp_path / "s")
    assert len(paths) >= 4 and all(p.exists() for p in paths)
    (tmp_path / "s" / "notes.txt").write_text("x")
    assert list_images(tmp_path / "s") == sorted(paths)
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")


def test_builtin_vocabularies():
    coco = load_vocabulary("coco")
    assert len(coco) == 80 and coco.ids[-1] == 90 and coco.names[0] == "person"
    pan = load_vocabulary("coco_panoptic")
    assert len(pan) == 133 and pan.isthing is not None and sum(pan.isthing) == 80
    inet = load_vocabulary("imagenet21k")
    assert len(inet) == 21843 and len(set(inet.names)) == 21843
    assert "bass (1)" in inet.names and "car (auto)" in inet.names  # homonyms get distinct display names


def test_text_vocabulary_formats(tmp_path, coco_tiny):
    f = tmp_path / "v.txt"
    f.write_text("# my classes\n0:invalid_class_id\n3:sky,clouds\n\n7:traffic light\n", encoding="utf-8")
    v = load_vocabulary(f)
    assert v.names == ("sky", "traffic light") and v.ids == (3, 7) and v.synonyms[0] == ("sky", "clouds")
    plain = tmp_path / "plain.txt"
    plain.write_text("cat\ndog\n")
    assert load_vocabulary(plain).ids == (1, 2)
    coco = load_vocabulary(coco_tiny / "instances.json")
    assert len(coco) == 80


@pytest.mark.parametrize(
    "content,match",
    [("", "no class names"), ("# only a comment\n\n", "no class names"), ("1:a\n1:b\n", "ids are not unique")],
)
def test_bad_vocabularies(tmp_path, content, match):
    f = tmp_path / "v.txt"
    f.write_text(content)
    with pytest.raises(VocabularyError, match=match):
        load_vocabulary(f)


def test_bad_vocabulary_specs(tmp_path):
    with pytest.raises(VocabularyError, match="unknown vocabulary"):
        load_vocabulary("no_such_vocab")
    j = tmp_path / "x.json"
    j.write_text(json.dumps({"images": []}))
    with pytest.raises(VocabularyError, match="categories"):
        load_vocabulary(j)


def test_label_search_ranks_exact_prefix_word_substring_with_synonyms():
    search = LabelSearch(load_vocabulary("imagenet21k"))

    def names(q, **kw):
        return [h.name for h in search.search(q, **kw)]

    found = search.search("domestic dog")
    assert (found[0].name, found[0].synonym) == ("dog", "domestic dog")  # through a synonym
    assert names("dog")[0] == "dog" and len(names("dog")) == 20
    tiers = search.search("cat", limit=200)
    assert tiers[0].name == "cat" and [h.tier for h in tiers] == sorted(h.tier for h in tiers)
    assert names("  TRAFFIC_light ") == names("traffic light")
    assert search.search("") == [] and search.search("zzzzqqq") == []
    coco = LabelSearch(load_vocabulary("coco"))
    assert [(h.name, h.synonym) for h in coco.search("light")] == [("traffic light", None)]


@pytest.mark.parametrize(
    "typed,meant",
    [
        ("giraf", "giraffe"),
        ("girafe", "giraffe"),
        ("bycicle", "bicycle"),
        ("traffic lite", "traffic light"),
        ("elefant", "elephant"),
        ("umbrela", "umbrella"),
        ("refridgerator", "refrigerator"),
        ("dogs", "dog"),
        ("boxes", "box (1)"),
        ("berries", "berry (1)"),
        ("buses", "bus"),
    ],
)
def test_typos_and_plurals_find_the_class_first(typed, meant):
    """Issue 29: `rockett`, `girafe`, `bycicle`, `traffic lite` found nothing; `dogs` neither."""
    hits = LabelSearch(load_vocabulary("imagenet21k")).search(typed)
    assert hits[0].name == meant, [h.name for h in hits[:5]]


def test_common_senses_first_with_their_gloss_and_qualified_names():
    vocab = load_vocabulary("imagenet21k")
    assert "car (auto)" in vocab.names and "car (railcar)" in vocab.names and "car (1)" not in vocab.names
    numbered = [n for n in vocab.names if re.search(r" \(\d+\)$", n)]
    assert len(numbered) < 1800  # of 3,186 homonyms, those with no synonym of their own to tell them
    hits = LabelSearch(vocab).search("car")
    assert hits[0].name == "car (auto)" and "motor vehicle" in hits[0].gloss  # LVIS's car_(automobile)
    assert [h.name for h in hits[:4]].index("cable car") > 0
    assert len(vocab.glosses) == len(vocab) and all(vocab.glosses[:100])
    assert commonness(vocab)[vocab.index_of("car (auto)")] == 2


def test_project_classes_rank_first_in_their_tier_and_are_found_by_typos():
    search = LabelSearch(load_vocabulary("imagenet21k"))
    hits = search.search("rocke", project={"rockett": 3})
    assert hits[0].name == "rockett" and hits[0].in_project and not hits[0].in_vocabulary
    assert search.search("rokett", project={"rockett": 3})[0].name == "rockett"
    assert search.search("rocket", project={"rocket (projectile)": 1})[0].name == "rocket (projectile)"


def test_singular_forms():
    assert singular_forms("dogs") == ["dog"]
    assert singular_forms("traffic lights") == ["traffic light"]
    assert "knife" in singular_forms("knives") and singular_forms("glass") == [] and singular_forms("bus") == []


@pytest.mark.parametrize("size", [(20000, 2), (2, 20000)])
def test_an_image_too_thin_for_sam_is_refused_by_name(tmp_path, size):
    """SAM scales the long side to 1024 px: a 20000×2 strip would have a 0 px short side."""
    path = tmp_path / "strip.png"
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    with pytest.raises(ImageLoadError, match=r"strip\.png: .*too thin"):
        load_image(path)
    Image.fromarray(np.full((3, 6000, 3), 128, np.uint8)).save(tmp_path / "ok.png")  # 2000:1 is taken
    assert load_image(tmp_path / "ok.png").shape == (3, 6000, 3)
