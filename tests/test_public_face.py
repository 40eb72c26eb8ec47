"""The package's public face and its model table (``ovsam models``)."""

import subprocess
import sys

import pytest

from .conftest import ROOT


def test_import_annotator_is_light_and_names_resolve():
    code = (
        "import sys, annotator; assert 'torch' not in sys.modules, 'import annotator loaded torch';"
        "from annotator import Engine, EngineConfig, Instances, Source, Workspace, build_engine, FORMATS, Tabs;"
        "from annotator.engine import Engine as E; assert Engine is E and 'torch' in sys.modules;"
        "print(sorted(FORMATS))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['coco', 'coco-panoptic', 'cvat', 'label-studio', 'labelme', 'masks', 'voc', 'yolo']"
    import annotator

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        annotator.Nothing  # noqa: B018


def test_model_table_joins_the_registries():
    from annotator.checkpoints import CHECKPOINTS
    from annotator.engine import CLIP_PRESETS
    from annotator.models import model_table
    from annotator.sam import SAM_BUILDERS

    rows = model_table()
    sams = {r.name: r for r in rows if r.role == "sam"}
    assert list(sams) == list(SAM_BUILDERS)
    assert sams["vit_t"].weights == CHECKPOINTS["vit_t"].filename and sams["vit_t"].default_on == "cpu, cuda"
    assert sams["vit_t"].present == CHECKPOINTS["vit_t"].path.exists()
    assert sams["vit_h"].package == "segment_anything.build_sam_vit_h" and sams["vit_h"].size_mb == 2564.6
    clips = [r for r in rows if r.role == "clip"]
    assert [(r.name, r.weights, r.default_on) for r in clips] == [
        (spec.model, spec.pretrained, device) for device, spec in CLIP_PRESETS.items()
    ]


def test_ovsam_models_prints_the_table():
    out = subprocess.run(
        [sys.executable, "-m", "annotator", "models"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].split()[:3] == ["role", "name", "weights"] and len(out) == 1 + 4 + 2
    assert out[1].split()[:3] == ["sam", "vit_t", "mobile_sam.pt"]
    assert any(line.split()[:3] == ["clip", "RN50", "openai"] for line in out)
