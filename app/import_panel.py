"""The page's import panel: annotations made elsewhere brought into the open folder's store, as
predictions to review (:func:`annotator.importer.import_annotations` does the work).

What to read is an uploaded file or a path on the server's disk (the folder's own machine when
the page runs on a laptop). An upload is one file (COCO JSON, Label Studio JSON, CVAT XML) or a
``.zip`` of a dataset folder (YOLO, LabelMe, Pascal VOC, COCO panoptic, mask PNGs), unpacked under
the output folder's ``imports/`` first (entries that would land outside it are refused).
"""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path, PurePosixPath

from annotator.formats import FORMATS
from annotator.formats.errors import FormatReadError
from annotator.workspace import Workspace

IMPORT_TITLES = {name: fmt.description.split(" (")[0] for name, fmt in FORMATS.items() if fmt.readable}
"""The panel's name of each readable format, registry name → title."""

SHOWN_PROBLEMS = 20
"""Problems listed on the page (all of them are in the log)."""


def unpack(archive: Path, into: Path) -> Path:
    """Unpack a zip into a new folder under ``into``; returns what to read: the folder, or the
    one folder (or file) at its top when the zip holds just that.

    Raises:
        ValueError: not a zip, or an entry whose path would leave the folder.
    """
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"{archive.name}: not a zip archive")
    target = into / f"{Path(archive).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts:
                raise ValueError(f"{archive.name}: entry {name!r} would be written outside the folder")
        target.mkdir(parents=True)
        zf.extractall(target)
    top = [p for p in target.iterdir() if p.name != "__MACOSX"]
    return top[0] if len(top) == 1 else target


def run_import(ws: Workspace, title: str, upload: str | None, server_path: str, skip_missing: bool) -> str:
    """Import what the page names; returns a sentence (Markdown) for it.

    Args:
        title: a title of :data:`IMPORT_TITLES` (or a registry name).
        upload: the uploaded file's temporary path (Gradio), or ``None``.
        server_path: a file or folder on the server, used when nothing was uploaded.
        skip_missing: skip images the folder lacks instead of refusing the import.
    """
    name = next((n for n, t in IMPORT_TITLES.items() if t == title), title)
    if name not in IMPORT_TITLES:
        return f"Choose a format to import (one of {', '.join(IMPORT_TITLES.values())})."
    try:
        if upload:
            path = Path(upload)
            if path.suffix.lower() == ".zip":
                path = unpack(path, ws.out_dir / "imports")
            else:
                kept = ws.out_dir / "imports" / path.name
                kept.parent.mkdir(parents=True, exist_ok=True)
                path = Path(shutil.copy(path, kept))
        elif server_path.strip():
            path = Path(server_path.strip()).expanduser()
        else:
            return "Upload a file (a .zip for dataset folders) or give a path on the server."
        summary = ws.import_annotations(path, name, missing="skip" if skip_missing else "error")
    except FormatReadError as exc:
        shown = "\n".join(f"- `{p}`" for p in exc.problems[:SHOWN_PROBLEMS])
        more = len(exc.problems) - SHOWN_PROBLEMS
        tail = f"\n- … and {more} more" if more > 0 else ""
        return f"**Nothing imported**: {len(exc.problems)} problem(s).\n{shown}{tail}"
    except (ValueError, OSError) as exc:
        return f"**Nothing imported**: {exc}"
    return summary.report() + " Step through them with the review keys (see Help)."


__all__ = ["IMPORT_TITLES", "run_import", "unpack"]
