"""Image loading that survives real-world files, plus the bundled sample photos.

Every image becomes ``(H, W, 3) uint8 RGB`` in its upright orientation: EXIF rotation applied,
grayscale / palette / CMYK converted, alpha composited on white, 16-bit and float images scaled
to 8 bits.  Unreadable files raise :class:`ImageLoadError` with the reason, never anything else.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# 8000x6000 photos must open; a 30k x 30k bomb must not eat the machine.
MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# SAM resizes the long side to 1024 px (segment-anything's ResizeLongestSide, rounding): beyond
# 2048:1 the short side rounds to 0 px and no encoder can take the image.
MAX_ASPECT_RATIO = 2048

# Sample photos bundled with scikit-image (no download): real scenes with several objects.
SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera")


class ImageLoadError(ValueError):
    """The file is missing, corrupt, truncated, empty, not an image, or too thin for SAM; ``str()``
    says which."""


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        return np.repeat(scaled.round().astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as upright RGB.

    Args:
        path: any format Pillow reads (JPEG, PNG, TIFF, WebP, BMP, ...).
    Returns:
        ``(H, W, 3) uint8`` RGB array in display orientation (EXIF applied).
    Raises:
        ImageLoadError: missing, zero-byte, truncated, corrupt, not an image, more than
            ``MAX_PIXELS`` pixels, or longer than ``MAX_ASPECT_RATIO`` times its width (or wider
            than that times its height).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_rgb_uint8(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{path}: too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{path}: not an image or an unsupported format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{path}: corrupt or truncated image ({exc})") from exc
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{path}: image has no pixels")
    height, width = arr.shape[:2]
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise ImageLoadError(
            f"{path}: {width}×{height} pixels is too thin to segment (SAM scales the long side to 1024 px; "
            f"up to {MAX_ASPECT_RATIO}:1 can be taken)"
        )
    return np.ascontiguousarray(arr)


def load_image_record(record: dict, folder: str | Path) -> dict:
    """A record naming an image (``{"key": path relative to folder, ...}``) plus its pixels:
    ``image`` (``(H, W, 3) uint8`` RGB, or ``(0, 0, 3)`` when unreadable), ``error`` (the
    :class:`ImageLoadError` text, or ``""``) and ``seconds`` (decoding wall time).

    Used as the decoding task of a Ray run (:mod:`annotator.bulk.ray_runner`): this module imports
    neither torch nor Ray, so those tasks start fast.
    """
    t0 = time.perf_counter()
    try:
        image, error = load_image(Path(folder) / record["key"]), ""
    except ImageLoadError as exc:
        image, error = np.zeros((0, 0, 3), np.uint8), str(exc)
    return {**record, "image": image, "error": error, "seconds": time.perf_counter() - t0}


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension), sorted by path.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_slug(folder: str | Path) -> str:
    """Short file-name-safe name of an image folder, used to name its store and exports."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(folder).resolve().name) or "images"


def sample_photos() -> list[np.ndarray]:
    """scikit-image's bundled sample photos (:data:`SAMPLE_NAMES`) as (H, W, 3) uint8 RGB."""
    from skimage import data as skdata

    return [_to_rgb_uint8(Image.fromarray(getattr(skdata, name)())) for name in SAMPLE_NAMES]


def write_sample_images(dest: str | Path) -> list[Path]:
    """Write scikit-image's bundled sample photos into ``dest`` as PNG (once) and list them.

    Returns:
        Paths of the written (or already present) sample images.
    """
    from skimage import data as skdata

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_NAMES:
        path = dest / f"{name}.png"
        if not path.exists():
            arr = getattr(skdata, name)()
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(arr).save(tmp)
            tmp.replace(path)
        paths.append(path)
    return paths
