"""A folder of images being annotated: the image list, the engine, the annotation store and
the folder's outputs.

Everything the UI does goes through here, so it can be scripted too::

    ws = Workspace.open_folder(engine, "photos/", "exports/")
    key = ws.keys[0]
    emb = ws.engine.embed(ws.load(key))
    result = ws.engine.predict(emb, point_coords=[[320, 240]], point_labels=[1])
    ws.store.add_instances(key, result.to_instances())
    ws.export("coco")  # exports/photos_coco.json

The workspace keeps no current image: each page session holds the embedding of its own.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .engine import Engine
from .images import ImageLoadError, list_images, load_image
from .lru import BoundedLRU
from .outputs import FolderOutputs
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
        outputs: the folder and where its store and exports go.
        keys: image keys, in display order.
        store: where accepted annotations are kept.
        image_cache_bytes: memory bound of the decoded-image cache (pixels of recent images).
    """

    def __init__(
        self,
        engine: Engine,
        outputs: FolderOutputs,
        keys: list[str],
        store: AnnotationStore,
        image_cache_bytes: int = 512 << 20,
    ):
        self.engine = engine
        self.outputs = outputs
        self.root = outputs.folder
        self.out_dir = outputs.out_dir
        self.keys = keys
        self.store = store
        self.image_cache_bytes = image_cache_bytes
        self._images: BoundedLRU[str, np.ndarray] = BoundedLRU(max_bytes=image_cache_bytes, nbytes=lambda a: a.nbytes)
        self._prefetcher: ThreadPoolExecutor | None = None
        self._prefetching: list[Future] = []
        # key -> (the file's (size, mtime_ns) when it failed to load, the reason): a changed file is tried again
        self._unreadable: dict[str, tuple[tuple[int, int] | None, str]] = {}
        self._unreadable_lock = threading.Lock()

    @classmethod
    def open_folder(
        cls,
        engine: Engine,
        folder: str | Path,
        out_dir: str | Path,
        recursive: bool = True,
        database: str | None = None,
    ) -> Workspace:
        """List the images of ``folder`` and open (or create) its store: in ``out_dir``, or in
        ``database`` (an SQLAlchemy URL, see :meth:`annotator.outputs.FolderOutputs.open_store`).

        Raises:
            FileNotFoundError: ``folder`` does not exist.
            ValueError: ``folder`` holds no image files.
            annotator.store.StoreError: the store cannot be opened.
        """
        outputs = FolderOutputs(folder, out_dir)
        paths = list_images(outputs.folder, recursive=recursive)
        if not paths:
            raise ValueError(f"{outputs.folder} contains no image files")
        keys = [p.relative_to(outputs.folder).as_posix() for p in paths]
        vocab = engine.vocabulary
        preferred = dict(zip(vocab.names, vocab.ids, strict=True)) if vocab else {}
        return cls(engine, outputs, keys, outputs.open_store(category_ids=preferred, database=database))

    @property
    def slug(self) -> str:
        """Short name of the folder, used in file names."""
        return self.outputs.slug

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
        image = self._images.get(key)
        if image is None:
            version = self._version(key)
            try:
                image = load_image(self.root / key)
            except ImageLoadError as exc:
                with self._unreadable_lock:
                    self._unreadable[key] = (version, str(exc))
                raise
            with self._unreadable_lock:
                self._unreadable.pop(key, None)
            image.flags.writeable = False
            self._images.put(key, image)
        return image

    def _version(self, key: str) -> tuple[int, int] | None:
        """The file's (size in bytes, mtime in ns), ``None`` when it cannot be stat'ed."""
        try:
            st = os.stat(self.root / key)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def unreadable(self) -> dict[str, str]:
        """Images that failed to load, ``{key: reason}``, as long as their file has not changed
        since (same size and mtime): a changed file is left out (the next :meth:`load` tries it
        again). Stats only the files that failed."""
        with self._unreadable_lock:
            known = dict(self._unreadable)
        return {k: reason for k, (version, reason) in known.items() if self._version(k) == version}

    def _known_unreadable(self, key: str) -> bool:
        """Whether ``key`` failed to load before and its file has not changed since."""
        with self._unreadable_lock:
            known = self._unreadable.get(key)
        return known is not None and known[0] == self._version(key)

    def prefetch(self, keys: list[str], limit: int | None = None) -> Future:
        """Embed images in one background thread, so that opening them later costs a cache hit.

        The keys are taken in order; an unreadable image is skipped (the next one is taken
        instead) and logged once per file version (a file that failed and has not changed since is
        skipped silently); images already cached count as done. Jobs run one after another.

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
            if self._known_unreadable(key):  # already logged for this version of the file
                continue
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
        """The image worked on last (the store remembers it), else the first one."""
        key = self.store.last_image
        return key if key in self.keys else self.keys[0]

    def export(self, fmt: str = "coco", **options) -> Path:
        """Write all accepted annotations in a format of :data:`annotator.formats.FORMATS` to
        the folder's output place (see :meth:`annotator.outputs.FolderOutputs.export` for
        ``options``); panoptic ``isthing`` comes from the vocabulary unless given.

        Returns:
            The JSON written (``data.yaml`` for YOLO); :meth:`export_files` gives every file.
        Raises:
            ValueError: unknown format.
        """
        return self.export_files(fmt, **options)[0]

    def export_files(self, fmt: str = "coco", only: str = "all", **options) -> list[Path]:
        """As :meth:`export`, returning every file written, the main one first (see
        :meth:`annotator.outputs.FolderOutputs.export_files`).

        Args:
            only: ``all`` (every annotation but the rejected ones) or ``accepted`` (see
                :class:`~annotator.formats.dataset.ReviewedView`).
        """
        from .formats.dataset import ReviewedView

        if fmt == "coco-panoptic" and "isthing" not in options and self.engine.vocabulary is not None:
            options["isthing"] = self.engine.vocabulary.isthing_by_name()
        return self.outputs.export_files(ReviewedView(self.store, only), fmt, **options)

    def import_annotations(
        self, path: str | Path, fmt: str, missing: str = "error", replace: bool = False, author=None
    ):
        """Import a file's annotations of this folder into its store as predictions (see
        :func:`annotator.importer.import_annotations`); images known unreadable stay marked.

        Returns:
            :class:`~annotator.importer.ImportSummary`.
        Raises:
            annotator.formats.errors.FormatReadError: problems (every one listed); nothing imported.
            ValueError, FileNotFoundError: an unreadable format, no such file.
        """
        from .importer import import_annotations

        return import_annotations(self.store, self.root, path, fmt, missing=missing, replace=replace, author=author)


__all__ = ["Workspace"]
