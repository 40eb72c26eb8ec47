"""Shared fixtures: the real COCO photos in ../shared, real MobileSAM weights, tiny CLIPs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "assets"
SHARED = Path(os.environ.get("ANNOTATOR_SHARED", ROOT.parent / "shared"))
COCO_TINY = SHARED / "data" / "coco_tiny_val"


@pytest.fixture(scope="session")
def coco_tiny() -> Path:
    """The 80 real COCO val2017 photos with their 815 instances."""
    if not (COCO_TINY / "instances.json").is_file():
        pytest.fail(f"test data missing: {COCO_TINY} (the shared/ folder must sit beside the project)")
    return COCO_TINY


@pytest.fixture(scope="session")
def coco_gt(coco_tiny):
    from pycocotools.coco import COCO

    return COCO(str(coco_tiny / "instances.json"))


@pytest.fixture(scope="session")
def sam_model():
    """Real MobileSAM (vit_t) on the CPU; weights fetched and verified if absent."""
    from annotator.sam import load_sam

    return load_sam("vit_t", device="cpu")


@pytest.fixture(scope="session")
def engine(sam_model):
    """Masks-only engine on real MobileSAM."""
    from annotator.engine import Engine

    return Engine(sam_model)


@pytest.fixture(scope="session")
def coco_image(coco_tiny, coco_gt):
    """(image RGB, its annotations) of the first COCO photo with at least 5 instances."""
    from annotator.images import load_image

    for img_id in sorted(coco_gt.getImgIds()):
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_id, iscrowd=False))
        if len(anns) >= 5:
            info = coco_gt.loadImgs(img_id)[0]
            return load_image(coco_tiny / "images" / info["file_name"]), anns
    pytest.fail("no COCO photo with 5 instances")


def register_tiny_clips() -> None:
    """Make the tiny open_clip configs of tests/assets known to open_clip (random weights)."""
    import open_clip

    for cfg in ASSETS.glob("tiny_*_clip.json"):
        open_clip.add_model_config(cfg)


@pytest.fixture(scope="session")
def tiny_clip_factory(tmp_path_factory):
    """Build a tiny random-weight CLIP classifier (seeded, so two calls give the same model)."""
    import torch

    from annotator.clip_regions import ClipRegionEncoder, ClipSpec

    register_tiny_clips()
    cache = tmp_path_factory.mktemp("clip_cache")

    def make(
        name: str = "tiny_rn_clip",
        dense_size: int = 256,
        mode: str = "dense",
        cache_dir: Path | None = None,
        backend: str = "torch",
        precision: str = "auto",
    ):
        torch.manual_seed(0)
        spec = ClipSpec(name, None, dense_size)
        return ClipRegionEncoder(
            spec, "cpu", cache_dir=cache_dir or cache, mode=mode, backend=backend, precision=precision
        )

    return make


def instance_mask(coco_gt, ann) -> np.ndarray:
    return coco_gt.annToMask(ann).astype(bool)


@pytest.fixture(scope="session")
def postgres_url():
    """The SQLAlchemy URL of a real PostgreSQL server started for the tests (see
    :mod:`tests.postgres`); skipped where PostgreSQL is not installed, unless
    ``OVSAM_REQUIRE_POSTGRES=1``."""
    from .postgres import REQUIRE_ENV, PostgresServer, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        reason = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bindir).start()
    yield server.url
    server.stop()
