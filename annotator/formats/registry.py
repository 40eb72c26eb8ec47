"""The registry of dataset formats: name → :class:`~annotator.formats.format.Format`.

The CLI (``ovsam export --format``), :class:`~annotator.outputs.FolderOutputs` and the page all
take their formats from :data:`FORMATS`; adding a format is adding it here.
"""

from __future__ import annotations

from . import coco, coco_panoptic, cvat, labelme, masks_png, voc, yolo
from .format import Format
from .label_studio import export as label_studio

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        coco.FORMAT,
        coco_panoptic.FORMAT,
        yolo.FORMAT,
        label_studio.FORMAT,
        labelme.FORMAT,
        masks_png.FORMAT,
        cvat.FORMAT,
        voc.FORMAT,
    )
}


def get_format(name: str) -> Format:
    """The format of this name.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}") from None


__all__ = ["FORMATS", "get_format"]
