"""The page's export panel: every format of :data:`annotator.formats.FORMATS`, a file to download.

A format that writes one file is downloaded as it is (COCO instances); one that writes several
is zipped, each file under its path relative to the main file's folder (COCO panoptic: the JSON
and its PNG folder; Label Studio: the tasks and the labelling config; YOLO: ``data.yaml`` and
``labels/``, the images being the folder's own).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from annotator.fileio import atomic_write_bytes
from annotator.formats import FORMATS
from annotator.workspace import Workspace

_NAMED = {
    "coco": "COCO instances",
    "coco-panoptic": "COCO panoptic",
    "yolo": "YOLO segmentation",
    "label-studio": "Label Studio JSON",
}
TITLES = {name: _NAMED.get(name) or fmt.description.split(" (")[0] for name, fmt in FORMATS.items()}
"""The panel's name of each format (the registry's order is the panel's)."""
EXPORT_INSTANCES, EXPORT_PANOPTIC, EXPORT_YOLO, EXPORT_LABEL_STUDIO = (
    TITLES[name] for name in ("coco", "coco-panoptic", "yolo", "label-studio")
)
ONLY_CHOICES = {"All but rejected": "all", "Accepted only": "accepted"}
"""The panel's choice of what to export (``--only``)."""
LEFT_OUT = {"yolo": ("images",)}  # folders a download leaves out: YOLO's links to the photos


def _zip(archive: Path, files: list[Path], root: Path, skip: tuple[str, ...] = ()) -> Path:
    """Zip ``files`` under their paths relative to ``root`` (those under ``skip`` folders left
    out), written atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            rel = f.relative_to(root)
            if rel.parts[0] not in skip:
                zf.write(f, rel.as_posix())
    return atomic_write_bytes(archive, buf.getvalue())


def export(ws: Workspace, kind: str, fmt: str = "rle", only: str = "all") -> tuple[str | None, str]:
    """Export the folder's annotations for download: every one but the rejected ones, or the
    accepted ones only.

    Args:
        kind: a format's panel name (:data:`TITLES`) or its registry name.
        fmt: COCO instance segmentation as ``rle`` or ``polygon``.
        only: ``all`` or ``accepted``, or their panel names (:data:`ONLY_CHOICES`).
    Returns:
        (path of the file to download or ``None``, a sentence for the page).
    Raises:
        ValueError: unknown kind.
    """
    name = next((n for n, title in TITLES.items() if title == kind), kind)
    only = ONLY_CHOICES.get(only, only)
    counts = ws.store.total_state_counts()
    n = counts["accepted"] + (counts["predicted"] if only == "all" else 0)
    if n == 0:
        left = " (nothing accepted yet: review the predictions, or export all)" if only == "accepted" else ""
        return None, f"Nothing to export yet{left}."
    files = ws.export_files(name, only=only, segmentation=fmt)
    main = files[0]
    if len(files) == 1:
        return str(main), f"Exported {n} annotations to `{main}`; `{main.name}` is in the Download box."
    root = main.parent
    archive = _zip(Path(f"{root if name == 'yolo' else main.with_suffix('')}.zip"), files, root, LEFT_OUT.get(name, ()))
    where = root if name == "yolo" else main
    return str(archive), (
        f"Exported {n} annotations as {TITLES[name]} to `{where}` ({len(files)} files);"
        f" `{archive.name}` (all of them, zipped) is in the Download box."
    )


__all__ = [
    "EXPORT_INSTANCES",
    "EXPORT_LABEL_STUDIO",
    "EXPORT_PANOPTIC",
    "EXPORT_YOLO",
    "ONLY_CHOICES",
    "TITLES",
    "export",
]
