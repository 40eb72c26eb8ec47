"""Image embeddings and their cache: SAM's image embedding and CLIP's dense map, once per image.

An image is known by its **digest** (:func:`image_digest`, a content hash of shape and pixels);
"key" is kept for an image's path relative to its folder. The cache is one
:class:`~annotator.lru.BoundedLRU` bounded in bytes; a read-only array's digest is computed
once and remembered, so a click does not hash the photo again.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..everything.pipeline import SegmentedImage
from ..lru import BoundedLRU
from ..sam import SamImageEmbedding


def done_future(value) -> Future:
    """A :class:`~concurrent.futures.Future` already holding ``value``."""
    future: Future = Future()
    future.set_result(value)
    return future


@dataclass
class CachedEmbeddings:
    """What the cache holds per image.

    Attributes:
        sam: SAM's image embedding and the decoder's image-only terms.
        clip_dense: CLIP's dense map, (C, Hf, Wf) or ``None`` (crop mode, no CLIP), as a
            :class:`~concurrent.futures.Future` (the page's first click on an image does not
            wait for it, see :meth:`EmbeddingCache.embedded`).
        segmented: the last everything pass's patches (reused by the next pass or find-all).
    """

    sam: SamImageEmbedding
    clip_dense: Future
    segmented: SegmentedImage | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held: SAM's embedding, CLIP's dense map once computed, the patches."""
        dense = self.clip_dense.result() if self.clip_dense.done() and not self.clip_dense.exception() else None
        size = 0 if dense is None else dense.numel() * dense.element_size()
        return self.sam.nbytes + size + (0 if self.segmented is None else self.segmented.nbytes)


@dataclass(frozen=True)
class ImageEmbedding:
    """One image's embeddings, the handle every prompt and pass of the engine takes.

    Attributes:
        digest: the image's content hash (:func:`image_digest`).
        image: (H, W, 3) uint8 RGB pixels (the crop classifier and everything mode need them).
        sam: SAM's image embedding and the decoder's image-only terms.
        dense: CLIP's dense map as a :class:`~concurrent.futures.Future` (done unless the
            handle came from ``embed(image, defer_labels=True)``); read :attr:`clip_dense`.
    """

    digest: str
    image: np.ndarray
    sam: SamImageEmbedding
    dense: Future

    @property
    def clip_dense(self) -> torch.Tensor | None:
        """(C, Hf, Wf) CLIP dense map on the model's device (dense label mode), else ``None``;
        waits for the pass if it is still running (and raises what it raised)."""
        return self.dense.result()

    @property
    def labels_ready(self) -> bool:
        """Whether label suggestions can be computed without waiting for CLIP's dense pass."""
        return self.dense.done()

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image in pixels."""
        return self.sam.original_size


def image_digest(image: np.ndarray) -> str:
    """Content hash of an image array (shape + pixels): 32 hex digits (BLAKE2b, 16 bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


class EmbeddingCache:
    """Per-image embeddings, LRU-bounded in bytes, computed once however many threads ask.

    Args:
        max_bytes: memory bound of the held embeddings (the newest entry is always held).

    Thread safety: :meth:`embedded` may run in several threads (a page's open beside a
    background prefetch); the same image is computed once, the others wait for it.
    """

    def __init__(self, max_bytes: int):
        self._lru: BoundedLRU[str, CachedEmbeddings] = BoundedLRU(max_bytes=max_bytes, nbytes=lambda s: s.nbytes)
        self._digests: dict[int, tuple[weakref.ref, str]] = {}  # id of a read-only array -> its digest
        self.in_use: str | None = None  # the digest last asked for by embed(): a prefetch never evicts it
        self._labeller: ThreadPoolExecutor | None = None
        self._labeller_lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The memory bound in bytes."""
        return self._lru.max_bytes

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        """Drop every held embedding."""
        self._lru.clear()

    def digest_of(self, image: np.ndarray) -> str:
        """:func:`image_digest`, computed once per read-only array (its pixels cannot change;
        the workspace's images are read-only)."""
        if image.flags.writeable:
            return image_digest(image)
        ident = id(image)
        hit = self._digests.get(ident)
        if hit is not None and hit[0]() is image:
            return hit[1]
        digest = image_digest(image)
        self._digests[ident] = (weakref.ref(image, lambda _ref: self._digests.pop(ident, None)), digest)
        return digest

    def is_cached(self, image: np.ndarray) -> bool:
        """Whether ``image``'s embeddings are held."""
        return self.digest_of(image) in self._lru

    def get(self, digest: str) -> CachedEmbeddings | None:
        """The held embeddings of an image, without making them the most recent."""
        return self._lru.get(digest, touch=False)

    def embedded(
        self,
        image: np.ndarray,
        encode_sam: Callable[[np.ndarray], SamImageEmbedding],
        dense_features: Callable[[np.ndarray], torch.Tensor] | None,
        defer_labels: bool = False,
        keep_in_use: bool = False,
    ) -> tuple[str, CachedEmbeddings]:
        """An image's embeddings, computed and held unless held already.

        Args:
            image: (H, W, 3) uint8 RGB.
            encode_sam: SAM's image encoder pass.
            dense_features: CLIP's dense pass, or ``None`` (no CLIP, or crop mode).
            defer_labels: run ``dense_features`` on the cache's one labelling thread after SAM,
                and return once SAM is done.
            keep_in_use: evict anything but the image last embedded (:attr:`in_use`): for a
                prefetch, which must not push out the image a person is working on.
        Returns:
            (digest, embeddings).
        Raises:
            ValueError: not an (H, W, 3) uint8 array.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        digest = self.digest_of(image)

        def compute() -> CachedEmbeddings:
            dense = done_future(dense_features(image) if dense_features and not defer_labels else None)
            sam = encode_sam(image)
            if dense_features and defer_labels:  # SAM first: the mask does not wait for CLIP
                dense = self._labelling().submit(dense_features, image)
            return CachedEmbeddings(sam, dense)

        keep = self.in_use if keep_in_use else None
        return digest, self._lru.get_or_compute(digest, compute, keep)

    def set_segmented(self, digest: str, segmented: SegmentedImage) -> None:
        """Keep an everything pass's patches with the image's embeddings (if still held); the
        entry becomes the newest, so the bound evicts other images first."""
        state = self._lru.get(digest, touch=False)
        if state is not None and state.segmented is not segmented:
            state.segmented = segmented
            self._lru.touch(digest, keep=self.in_use)

    def _labelling(self) -> ThreadPoolExecutor:
        """The one thread that runs deferred CLIP dense passes, in order (made on first use)."""
        with self._labeller_lock:
            if self._labeller is None:
                self._labeller = ThreadPoolExecutor(1, thread_name_prefix="clip-dense")
            return self._labeller


__all__ = ["CachedEmbeddings", "EmbeddingCache", "ImageEmbedding", "done_future", "image_digest"]
