"""Pascal VOC segmentation + detection layout (as CVAT and datumaro write it), written and read.

Written (:func:`export_voc`, into a folder), for every image (``<stem>``: the image key made flat
and collision-free, :func:`annotator.formats.names.flat_names`, without its suffix):

- ``SegmentationClass/<stem>.png``: palette PNG (the VOC colour map), pixel = class index
  (0 background; the classes 1, 2, ... in category id order, at most 254); no 255 (void /
  boundary) is written;
- ``SegmentationObject/<stem>.png``: palette PNG, pixel = instance number 1..N (at most 254),
  0 background;
- ``Annotations/<stem>.xml``: ``filename`` (the image key), ``size``, ``segmented`` 1 and one
  ``<object>`` per instance number, in that order: ``name``, ``pose``, ``truncated`` 0,
  ``difficult`` 0, ``bndbox`` ``xmin ymin xmax ymax`` (0-based, max exclusive, as datumaro and
  CVAT write it) and ``<attributes><attribute><name>annotation_id</name><value>..`` (datumaro's
  object attributes);
- ``ImageSets/Segmentation/default.txt`` and ``ImageSets/Main/default.txt``: the stems;
- ``labelmap.txt``: ``# label:color_rgb:parts:actions`` then ``name:r,g,b::`` per class index,
  ``background`` first.

PNGs cannot hold overlaps: a pixel belongs to one instance.  Instances are painted lowest
:func:`annotator.formats.coco_panoptic.paint_priority` first, so where they overlap the
highest-priority one (a person's own above predictions, then by score; among equals the smaller
one, then the lower annotation id) keeps the pixel; an instance covered entirely is not
written (on COCO's ground truth of ``coco_tiny_val`` all 815 instances keep pixels, mean IoU
0.975 with their masks).  Instance numbers follow the annotation ids (lowest
id 1), and boxes are those of the painted pixels, so export → read → export gives the same
files.  Lost: overlaps (as above), scores, category ids (the classes are numbered by
``labelmap.txt``'s order), more than 254 instances or classes (refused).

Read (:func:`read_voc`): each image of ``ImageSets/{Segmentation,Main}/*.txt`` (else of the
PNGs and XMLs found): its instances are the numbers of ``SegmentationObject/<stem>.png`` (255
= void, ignored), the class of each the most frequent class index of its pixels in
``SegmentationClass/<stem>.png`` (else the name of the XML object of that number), the
annotation id the object's ``annotation_id`` attribute; an image with only a class PNG gets one
instance per class; an image with no segmentation gets its XML boxes as rectangle masks
(pixels ``[xmin, xmax) × [ymin, ymax)``, rounded).  Classes: ``labelmap.txt`` (else the 20 VOC classes), ids =
their index.  Image keys: the XML ``filename`` (else the stem + ``.jpg``).
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from ..fileio import atomic_write_bytes
from ..instances import Instances, Source
from ..masks import encode_rle
from .coco_panoptic import paint_priority
from .dataset import Dataset, ImageEntry, InMemoryDataset, annotation_ids
from .errors import Problems
from .format import Format
from .labelme import class_list
from .names import flat_names

VOC_CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
"""The 20 classes of Pascal VOC (indices 1..20), the class list when there is no labelmap.txt."""

VOID = 255
MAX_INDEX = 254
LABELMAP_HEADER = "# label:color_rgb:parts:actions\n"


def voc_colormap(n: int = 256) -> np.ndarray:
    """(n, 3) uint8: the Pascal VOC colour of each index (the bit-interleaving map of VOC's
    devkit; 0 black, 1 (128, 0, 0), ..., 255 (224, 224, 192))."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


_PALETTE = voc_colormap().reshape(-1).tolist()


