"""`pip install .` gives a working tool: the wheel built from the tracked files holds every
package, the vocabulary data and the page's assets, declares requirements.txt as its
dependencies and installs the two commands, which run from outside the checkout."""

from __future__ import annotations

import configparser
import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .conftest import ROOT

INSTALLED_NAME = {"annotator": "annotator", "app": "ovsam_app"}  # repository folder -> installed package


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked files (what a clean clone holds)."""
    src = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("ovsam_annotator-*.whl")
    return path


def _expected_files() -> set[str]:
    """Every tracked module, vocabulary list and page asset, under its installed name."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    out = set()
    for rel in tracked.split():
        top, _, rest = rel.partition("/")
        if top in INSTALLED_NAME and rel.endswith((".py", ".txt", ".js", ".css", ".html")):
            out.add(f"{INSTALLED_NAME[top]}/{rest}")
    return out


def test_wheel_holds_every_package_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _expected_files()
    assert (
        "annotator/everything/pipeline.py" in expected
        and "ovsam_app/static/js/main.js" in expected
        and "ovsam_app/static/js/panels/help.js" in expected
    )
    assert "annotator/vocab_data/coco_panoptic.txt" in expected
    missing = sorted(expected - names)
    assert not missing, f"left out of the wheel: {missing}"
    assert not any(n.startswith(("app/", "tests/", "benchmarks/")) for n in names)


def _requirement(text: str) -> tuple[str, frozenset[str]]:
    r = Requirement(text)
    return r.name.lower().replace("_", "-"), frozenset(str(s) for s in r.specifier)


def test_wheel_declares_requirements_txt_and_both_commands(wheel):
    z = zipfile.ZipFile(wheel)
    info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    declared = {_requirement(r) for r in email.message_from_bytes(z.read(info)).get_all("Requires-Dist")}
    lines = [s.split("#")[0].strip() for s in (ROOT / "requirements.txt").read_text().splitlines()]
    wanted = {_requirement(s) for s in lines if s}
    assert declared == wanted and len(wanted) >= 19
    entry = configparser.ConfigParser()
    entry.read_string(z.read(info.replace("METADATA", "entry_points.txt")).decode())
    assert dict(entry["console_scripts"]) == {
        "ovsam": "annotator.__main__:main",
        "ovsam-annotator": "ovsam_app.launch:main",
    }


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("ANNOTATOR_CHECKPOINTS", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import annotator.engine, ovsam_app.page, annotator.vocabulary as v; "
         "from annotator.checkpoints import checkpoints_dir; print(annotator.engine.__file__); "
         "print(len(v.load_vocabulary('coco_panoptic'))); print(checkpoints_dir())"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    engine_file, n_classes, weights = probe.stdout.split()
    assert Path(engine_file).is_relative_to(target) and n_classes == "133"
    assert Path(weights) == tmp_path / "cache" / "ovsam-annotator" / "checkpoints"  # not site-packages
    for command, words in (("ovsam", "annotate"), ("ovsam-annotator", "--label-mode")):
        out = subprocess.run(
            [target / "bin" / command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert words in out.stdout
