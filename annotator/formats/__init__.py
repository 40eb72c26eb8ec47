"""Dataset formats that write and read, one module per format, in supervision's shape
(``to_coco`` / ``from_coco`` per module).

- :mod:`.dataset`: the :class:`Dataset` protocol every format writes (the annotation store is
  one) and :class:`InMemoryDataset`, what the readers return;
- :mod:`.registry`: :data:`FORMATS`, name → :class:`Format` (``write(dataset, out, **options)
  -> files``, ``read(path) -> dataset`` or ``None``);
- :mod:`.coco` (instances JSON, read and written), :mod:`.coco_panoptic` (JSON + PNGs, read and
  written), :mod:`.yolo` (segmentation dataset, read and written), :mod:`.label_studio` (tasks
  with predictions, written and pushed to a server; not read back);
- :mod:`.names`: the flat, collision-free file names YOLO and COCO panoptic give images
  (``sub/a.jpg`` → ``sub__a.jpg``, ``~2`` where two would share a file).
"""

from __future__ import annotations

from .dataset import Dataset, DatasetImage, ImageEntry, InMemoryDataset
from .format import Format
from .registry import FORMATS, get_format

__all__ = ["FORMATS", "Dataset", "DatasetImage", "Format", "ImageEntry", "InMemoryDataset", "get_format"]
