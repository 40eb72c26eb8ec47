"""The journal of a bulk run: what became of each image, durable line by line, read to resume.

Format: JSON Lines (UTF-8), one :class:`~.step.ImageOutcome` per line, appended by the calling
process as each image finishes (flushed and fsynced, see :func:`~annotator.fileio.append_jsonl`)::

    {"key": "sub/a.jpg", "status": "done", "reason": null, "width": 640, "height": 480,
     "annotations": [{"label", "rle", "area", "score", "predicted_iou", "prompt", "source"}, ...],
     "seconds": 1.23}

``status`` is ``done``, ``skipped`` (unreadable; its line also has ``"file": {"size",
"mtime_ns"}``, the file as it was) or ``failed`` (a model error); the annotation records are
those of :mod:`.records`.  Reading it back, the last line of a key wins; a torn line (a crash
mid-write) or an unreadable one is skipped with a warning, so its image is redone.  Resuming
annotates the images the journal lacks or has as ``failed``, and those it has as ``skipped``
whose file changed since (another size or modification time; a line without ``file``, from an
older journal, counts as changed), or every skipped one when asked (``annotate
--retry-skipped``): see :func:`skipped_to_retry`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import asdict
from pathlib import Path

from ..fileio import append_jsonl, read_jsonl
from .step import ImageOutcome

log = logging.getLogger(__name__)


class Journal:
    """Append-only JSON Lines file of :class:`~.step.ImageOutcome`, durable line by line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict[str, ImageOutcome]:
        """Outcomes by key (the last line of a key wins); unreadable lines are skipped with a
        warning, so their images are redone."""
        out: dict[str, ImageOutcome] = {}
        for n, record in read_jsonl(self.path):
            try:
                item = ImageOutcome(**record)
            except TypeError as exc:
                log.warning("%s line %d unreadable (%s): that image will be redone", self.path, n, exc)
                continue
            out[item.key] = item
        return out

    def append(self, outcome: ImageOutcome) -> None:
        """Write one line and fsync it (see :func:`~annotator.fileio.append_jsonl`)."""
        append_jsonl(self.path, asdict(outcome))


def file_stat(path: str | Path) -> dict | None:
    """What tells a file's versions apart: ``{"size": bytes, "mtime_ns": modification time in
    ns}``; ``None`` when it cannot be read (gone, no permission)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def skipped_to_retry(keys: list[str], seen: dict[str, ImageOutcome], folder: Path, every: bool = False) -> set[str]:
    """The keys journalled as ``skipped`` that this run tries again: those whose file
    (``folder / key``) changed since it was skipped (another :func:`file_stat`, or none recorded:
    an older journal), or all of them with ``every``. A skipped file left as it was is not
    read again: it would be skipped again."""
    skipped = [k for k in keys if k in seen and seen[k].status == "skipped"]
    if every:
        return set(skipped)
    return {k for k in skipped if seen[k].file is None or file_stat(folder / k) != seen[k].file}


def pending(keys: list[str], seen: dict[str, ImageOutcome], retry: Collection[str] = ()) -> Iterator[str]:
    """Keys not journalled yet, journalled as ``failed`` (retried on every run), or journalled as
    ``skipped`` and in ``retry`` (see :func:`skipped_to_retry`), in order."""
    return (k for k in keys if k not in seen or seen[k].status == "failed" or k in retry)


def resumed(keys: list[str], seen: dict[str, ImageOutcome]) -> int:
    """How many of ``keys`` the journal already holds as ``done`` (annotated by an earlier run and
    not redone); images it holds as ``skipped`` are not counted: they are skipped, not done."""
    return sum(k in seen and seen[k].status == "done" for k in keys)


def check_same_classes(journal: Journal, seen: dict[str, ImageOutcome], classes: list[str]) -> None:
    """Refuse to resume a journal of everything-pass results made with other ``--classes`` (or
    none): its images would be skipped and the folder would mix two questions. Read from the
    classes each journalled everything-pass annotation records in its prompt.

    Args:
        seen: the journal's outcomes (:meth:`Journal.read`); classes: this run's class names.
    Raises:
        ValueError: the journal holds results of other classes; the message says what to do.
    """
    made = {
        tuple(a["prompt"].get("classes") or ())
        for o in seen.values()
        if o.status == "done"
        for a in o.annotations
        if "everything" in (a.get("prompt") or {})
    }
    other = made - {tuple(classes)}
    if other:
        before = ", ".join(sorted(other)[0]) or "no --classes"
        raise ValueError(
            f"{journal.path} holds results of another question ({before}); to resume it, run with the "
            f"same classes; for {', '.join(classes) or 'no --classes'}, use another --out"
        )
