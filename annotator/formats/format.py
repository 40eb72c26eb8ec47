"""A dataset format as the registry holds it: its name, how to write a dataset, how to read one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dataset import InMemoryDataset


@dataclass(frozen=True)
class Format:
    """One dataset format.

    Attributes:
        name: its name in the CLI and the registry (``coco``, ``yolo``, ...).
        description: one line for help texts.
        write: ``write(dataset, out, **options) -> list[Path]``: writes a
            :class:`~annotator.formats.dataset.Dataset` to
            ``out`` (a file or a folder, as the format has it) atomically, and returns the files
            written, the main one first (the JSON, or YOLO's ``data.yaml``).
        read: ``read(path, images_root=None) -> InMemoryDataset``, ``None`` where the format
            cannot be read back faithfully (the module says why). ``path`` is the file or folder
            the format writes; ``images_root`` the image folder the annotations are of, for
            formats that need the images' sizes or names (YOLO, plain PNG masks); readers that
            do not need it take and ignore it. Raises
            :class:`~annotator.formats.errors.FormatReadError` listing every problem (file,
            record, reason) and returns nothing of a file that has one.
        options: the keyword options ``write`` takes.
        suffix: the export's name after the folder's slug in
            :class:`~annotator.outputs.FolderOutputs` (``_coco.json``: ``photos_coco.json``).
        category_ids: whether the format keeps category ids (COCO, COCO panoptic, mask PNGs'
            sidecar do); where it does not (YOLO's class indices, the label lists of CVAT,
            LabelMe, VOC and Label Studio), an import names classes by name and the store's ids
            stay (:mod:`annotator.importer`).
        option_suffixes: ``(option, value, suffix)`` rows: the suffix instead of ``suffix`` when
            ``write`` is given that option's value (COCO polygons: ``("segmentation",
            "polygon", "_coco_polygons.json")``), so that exports of one dataset that differ are
            different files.
    """

    name: str
    description: str
    write: Callable[..., list[Path]]
    read: Callable[..., InMemoryDataset] | None
    options: tuple[str, ...]
    suffix: str
    option_suffixes: tuple[tuple[str, str, str], ...] = ()
    category_ids: bool = True

    @property
    def readable(self) -> bool:
        """Whether the format has a reader."""
        return self.read is not None

    def suffix_for(self, options: dict | None = None) -> str:
        """The export's suffix for these write options (see :attr:`option_suffixes`)."""
        options = options or {}
        for name, value, suffix in self.option_suffixes:
            if options.get(name) == value:
                return suffix
        return self.suffix

    def write_options(self, options: dict) -> dict:
        """The entries of ``options`` this format's ``write`` takes (the others are dropped)."""
        return {k: v for k, v in options.items() if k in self.options}


__all__ = ["Format"]
