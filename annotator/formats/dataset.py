"""The dataset every format writes and reads: images, their instances and the categories.

:class:`Dataset` is a :class:`typing.Protocol`: anything with ``images`` (key → an image with
``key``, ``width``, ``height``), ``categories`` (name → id), ``instances(key)`` and
``declared_categories()`` is one.  The annotation store
(:class:`~annotator.store.AnnotationStore`) is one as it is; :class:`InMemoryDataset` is the
one the readers return, and a snapshot of any other (:meth:`InMemoryDataset.from_dataset`).

Image keys are paths relative to the image folder with POSIX separators (COCO's
``file_name``); sizes are pixels of the upright image; masks are at that resolution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..instances import Instances


@runtime_checkable
class DatasetImage(Protocol):
    """An image of a dataset: ``key`` (relative POSIX path), ``width`` and ``height`` in pixels."""

    key: str
    width: int
    height: int


@runtime_checkable
class Dataset(Protocol):
    """What the formats write and read.

    Attributes:
        images: image key → :class:`DatasetImage`, images without instances included.
        categories: category name → id, for every class name the instances use (it may hold
            more).
    """

    @property
    def images(self) -> Mapping[str, DatasetImage]: ...

    @property
    def categories(self) -> Mapping[str, int]: ...

    def instances(self, key: str) -> Instances:
        """The instances of image ``key`` (masks at its resolution, ``class_ids`` the dataset's
        category ids); ``data["annotation_id"]`` (int64) where they carry ids.

        Raises:
            KeyError: ``key`` is not an image of the dataset.
        """
        ...

    def declared_categories(self) -> dict[str, int]:
        """Categories the exports list even where no instance has them (name → id)."""
        ...


@dataclass(frozen=True)
class ImageEntry:
    """An image of an :class:`InMemoryDataset`: ``key`` (relative POSIX path), ``width`` and
    ``height`` in pixels."""

    key: str
    width: int
    height: int


class InMemoryDataset:
    """A :class:`Dataset` held in memory: what the formats' readers return.

    Args:
        images: the images (any objects with ``key``, ``width``, ``height``).
        instances: image key → its :class:`~annotator.instances.Instances`; images absent here
            have none.
        categories: category name → id: every class name of the instances, plus the categories
            to list without instances (all of them are :meth:`declared_categories`).
    Raises:
        ValueError: instances of an unknown image or of another size than their image, a class
            name without a category, or a ``class_ids`` entry that is not its name's id.
    """

    def __init__(
        self,
        images: Iterable[DatasetImage],
        instances: Mapping[str, Instances] | None = None,
        categories: Mapping[str, int] | None = None,
    ):
        self._images = {im.key: ImageEntry(str(im.key), int(im.width), int(im.height)) for im in images}
        self._categories = {str(name): int(cid) for name, cid in (categories or {}).items()}
        self._instances: dict[str, Instances] = {}
        for key, found in (instances or {}).items():
            if key not in self._images:
                raise ValueError(f"instances of {key!r}, which is not an image of the dataset")
            image = self._images[key]
            if found.image_size != (image.height, image.width):
                raise ValueError(
                    f"{key}: instances of {found.image_size} for an image of {(image.height, image.width)}"
                )
            for name, cid in zip(found.class_names, found.class_ids, strict=True):
                if name not in self._categories:
                    raise ValueError(f"{key}: class {name!r} has no category")
                if int(cid) != self._categories[name]:
                    raise ValueError(
                        f"{key}: class {name!r} with id {int(cid)}, its category's is {self._categories[name]}"
                    )
            self._instances[key] = found

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> InMemoryDataset:
        """A snapshot of any dataset (e.g. an annotation store): its images, their instances,
        and as categories those the instances use and the declared ones."""
        per_image = {key: dataset.instances(key) for key in dataset.images}
        categories = dict(dataset.declared_categories())
        for found in per_image.values():
            categories.update(zip((str(n) for n in found.class_names), (int(c) for c in found.class_ids), strict=True))
        return cls(dataset.images.values(), per_image, categories)

    @property
    def images(self) -> dict[str, ImageEntry]:
        """Image key → :class:`ImageEntry` (a copy)."""
        return dict(self._images)

    @property
    def categories(self) -> dict[str, int]:
        """Category name → id (a copy)."""
        return dict(self._categories)

    def instances(self, key: str) -> Instances:
        """A copy of image ``key``'s instances (empty when it has none).

        Raises:
            KeyError: ``key`` is not an image of the dataset.
        """
        image = self._images[key]
        found = self._instances.get(key)
        if found is None:
            return Instances.empty((image.height, image.width))
        return found[np.arange(len(found))]

    def declared_categories(self) -> dict[str, int]:
        """Every category of the dataset (name → id): a read dataset lists all it was given."""
        return dict(self._categories)

    def __len__(self) -> int:
        return len(self._images)


def annotation_ids(per_image: Mapping[str, Instances]) -> dict[str, np.ndarray]:
    """The annotation id of every instance: ``data["annotation_id"]`` where every image with
    instances carries them (the store's do), else 1, 2, ... through the images in the given order.

    Args:
        per_image: image key → its instances.
    Returns:
        image key → (N,) int64, N = its number of instances.
    """
    if all("annotation_id" in found.data for found in per_image.values() if len(found)):
        return {
            key: np.asarray(found.data.get("annotation_id", np.zeros(0)), dtype=np.int64)
            for key, found in per_image.items()
        }
    out, first = {}, 1
    for key, found in per_image.items():
        out[key] = np.arange(first, first + len(found), dtype=np.int64)
        first += len(found)
    return out


EXPORT_SELECTIONS = ("all", "accepted")
"""What an export takes (``--only``): ``all`` (every annotation but the rejected ones) or
``accepted`` (those a person made or accepted)."""


class ReviewedView:
    """A dataset seen through the review states of its instances (``data["state"]``, as the
    store gives them; instances without states count as accepted): ``only="all"`` leaves out the
    rejected ones, ``only="accepted"`` keeps the accepted ones alone. Images stay, those left
    without instances too (negatives).

    Args:
        dataset: any :class:`Dataset` (the annotation store).
        only: one of :data:`EXPORT_SELECTIONS`.
    Raises:
        ValueError: another ``only``.
    """

    def __init__(self, dataset: Dataset, only: str = "all"):
        if only not in EXPORT_SELECTIONS:
            raise ValueError(f"only must be one of {EXPORT_SELECTIONS}, not {only!r}")
        self.dataset, self.only = dataset, only

    @property
    def images(self) -> Mapping[str, DatasetImage]:
        """The dataset's images, all of them."""
        return self.dataset.images

    @property
    def categories(self) -> Mapping[str, int]:
        """The dataset's categories."""
        return self.dataset.categories

    def declared_categories(self) -> dict[str, int]:
        """The dataset's declared categories."""
        return self.dataset.declared_categories()

    def instances(self, key: str) -> Instances:
        """Image ``key``'s instances that the selection keeps, in order.

        Raises:
            KeyError: ``key`` is not an image of the dataset.
        """
        found = self.dataset.instances(key)
        states = found.data.get("state")
        if states is None or not len(found):
            return found
        states = np.asarray([str(s) for s in states], dtype=object)
        keep = states == "accepted" if self.only == "accepted" else states != "rejected"
        return found[np.nonzero(keep)[0]]


__all__ = [
    "EXPORT_SELECTIONS",
    "Dataset",
    "DatasetImage",
    "ImageEntry",
    "InMemoryDataset",
    "ReviewedView",
    "annotation_ids",
]
