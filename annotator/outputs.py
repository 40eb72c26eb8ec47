"""A folder's outputs and their names, in one place.

Everything the tool writes for an image folder lives in one output folder, named after the
image folder's slug (see :func:`annotator.images.folder_slug`):

========================================  ==============================================
``<slug>.annotations.db``                 the annotation store, SQLite (app, ``annotate``,
                                          edits; unless ``--db`` names another database)
``<slug>.annotations.json.bak``           a JSON store of earlier versions, once migrated
``<slug>.journal.jsonl``                  the bulk run's journal (resume)
``<slug>.label_studio_push.jsonl``        the Label Studio push journal (resume)
``<slug>_coco.json``                      COCO instances, RLE
``<slug>_coco_polygons.json``             COCO instances, polygons
``<slug>_panoptic.json`` + ``/``          COCO panoptic (JSON + PNG folder)
``<slug>_yolo/``                          YOLO segmentation dataset
``<slug>_masks/``                         plain mask PNGs (16-bit instance ids) + instances.json
``<slug>_label_studio.json`` + ``.xml``   Label Studio tasks + labelling config
========================================  ==============================================

The exports' names are ``<slug>`` + their format's ``suffix`` (see
:data:`annotator.formats.FORMATS`), written by that format's ``write``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .formats import FORMATS, Dataset, get_format
from .images import folder_slug
from .store import AnnotationStore

EXPORT_FORMATS = tuple(FORMATS)
"""The names of the export formats, those of :data:`annotator.formats.FORMATS`."""

IMPORT_FORMATS = tuple(name for name, fmt in FORMATS.items() if fmt.readable)
"""The names of the formats ``ovsam import`` reads (those with a reader)."""

_EXPORT_OPTIONS = frozenset(name for fmt in FORMATS.values() for name in fmt.options) - {"images_root"}


@dataclass(frozen=True)
class FolderOutputs:
    """The outputs of one image folder.

    Attributes:
        folder: the image folder (resolved); out_dir: where its outputs go.
    """

    folder: Path
    out_dir: Path

    def __init__(self, folder: str | Path, out_dir: str | Path):
        object.__setattr__(self, "folder", Path(folder).resolve())
        object.__setattr__(self, "out_dir", Path(out_dir))

    @property
    def slug(self) -> str:
        """The folder's short name in file names."""
        return folder_slug(self.folder)

    def _path(self, suffix: str) -> Path:
        return self.out_dir / f"{self.slug}{suffix}"

    @property
    def store_path(self) -> Path:
        """The SQLite annotation store, ``<slug>.annotations.db``."""
        return self._path(".annotations.db")

    @property
    def legacy_store_path(self) -> Path:
        """The JSON store of earlier versions, ``<slug>.annotations.json`` (migrated on open)."""
        return self._path(".annotations.json")

    @property
    def legacy_session_path(self) -> Path:
        """Its session file (last image, done marks), ``<slug>.session.json``."""
        return self._path(".session.json")

    @property
    def journal_path(self) -> Path:
        """The bulk run's journal, ``<slug>.journal.jsonl``."""
        return self._path(".journal.jsonl")

    @property
    def push_journal_path(self) -> Path:
        """The Label Studio push journal, ``<slug>.label_studio_push.jsonl``."""
        return self._path(".label_studio_push.jsonl")

    def export_path(self, fmt: str, **options) -> Path:
        """Where the export in format ``fmt`` with these write options goes: ``<slug>`` + the
        format's suffix for them (:meth:`~annotator.formats.Format.suffix_for`: COCO polygons
        ``<slug>_coco_polygons.json``, RLE ``<slug>_coco.json``).

        Raises:
            ValueError: unknown format.
        """
        return self._path(get_format(fmt).suffix_for(options))

    @property
    def coco_path(self) -> Path:
        """COCO instances as RLE, ``<slug>_coco.json`` (polygons: ``export_path("coco",
        segmentation="polygon")``)."""
        return self.export_path("coco")

    @property
    def panoptic_path(self) -> Path:
        """COCO panoptic JSON, ``<slug>_panoptic.json`` (PNGs in the folder of the same name)."""
        return self.export_path("coco-panoptic")

    @property
    def yolo_dir(self) -> Path:
        """The YOLO segmentation dataset folder, ``<slug>_yolo/``."""
        return self.export_path("yolo")

    @property
    def label_studio_path(self) -> Path:
        """Label Studio tasks, ``<slug>_label_studio.json`` (config beside it as ``.xml``)."""
        return self.export_path("label-studio")

    def open_store(
        self, category_ids: dict[str, int] | None = None, database: str | None = None, author: str | None = None
    ) -> AnnotationStore:
        """The folder's annotation store: dataset ``<slug>`` of ``database`` (default the SQLite
        file :attr:`store_path`). A JSON store of earlier versions found here is migrated into
        it and kept as ``*.bak``.

        Args:
            category_ids: preferred ids for new category names (the vocabulary's).
            database: an SQLAlchemy URL (e.g. ``postgresql://user@host/annotations``).
            author: who writes when a write names nobody (default: the OS user).
        Raises:
            annotator.store.StoreError: the database cannot be opened, or the JSON store to
                migrate is unreadable (left untouched).
        """
        store = AnnotationStore(database or self.store_path, self.slug, category_ids=category_ids, author=author)
        store.migrate_json(self.legacy_store_path, self.legacy_session_path)
        return store

    def export_files(self, dataset: Dataset, fmt: str = "coco", **options) -> list[Path]:
        """Write ``dataset`` (the folder's store, or any :class:`~annotator.formats.Dataset` of
        it) in the format ``fmt`` of :data:`annotator.formats.FORMATS` to
        :meth:`export_path` (atomically), by that format's ``write``.

        Args:
            options: write options (see :meth:`export`); those of other formats are ignored,
                ``None`` means the format's default; ``images_root`` is this folder.
        Returns:
            The files written, the main one first (the JSON, or ``data.yaml`` for YOLO).
        Raises:
            ValueError: unknown format.
            TypeError: an option no format takes.
        """
        unknown = set(options) - _EXPORT_OPTIONS
        if unknown:
            raise TypeError(f"unknown export options: {', '.join(sorted(unknown))}")
        form = get_format(fmt)
        given = {k: v for k, v in options.items() if v is not None}
        return form.write(
            dataset, self.export_path(fmt, **given), **form.write_options({"images_root": self.folder, **given})
        )

    def export(self, dataset: Dataset, fmt: str = "coco", **options) -> Path:
        """Write ``dataset`` in one of :data:`EXPORT_FORMATS` to its place (atomically); see
        :meth:`export_files`.

        Args:
            options: ``segmentation`` (``coco``: ``rle`` or ``polygon``), ``isthing``
                (``coco-panoptic``: thing (True) or stuff per label; unknown labels are things),
                ``url_prefix`` (``label-studio``: image URL prefix; default local-files serving
                of the folder), ``region_type`` (``label-studio``: ``brush`` or ``polygon``);
                ``yolo``: ``images`` (``link``, default, or ``copy``), ``val_fraction`` (0: no
                split) and ``seed`` (0), ``task`` (``segment``, default, or ``detect``),
                ``tolerance`` (polygon simplification, pixels, default 0.5).
        Returns:
            The JSON written (``data.yaml`` for YOLO, ``instances.json`` for ``masks``).
        Raises:
            ValueError: unknown format.
        """
        return self.export_files(dataset, fmt, **options)[0]
