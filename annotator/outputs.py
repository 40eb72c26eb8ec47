"""A folder's outputs and their names, in one place.

Everything the tool writes for an image folder lives in one output folder, named after the
image folder's slug (see :func:`annotator.images.folder_slug`):

========================================  ==============================================
``<slug>.annotations.json``               the annotation store (app, ``annotate``, edits)
``<slug>.session.json``                   per-session state: last image, done marks
``<slug>.journal.jsonl``                  the bulk run's journal (resume)
``<slug>.label_studio_push.jsonl``        the Label Studio push journal (resume)
``<slug>_coco.json``                      COCO instances
``<slug>_panoptic.json`` + ``/``          COCO panoptic (JSON + PNG folder)
``<slug>_yolo/``                          YOLO segmentation dataset
``<slug>_label_studio.json`` + ``.xml``   Label Studio tasks + labelling config
========================================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .images import folder_slug
from .store import AnnotationStore

EXPORT_FORMATS = ("coco", "coco-panoptic", "yolo", "label-studio")


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
        """The annotation store, ``<slug>.annotations.json``."""
        return self._path(".annotations.json")

    @property
    def session_path(self) -> Path:
        """The session file (last image, done marks), ``<slug>.session.json``."""
        return self._path(".session.json")

    @property
    def journal_path(self) -> Path:
        """The bulk run's journal, ``<slug>.journal.jsonl``."""
        return self._path(".journal.jsonl")

    @property
    def push_journal_path(self) -> Path:
        """The Label Studio push journal, ``<slug>.label_studio_push.jsonl``."""
        return self._path(".label_studio_push.jsonl")

    @property
    def coco_path(self) -> Path:
        """COCO instances, ``<slug>_coco.json``."""
        return self._path("_coco.json")

    @property
    def panoptic_path(self) -> Path:
        """COCO panoptic JSON, ``<slug>_panoptic.json`` (PNGs in the folder of the same name)."""
        return self._path("_panoptic.json")

    @property
    def yolo_dir(self) -> Path:
        """The YOLO segmentation dataset folder, ``<slug>_yolo/``."""
        return self._path("_yolo")

    @property
    def label_studio_path(self) -> Path:
        """Label Studio tasks, ``<slug>_label_studio.json`` (config beside it as ``.xml``)."""
        return self._path("_label_studio.json")

    def open_store(self, category_ids: dict[str, int] | None = None) -> AnnotationStore:
        """The folder's annotation store (created on first change), with its session file.

        Args:
            category_ids: preferred ids for new category names (the vocabulary's).
        Raises:
            annotator.store.StoreError: the store file exists but cannot be read.
        """
        return AnnotationStore(self.store_path, category_ids=category_ids, session_path=self.session_path)

    def export(
        self,
        store: AnnotationStore,
        fmt: str = "coco",
        *,
        segmentation: str = "rle",
        isthing: dict[str, bool] | None = None,
        url_prefix: str | None = None,
        region_type: str = "brush",
    ) -> Path:
        """Write ``store`` in one of :data:`EXPORT_FORMATS` to its place (atomically).

        Args:
            segmentation: ``coco``: ``rle`` or ``polygon``.
            isthing: ``coco-panoptic``: thing (True) or stuff per label; unknown labels are things.
            url_prefix: ``label-studio``: image URL prefix; default local-files serving of the folder.
            region_type: ``label-studio``: ``brush`` or ``polygon``.
        Returns:
            The JSON written (``data.yaml`` for YOLO).
        Raises:
            ValueError: unknown format.
        """
        if fmt == "coco":
            from .exporters.coco import export_coco

            return export_coco(store, self.coco_path, segmentation)
        if fmt == "coco-panoptic":
            from .exporters.coco_panoptic import export_coco_panoptic

            return export_coco_panoptic(store, self.panoptic_path, isthing or {})
        if fmt == "yolo":
            from .exporters.yolo import export_yolo

            return export_yolo(store, self.folder, self.yolo_dir)
        if fmt == "label-studio":
            from .exporters.label_studio import export_label_studio, local_files_prefix

            prefix = url_prefix if url_prefix is not None else local_files_prefix(self.folder)
            return export_label_studio(store, self.label_studio_path, prefix, region_type)
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