def palette_png(index: np.ndarray) -> bytes:
    """(H, W) uint8 indices → a palette PNG with the VOC colour map."""
    img = Image.fromarray(np.ascontiguousarray(index, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def read_index_png(path: Path) -> np.ndarray:
    """(H, W) uint8 indices of a palette (or grayscale) PNG; a colour PNG is mapped back
    through the VOC colour map.

    Raises:
        ValueError: unreadable, or a colour not in the VOC colour map.
    """
    with Image.open(path) as img:
        if img.mode in ("P", "L"):
            return np.asarray(img, dtype=np.uint8)
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    cmap = voc_colormap().astype(np.int64)
    lookup = {int((r << 16) | (g << 8) | b): i for i, (r, g, b) in enumerate(cmap)}
    values, inverse = np.unique(code, return_inverse=True)
    unknown = [int(v) for v in values if int(v) not in lookup]
    if unknown:
        raise ValueError(f"colours not in the VOC colour map: {[f'#{v:06x}' for v in unknown[:5]]}")
    return np.array([lookup[int(v)] for v in values], dtype=np.uint8)[inverse].reshape(code.shape)


def painted(found: Instances, ann_ids: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The instance-number image of one image's instances and which instance each number is.

    Returns:
        ``(objects, order)``: (H, W) uint8, 0 background, k = the k-th entry of ``order`` (an
        instance index; by annotation id, those left with no pixel dropped).
    Raises:
        ValueError: more than 254 instances keep pixels.
    """
    height, width = found.image_size
    owner = np.full((height, width), -1, dtype=np.int64)
    priority = paint_priority(found)
    areas = found.areas
    for i in sorted(range(len(found)), key=lambda i: (priority[i], -int(areas[i]), -int(ann_ids[i]))):  # lowest first
        owner[found.mask(i)] = i
    kept = [int(i) for i in np.argsort(ann_ids, kind="stable") if (owner == i).any()]
    if len(kept) > MAX_INDEX:
        raise ValueError(f"{len(kept)} instances in one image; VOC instance PNGs hold at most {MAX_INDEX}")
    objects = np.zeros((height, width), dtype=np.uint8)
    for number, i in enumerate(kept, start=1):
        objects[owner == i] = number
    return objects, kept


def _object_xml(name: str, box: tuple[int, int, int, int], ann_id: int) -> ET.Element:
    obj = ET.Element("object")
    ET.SubElement(obj, "name").text = name
    ET.SubElement(obj, "pose").text = "Unspecified"
    ET.SubElement(obj, "truncated").text = "0"
    ET.SubElement(obj, "difficult").text = "0"
    bndbox = ET.SubElement(obj, "bndbox")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ET.SubElement(bndbox, tag).text = str(value)
    attr = ET.SubElement(ET.SubElement(obj, "attributes"), "attribute")
    ET.SubElement(attr, "name").text = "annotation_id"
    ET.SubElement(attr, "value").text = str(ann_id)
    return obj


def export_voc(dataset: Dataset, out_dir: str | Path) -> list[Path]:
    """Write a dataset as a VOC folder (see the module doc), each file atomically.

    Returns:
        ``labelmap.txt``, the two image lists, then per image (key order) its class PNG,
        object PNG and XML.
    Raises:
        ValueError: more than 254 classes, or more than 254 visible instances in an image.
    """
    out_dir = Path(out_dir)
    images = dataset.images
    keys = sorted(images)
    classes = class_list(dataset)
    if len(classes) > MAX_INDEX:
        raise ValueError(f"{len(classes)} classes; VOC class PNGs hold at most {MAX_INDEX}")
    index = {name: i for i, name in enumerate(classes, start=1)}
    stems = [PurePosixPath(n).stem for n in flat_names(keys)]
    per_image = {key: dataset.instances(key) for key in keys}
    ids = annotation_ids(per_image)
    cmap = voc_colormap()
    labelmap = LABELMAP_HEADER + "".join(
        f"{name}:{','.join(str(int(v)) for v in cmap[i])}::\n" for i, name in enumerate(["background", *classes])
    )
    stem_list = "".join(f"{s}\n" for s in stems).encode("utf-8")
    written = [
        atomic_write_bytes(out_dir / "labelmap.txt", labelmap.encode("utf-8")),
        atomic_write_bytes(out_dir / "ImageSets" / "Segmentation" / "default.txt", stem_list),
        atomic_write_bytes(out_dir / "ImageSets" / "Main" / "default.txt", stem_list),
    ]
    for key, stem in zip(keys, stems, strict=True):
        found, image = per_image[key], images[key]
        objects, order = painted(found, ids[key])
        class_of = np.zeros(len(order) + 1, dtype=np.uint8)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = ""
        ET.SubElement(root, "filename").text = key
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, "segmented").text = "1"
        for number, i in enumerate(order, start=1):
            name = str(found.class_names[i])
            class_of[number] = index[name]
            ys, xs = np.nonzero(objects == number)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            root.append(_object_xml(name, box, int(ids[key][i])))
        ET.indent(root, space="  ")
        written += [
            atomic_write_bytes(out_dir / "SegmentationClass" / f"{stem}.png", palette_png(class_of[objects])),
            atomic_write_bytes(out_dir / "SegmentationObject" / f"{stem}.png", palette_png(objects)),
            atomic_write_bytes(out_dir / "Annotations" / f"{stem}.xml", ET.tostring(root, encoding="utf-8") + b"\n"),
        ]
    return written


def write(dataset: Dataset, out: str | Path) -> list[Path]:
    """The registry's writer: :func:`export_voc` into the folder ``out``."""
    return export_voc(dataset, out)


def _read_labelmap(path: Path, problems: Problems) -> list[str]:
    """Class names by index (``background`` at 0) from ``labelmap.txt``, else VOC's."""
    if not path.is_file():
        return ["background", *VOC_CLASSES]
    names = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name = line.split(":", 1)[0].strip()
        if not name:
            problems.add(path, f"line {n}", "no class name before ':'")
        names.append(name)
    if len(names) > VOID:
        problems.add(path, "", f"{len(names)} classes; VOC PNGs hold at most {VOID}")
    return names


def _read_xml(path: Path) -> tuple[str | None, list[tuple[str, tuple[float, float, float, float] | None, int | None]]]:
    """(filename, objects as (name, box or None, annotation id or None)) of a VOC XML.

    Raises:
        ValueError, ET.ParseError: malformed.
    """
    root = ET.parse(path).getroot()
    if root.tag != "annotation":
        raise ValueError(f"the root element is <{root.tag}>, not <annotation>")
    filename = (root.findtext("filename") or "").strip() or None
    objects = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"object {k}: no name")
        box = None
        if (bndbox := obj.find("bndbox")) is not None:
            try:
                box = tuple(float(bndbox.findtext(t) or "") for t in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError:
                raise ValueError(f"object {k}: bndbox needs numbers xmin ymin xmax ymax") from None
        ann_id = None
        for attr in obj.findall("attributes/attribute"):
            if (attr.findtext("name") or "").strip() == "annotation_id":
                try:
                    ann_id = int((attr.findtext("value") or "").strip())
                except ValueError:
                    raise ValueError(f"object {k}: annotation_id is not an integer") from None
        objects.append((name, box, ann_id))
    return filename, objects


def read_voc(path: str | Path, images_root: str | Path | None = None) -> InMemoryDataset:
    """Read a VOC folder (ours, CVAT's, datumaro's or VOC's own; see the module doc).

    Args:
        path: the folder (the one holding ``SegmentationObject/``, ``Annotations/``, ...), or
            its ``labelmap.txt``.
        images_root: where the images are, to find a key's suffix when there is no XML
            ``filename`` (else ``.jpg``); optional.
    Returns:
        The images with their instances as RLE (source
        :attr:`~annotator.instances.Source.IMPORTED`).
    Raises:
        FormatReadError: every problem (file, record, reason); nothing is returned.
    """
    root = Path(path)
    if root.is_file() and root.parent.is_dir():  # labelmap.txt (the export's main file) or a file beside it
        root = root.parent
    with Problems() as problems:
        if not root.is_dir():
            problems.add(root, "", "not a folder")
    with Problems() as problems:
        names = _read_labelmap(root / "labelmap.txt", problems)
        lists = sorted((root / "ImageSets" / "Segmentation").glob("*.txt")) + sorted(
            (root / "ImageSets" / "Main").glob("*.txt")
        )
        stems: list[str] = []
        for file in lists:
            stems += [line.split()[0] for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lists:
            stems = [p.stem for p in sorted((root / "SegmentationObject").glob("*.png"))]
            stems += [p.stem for p in sorted((root / "Annotations").glob("*.xml"))]
        stems = list(dict.fromkeys(stems))
        if not stems:
            problems.add(root, "", "no image: no ImageSets list, SegmentationObject PNG or Annotations XML")
        index = {name: i for i, name in enumerate(names)}
        images, per_image = [], {}
        for stem in stems:
            xml_path = root / "Annotations" / f"{stem}.xml"
            obj_path = root / "SegmentationObject" / f"{stem}.png"
            cls_path = root / "SegmentationClass" / f"{stem}.png"
            filename, objects = None, []
            if xml_path.is_file():
                try:
                    filename, objects = _read_xml(xml_path)
                except (ValueError, ET.ParseError) as exc:
                    problems.add(xml_path, "", str(exc))
                    continue
            if not obj_path.is_file() and not objects and not cls_path.is_file():
                problems.add(root, f"image {stem}", "listed, but has no XML, SegmentationObject or SegmentationClass")
                continue
            key = filename or _key_for(stem, images_root)
            masks, labels, ann_ids = [], [], []
            try:
                if obj_path.is_file():
                    objs = read_index_png(obj_path)
                    height, width = objs.shape
                    classes = read_index_png(cls_path) if cls_path.is_file() else None
                    if classes is not None and classes.shape != objs.shape:
                        raise ValueError(f"{cls_path.name} is {classes.shape[::-1]}, the object PNG {objs.shape[::-1]}")
                    for number in (int(v) for v in np.unique(objs) if 0 < v < VOID):
                        mask = objs == number
                        if classes is not None:
                            counts = np.bincount(classes[mask], minlength=256)
                            counts[[0, VOID]] = 0
                            if counts.any():
                                label = names[int(counts.argmax())] if counts.argmax() < len(names) else None
                                if label is None:
                                    raise ValueError(
                                        f"instance {number}: class index {int(counts.argmax())} not in labelmap"
                                    )
                            elif number <= len(objects):
                                label = objects[number - 1][0]
                            else:
                                raise ValueError(f"instance {number}: no class (background in SegmentationClass)")
                        elif number <= len(objects):
                            label = objects[number - 1][0]
                        else:
                            raise ValueError(f"instance {number}: no SegmentationClass and no XML object")
                        masks.append(mask)
                        labels.append(label)
                        ann_ids.append(objects[number - 1][2] if number <= len(objects) else None)
                elif cls_path.is_file():  # semantic only: one instance per class
                    classes = read_index_png(cls_path)
                    height, width = classes.shape
                    for value in (int(v) for v in np.unique(classes) if 0 < v < VOID):
                        if value >= len(names):
                            raise ValueError(f"class index {value} not in labelmap")
                        masks.append(classes == value)
                        labels.append(names[value])
                        ann_ids.append(None)
                else:
                    height, width = _xml_size(xml_path)
                    for name, box, ann_id in objects:
                        if box is None:
                            raise ValueError(f"object {name!r} has no bndbox")
                        mask = np.zeros((height, width), dtype=bool)
                        x0, y0 = max(round(box[0]), 0), max(round(box[1]), 0)
                        mask[y0 : max(round(box[3]), y0), x0 : max(round(box[2]), x0)] = True
                        masks.append(mask)
                        labels.append(name)
                        ann_ids.append(ann_id)
            except (OSError, ValueError) as exc:
                problems.add(obj_path if obj_path.is_file() else xml_path, f"image {stem}", str(exc))
                continue
            for label in labels:
                if label not in index:
                    index[label] = len(index)  # a class only the XML names
            images.append(ImageEntry(key, width, height))
            per_image[key] = (masks, labels, ann_ids)
        seen: dict[str, int] = {}
        for image in images:
            seen[image.key] = seen.get(image.key, 0) + 1
        for key, count in seen.items():
            if count > 1:
                problems.add(root, f"image {key}", f"{count} stems name this image")
    categories = {name: i for name, i in index.items() if i > 0}
    all_ids = [a for masks, _, ids in per_image.values() for a in ids]
    keep_ids = None not in all_ids and len(set(all_ids)) == len(all_ids)
    instances = {}
    for image in images:
        masks, labels, ann_ids = per_image[image.key]
        instances[image.key] = Instances(
            [encode_rle(m) for m in masks],
            image_size=(image.height, image.width),
            class_names=labels,
            class_ids=[categories[n] for n in labels],
            source=Source.IMPORTED,
            data={"annotation_id": np.array(ann_ids, dtype=np.int64)} if keep_ids else {},
        )
    return InMemoryDataset(images, instances, categories)


def _xml_size(xml_path: Path) -> tuple[int, int]:
    """(height, width) from a VOC XML's ``size``.

    Raises:
        ValueError: no positive size.
    """
    size = ET.parse(xml_path).getroot().find("size")
    try:
        width, height = int(size.findtext("width")), int(size.findtext("height"))  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, ValueError):
        raise ValueError("no segmentation PNG and no <size> width / height") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"size {width}x{height}")
    return height, width


def _key_for(stem: str, images_root: str | Path | None) -> str:
    if images_root is not None:
        for candidate in sorted(Path(images_root).glob(f"{stem}.*")):
            return candidate.name
    return f"{stem}.jpg"


FORMAT = Format(
    name="voc",
    description="Pascal VOC (class and instance PNGs, XML boxes, labelmap.txt)",
    write=write,
    read=read_voc,
    options=(),
    suffix="_voc",
    category_ids=False,
)

__all__ = ["FORMAT", "VOC_CLASSES", "export_voc", "palette_png", "read_index_png", "read_voc", "voc_colormap", "write"]
