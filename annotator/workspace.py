"""A folder of images being annotated: the image list, the engine and the annotation store.

Everything the UI does goes through here, so it can be scripted too::

    ws = Workspace.open_folder(engine, "photos/", "exports/")
    image = ws.activate(ws.keys[0])
    result = ws.engine.predict(point_coords=[[320, 240]], point_labels=[1])
    ws.store.add(ws.keys[0], result.mask, result.labels[0].name)
    ws.export("exports/photos_coco.json")
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .engine import Engine
from .exporters.coco import export_coco
from .exporters.coco_panoptic import export_coco_panoptic
from .exporters.yolo import export_yolo
from .images import ImageLoadError, folder_slug, list_images, load_image
from .store import AnnotationStore

log = logging.getLogger(__name__)


PREFETCH_NICE = 19  # background embeddings yield the CPU to clicks


def _lower_thread_priority() -> None:
    """Give the calling thread (and the OpenMP workers it starts later) the lowest CPU priority,
    so that a click decoded meanwhile is scheduled first. Linux sets nice per thread; elsewhere
    this does nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PREFETCH_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("prefetch thread keeps normal priority: %s", exc)


class Workspace:
    """Images under ``root`` (keys = relative POSIX paths), an :class:`Engine` and a store.

    Args:
        engine: the loaded engine.
        root: the image folder.
        keys: image keys, in display order.
        store: where accepted annotations are kept.
        out_dir: default folder for exports.
        image_cache_bytes: memory bound of the decoded-image cache (pixels of recent images).
    """

    def __init__(
        self,
        engine: Engine,
        root: Path,
        keys: list[str],
        store: AnnotationStore,
        out_dir: Path,
        image_cache_bytes: int = 512 << 20,
    ):
        self.engine = engine
        self.root = Path(root)
        self.keys = keys
        self.store = store
        self.out_dir = Path(out_dir)
        self.image_cache_bytes = image_cache_bytes
        self._active: str | None = None
        self._image: np.ndarray | None = None
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()
        self._images_lock = threading.Lock()
        self._prefetcher: ThreadPoolExecutor | None = None
        self._prefetching: list[Future] = []

    @classmethod
    def open_folder(cls, engine: Engine, folder: str | Path, out_dir: str | Path, recursive: bool = True) -> Workspace:
        """List the images of ``folder`` and open (or create) its store in ``out_dir``.

        Raises:
            FileNotFoundError: ``folder`` does not exist.
            ValueError: ``folder`` holds no image files.
            annotator.store.StoreError: the existing store file is unreadable.
        """
        root = Path(folder).resolve()
        paths = list_images(root, recursive=recursive)
        if not paths:
            raise ValueError(f"{root} contains no image files")
        keys = [p.relative_to(root).as_posix() for p in paths]
        slug = folder_slug(root)
        vocab = engine.vocabulary
        preferred = dict(zip(vocab.names, vocab.ids, strict=True)) if vocab else {}
        store = AnnotationStore(Path(out_dir) / f"{slug}.annotations.json", category_ids=preferred)
        return cls(engine, root, keys, store, Path(out_dir))

    @property
    def slug(self) -> str:
        """Short name of the folder, used in file names."""
        return self.store.path.name.removesuffix(".annotations.json")

    @property
    def active(self) -> str | None:
        """Key of the image the engine currently holds."""
        return self._active

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB of the active image."""
        return self._image

    def activate(self, key: str) -> np.ndarray:
        """Load an image and make it the engine's current one (embeddings cached).

        Returns:
            (H, W, 3) uint8 RGB.
        Raises:
            KeyError: unknown key.
            annotator.images.ImageLoadError: the file cannot be read (nothing else changes).
        """
        image = self.load(key)
        if key == self._active and self._image is not None:
            return self._image
        self.engine.set_image(image)
        self._active, self._image = key, image
        self.store.set_meta(last_image=key)
        return image

    def load(self, key: str) -> np.ndarray:
        """Decoded pixels of an image, from a small LRU cache (bounded by ``image_cache_bytes``).

        Returns:
            (H, W, 3) uint8 RGB, upright (see :func:`annotator.images.load_image`); do not modify.
        Raises:
            KeyError: unknown key.
            annotator.images.ImageLoadError: the file cannot be read.
        """
        if key not in self.keys:
            raise KeyError(key)
        with self._images_lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
                return image
        image = load_image(self.root / key)
        image.flags.writeable = False
        with self._images_lock:
            self._images[key] = image
            total = sum(a.nbytes for a in self._images.values())
            while len(self._images) > 1 and total > self.image_cache_bytes:
                total -= self._images.popitem(last=False)[1].nbytes
        return image

    def prefetch(self, keys: list[str], limit: int | None = None) -> Future:
        """Embed images in one background thread, so that opening them later costs a cache hit.

        The keys are taken in order; an unreadable image is logged and skipped (the next one
        is taken instead), images already cached count as done. Jobs run one after another.

        Args:
            keys: candidates, most wanted first.
            limit: stop after this many images are embedded (``None``: all of them).
        Returns:
            A future whose result is the list of keys embedded (or found cached).
        """
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="prefetch", initializer=_lower_thread_priority
            )
        fut = self._prefetcher.submit(self._prefetch_job, [k for k in keys if k in self.keys], limit)
        self._prefetching = [f for f in self._prefetching if not f.done()] + [fut]
        return fut

    def _prefetch_job(self, keys: list[str], limit: int | None) -> list[str]:
        done = []
        for key in keys:
            if limit is not None and len(done) >= limit:
                break
            try:
                self.engine.prefetch(self.load(key))
            except ImageLoadError as exc:
                log.warning("prefetch skipped: %s", exc)
                continue
            done.append(key)
        return done

    def wait_for_prefetch(self, timeout: float | None = None) -> list[str]:
        """Block until every queued prefetch has finished.

        Returns:
            The keys whose embeddings were computed (or found cached) by those prefetches.
        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
        """
        return [k for f in list(self._prefetching) for k in f.result(timeout=timeout)]

    def close(self) -> None:
        """Stop the prefetch thread (queued work is dropped)."""
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher = None

    def last_image(self) -> str:
        """The image worked on last (from the store), else the first one."""
        key = self.store.meta.get("last_image")
        return key if key in self.keys else self.keys[0]

    def export(self, out_path: str | Path | None = None, segmentation: str = "rle") -> Path:
        """Write the COCO instances JSON of all accepted annotations (atomically)."""
        out = Path(out_path) if out_path else self.out_dir / f"{self.slug}_coco.json"
        return export_coco(self.store, out, segmentation)

    def export_panoptic(self, out_path: str | Path | None = None) -> Path:
        """Write all accepted annotations as COCO panoptic: ``<slug>_panoptic.json`` and a PNG
        folder beside it (``<slug>_panoptic/``); ``isthing`` from the vocabulary (unknown
        labels are things). Returns the JSON path."""
        out = Path(out_path) if out_path else self.out_dir / f"{self.slug}_panoptic.json"
        vocab = self.engine.vocabulary
        return export_coco_panoptic(self.store, out, vocab.isthing_by_name() if vocab else {})

    def export_label_studio(self, url_prefix: str | None = None, region_type: str = "brush") -> Path:
        """Write Label Studio tasks with predictions to ``<slug>_label_studio.json`` (config
        beside it as ``.xml``); image URLs default to local-files serving of this folder."""
        from .exporters.label_studio import export_label_studio, local_files_prefix

        prefix = url_prefix if url_prefix is not None else local_files_prefix(self.root)
        return export_label_studio(self.store, self.out_dir / f"{self.slug}_label_studio.json", prefix, region_type)

    def export_yolo(self, out_dir: str | Path | None = None) -> Path:
        """Write all accepted annotations as a YOLO segmentation dataset in ``<slug>_yolo/``
        (images linked, labels, ``data.yaml``); returns the ``data.yaml`` path."""
        return export_yolo(self.store, self.root, Path(out_dir) if out_dir else self.out_dir / f"{self.slug}_yolo")


__all__ = ["Workspace"]
