"""The local runner: a bulk run's images annotated one after another in this process.

Each image is decoded here (:func:`~annotator.images.load_image_record`) and passed through the
per-image step (:func:`~.step.annotate_record`) with the one engine the run holds; its outcome is
yielded as soon as it is finished, so the caller journals it before the next image starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..engine import Engine
from .step import BulkConfig, ImageOutcome, process_image


class LocalRunner:
    """Annotates images in this process with ``engine`` (a :class:`~.step.Runner`).

    Args:
        engine: the loaded models, kept for the whole run.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def run(self, folder: Path, keys: Sequence[str], config: BulkConfig) -> Iterator[ImageOutcome]:
        """The outcome of each image ``folder / key``, in the order of ``keys`` (lazily: one
        image is annotated per item taken). Never raises for one image (see
        :func:`~.step.annotate_loaded`)."""
        return (process_image(self.engine, folder, key, config) for key in keys)
