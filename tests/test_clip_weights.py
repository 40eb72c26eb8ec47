"""Where CLIP weights come from: offline without them, offline from the cache, a local file."""

from __future__ import annotations

import time

import open_clip
import pytest
import torch

from annotator.checkpoints import ensure_checkpoint
from annotator.clip_regions import ClipRegionEncoder, ClipSpec, ClipUnavailable
from annotator.engine import EngineConfig, build_engine

from .conftest import register_tiny_clips


def test_offline_without_cached_weights_runs_masks_only(monkeypatch):
    """No weights and no network: the engine starts at once, masks only, and says why."""
    sam_path = ensure_checkpoint("vit_t")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    engine = build_engine(
        EngineConfig(sam_checkpoint=str(sam_path), clip_model="RN50", clip_pretrained="openai", vocab="coco")
    )
    assert time.perf_counter() - start < 60
    assert not engine.has_labels and engine.classifier is None
    assert "cannot be reached" in engine.labels_unavailable and "--clip-pretrained" in engine.labels_unavailable
    assert len(engine.vocabulary) == 80  # labels can still be picked by hand


def _save_tiny_weights(path):
    register_tiny_clips()
    torch.manual_seed(7)
    model = open_clip.create_model("tiny_rn_clip", pretrained=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.state_dict()


def test_cached_weights_load_without_network(tmp_path, monkeypatch):
    """Weights downloaded on an earlier run sit in the Hugging Face cache layout; a later,
    offline start finds them there without asking the network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someorg--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    state = _save_tiny_weights(repo / "snapshots" / commit / "open_clip_pytorch_model.bin")
    real_cfg = open_clip.get_pretrained_cfg

    def fake_cfg(model, tag):
        if (model, tag) == ("tiny_rn_clip", "sometag"):
            return {"hf_hub": "someorg/tiny-clip/", "quick_gelu": False}
        return real_cfg(model, tag)

    monkeypatch.setattr(open_clip, "get_pretrained_cfg", fake_cfg)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clf = ClipRegionEncoder(ClipSpec("tiny_rn_clip", "sometag"), cache_dir=tmp_path)
    assert not clf.random_weights and clf.weights_id == "tiny_rn_clip/sometag"
    loaded = clf.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    with pytest.raises(ClipUnavailable, match="cannot be reached"):
        ClipRegionEncoder(ClipSpec("tiny_rn_clip", "sometag"), cache_dir=tmp_path / "empty")


def test_local_weights_file(tmp_path):
    path = tmp_path / "weights.bin"
    state = _save_tiny_weights(path)
    clf = ClipRegionEncoder(ClipSpec("tiny_rn_clip", str(path)), cache_dir=tmp_path)
    assert not clf.random_weights
    assert torch.equal(clf.model.state_dict()["text_projection"], state["text_projection"])
