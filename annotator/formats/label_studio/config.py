"""Label Studio's side of a project: the labelling config of our tasks and the image URLs.

Our tasks hold one image (``<Image name="image" value="$image">``) and one control of the
classes, ``<BrushLabels>`` (exact masks) or ``<PolygonLabels>``, named ``label``
(https://labelstud.io/tags/brushlabels, https://labelstud.io/tags/polygonlabels).  Image URLs
are a prefix + the image's path in the folder; with Label Studio's local-files serving
(``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``, ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` =
a parent of the folder) the prefix is ``/data/local-files/?d=<folder relative to the root>/``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

REGION_TYPES = ("brush", "polygon")
FROM_NAME, TO_NAME = "label", "image"
MODEL_VERSION = "ovsam-annotator"


def labeling_config(labels: list[str], region_type: str = "brush") -> str:
    """The labelling config XML for an image task with these classes.

    Raises:
        ValueError: unknown ``region_type``.
    """
    if region_type not in REGION_TYPES:
        raise ValueError(f"region_type must be one of {REGION_TYPES}")
    tag = "BrushLabels" if region_type == "brush" else "PolygonLabels"
    items = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in labels)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <{tag} name="{FROM_NAME}" toName="{TO_NAME}">\n{items}\n  </{tag}>\n</View>\n'
    )


def local_files_prefix(folder: str | Path, document_root: str | Path | None = None) -> str:
    """Image URL prefix for Label Studio's local-files serving of ``folder``:
    ``/data/local-files/?d=<folder relative to the document root>/``.

    Args:
        folder: the image folder, on the server's disk.
        document_root: the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; default the
            folder's parent.
    Raises:
        ValueError: ``folder`` is not inside ``document_root``.
    """
    folder = Path(folder).resolve()
    root = Path(document_root).resolve() if document_root is not None else folder.parent
    try:
        rel = folder.relative_to(root)
    except ValueError:
        raise ValueError(f"{folder} is not inside the local-files document root {root}") from None
    return f"/data/local-files/?d={quote(rel.as_posix())}/"


def image_url(url_prefix: str, key: str) -> str:
    """``data.image`` of an image: the prefix + its folder-relative path, URL-quoted."""
    return url_prefix + quote(key)


__all__ = [
    "FROM_NAME",
    "MODEL_VERSION",
    "REGION_TYPES",
    "TO_NAME",
    "image_url",
    "labeling_config",
    "local_files_prefix",
]
