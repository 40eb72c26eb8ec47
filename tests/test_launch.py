"""The launcher's command line."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "launch.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--images", "--sam", "--sam-checkpoint", "--clip", "--clip-pretrained", "--vocab", "--device",
                 "--port", "--host", "vit_t", "vit_h", "imagenet21k"):  # fmt: skip
        assert flag in out.stdout, flag


def test_bad_vocabulary_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing here\n")
    out = subprocess.run(
        [sys.executable, "launch.py", "--vocab", str(empty), "--clip", "none", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert "contains no class names" in out.stderr
