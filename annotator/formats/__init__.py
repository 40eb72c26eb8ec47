"""Dataset formats that write and read, one module per format, in supervision's shape
(``to_coco`` / ``from_coco`` per module).

- :mod:`.dataset`: the :class:`Dataset` protocol every format writes (the annotation store is
  one) and :class:`InMemoryDataset`, what the readers return;
- :mod:`.registry`: :data:`FORMATS`, name → :class:`Format` (``write(dataset, out, **options)
  -> files``, ``read(path, images_root=None) -> dataset`` or ``None``);
- :mod:`.errors`: :class:`~.errors.FormatReadError`, what every reader raises: every problem of
  a file as one line (file, record, reason), nothing of the file returned;
- :mod:`.coco` (instances JSON, RLE ``<slug>_coco.json`` or polygons
  ``<slug>_coco_polygons.json``, read and written), :mod:`.coco_panoptic` (JSON + PNGs, read
  and written), :mod:`.yolo` (segmentation or detection dataset, portable, with an optional
  seeded train/val split and simplified polygons; read and written), :mod:`.masks_png` (a 16-bit
  instance-id PNG per image + ``instances.json``, read and written), :mod:`.labelme`,
  :mod:`.cvat`, :mod:`.voc` (read and written), :mod:`.label_studio` (tasks with predictions, written, pushed to a server and read);
- :mod:`.names`: the flat, collision-free file names YOLO, COCO panoptic and the mask PNGs give
  images (``sub/a.jpg`` → ``sub__a.jpg``, ``~2`` where two would share a file).
"""

from __future__ import annotations

from .dataset import Dataset, DatasetImage, ImageEntry, InMemoryDataset
from .format import Format
from .registry import FORMATS, get_format

__all__ = ["FORMATS", "Dataset", "DatasetImage", "Format", "ImageEntry", "InMemoryDataset", "get_format"]
