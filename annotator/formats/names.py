"""Flat, collision-free export file names for image keys.

YOLO (``images/<name>``, ``labels/<stem>.txt``) and COCO panoptic (``<stem>.png``) write one file
per image into a single folder, so an image key (its path in the folder, ``/``-separated) has to
become one file name.  :func:`flat_names` does it for a whole dataset at once, so that no two
images share a file whatever the folder holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

SEPARATOR = "__"
"""What a ``/`` of an image key becomes in its flat name (``sub/a.jpg`` → ``sub__a.jpg``)."""

MARK = "~"
"""Between a flat stem and the number that tells it apart (``sub__a~2.jpg``)."""


def flat_name(key: str) -> str:
    """An image key as one file name, ``/`` → ``__`` (``sub/a.jpg`` → ``sub__a.jpg``): the name
    :func:`flat_names` gives it when no other key takes it first."""
    return key.replace("/", SEPARATOR)


def _fold(stem: str) -> str:
    """A stem as file systems that ignore case (macOS, Windows) compare it."""
    return unicodedata.normalize("NFC", stem).casefold()


def flat_names(keys: Iterable[str], suffix: str | None = None) -> list[str]:
    """Collision-free flat file names for a set of image keys, one per key in the given order.

    A key's plain name is :func:`flat_name` (with its suffix replaced by ``suffix`` when given,
    e.g. ``".png"``).  Names are unique by *stem*, compared without case (and Unicode-normalised),
    so that the files derived from them (``labels/<stem>.txt``, ``<stem>.png``) are distinct too,
    on case-insensitive file systems as well.  Keys whose plain stems collide (``sub/a.jpg`` and
    ``sub__a.jpg``; ``a.jpg`` and ``a.png``; ``A.jpg`` and ``a.jpg``) are ranked: a key without
    ``/`` first (its name is its own file name), then by key; the first keeps the plain name, each
    next one gets the plain stem + ``~N`` (N = 2, 3, ..., the first not taken by any other name)
    + its suffix: ``sub__a.jpg``, ``sub__a~2.jpg``.  A dataset with no collision keeps every plain
    name.

    The result depends only on the set of keys, not on their order, so every export of the
    same images names them alike.  Repeated keys get distinct names as well.

    Args:
        keys: image keys (paths relative to the images folder, ``/``-separated).
        suffix: the names' suffix (with its dot) instead of each key's own.
    Returns:
        The names, in the order of ``keys``.
    """
    keys = list(keys)
    plain = [PurePosixPath(flat_name(k)) for k in keys]
    stems = [p.stem for p in plain]
    suffixes = [suffix if suffix is not None else p.suffix for p in plain]
    names: list[str | None] = [None] * len(keys)
    taken: set[str] = set()
    losers = []
    for i in sorted(range(len(keys)), key=lambda i: ("/" in keys[i], keys[i], i)):
        folded = _fold(stems[i])
        if folded in taken:
            losers.append(i)
        else:
            taken.add(folded)
            names[i] = stems[i] + suffixes[i]
    for i in losers:  # in rank order: every plain name is reserved before any ~N is handed out
        n = 2
        while _fold(f"{stems[i]}{MARK}{n}") in taken:
            n += 1
        taken.add(_fold(f"{stems[i]}{MARK}{n}"))
        names[i] = f"{stems[i]}{MARK}{n}{suffixes[i]}"
    return [str(n) for n in names]


__all__ = ["MARK", "SEPARATOR", "flat_name", "flat_names"]
