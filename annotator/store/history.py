"""Undo and redo of an image's annotation changes, kept in the database (``history`` table).

Every change the page makes (accept, delete, relabel, merge, intersect, subtract, re-prompt
replace, hand edit, everything, find-all accept) is logged in its own transaction: the rows it
removed or changed as they were (``before``), the rows it added or changed as they became
(``after``), and the category and image rows it created. Undo puts ``before`` back and removes
``after``; redo the reverse; both leave the annotations, categories and images exactly as they
were (ids included; the id counter goes on, ids are never given twice). The history is per
image, shared by everyone on the dataset, survives reloads and restarts; a new change clears the
image's redo steps; :data:`MAX_STEPS` are kept per image.

A step is refused (nothing changes) when the rows are no longer as it left them: e.g. a bulk run
(which keeps no history) or a class rename (the dataset-wide class history of :mod:`.classes`)
changed them since.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from . import schema as t
from .model import Annotation, Change
from .rows import annotation_of, row_of

MAX_STEPS = 200
"""Changes kept per image for undo (older ones are forgotten)."""


class HistoryMixin:
    """The undo history of :class:`~annotator.store.AnnotationStore` (see the module docstring)."""

    def _log(
        self, conn: Connection, kind: str, before: list[Annotation], after: list[Annotation], author: str | None
    ) -> None:
        """Log one change (one step per image it touched), clearing those images' redo steps."""
        images = list(dict.fromkeys([a.image for a in before] + [a.image for a in after]))
        created = self._local.created
        for n, image in enumerate(images):
            hist = t.history
            mine = (hist.c.dataset_id == self._id, hist.c.image == image)
            conn.execute(delete(hist).where(*mine, hist.c.undone.is_(True)))
            conn.execute(
                insert(hist).values(
                    dataset_id=self._id,
                    image=image,
                    kind=kind,
                    before=[asdict(a) for a in before if a.image == image],
                    after=[asdict(a) for a in after if a.image == image],
                    created_rows={
                        "categories": created["categories"] if n == 0 else [],
                        "image": created["images"].get(image),
                    },
                    undone=False,
                    created=time.time(),
                    author=self.author if author is None else author,
                )
            )
            self._trim_history(conn, image, MAX_STEPS)

    def _trim_history(self, conn: Connection, image: str, keep: int) -> None:
        """Drop the steps of ``image`` (or the class steps) older than its newest ``keep``."""
        hist = t.history
        mine = (hist.c.dataset_id == self._id, hist.c.image == image)
        oldest = conn.execute(select(hist.c.id).where(*mine).order_by(hist.c.id.desc()).offset(keep).limit(1)).scalar()
        if oldest is not None:
            conn.execute(delete(hist).where(*mine, hist.c.id <= oldest))

    def _step(self, conn: Connection, image: str, undone: bool):
        hist = t.history
        order = hist.c.id.asc() if undone else hist.c.id.desc()
        return conn.execute(
            select(hist)
            .where(hist.c.dataset_id == self._id, hist.c.image == image, hist.c.undone.is_(undone))
            .order_by(order)
            .limit(1)
        ).first()

    def history_depth(self, image: str) -> tuple[int, int]:
        """(changes of ``image`` that can be undone, that can be redone)."""
        hist = t.history
        with self._read() as conn:
            rows = conn.execute(
                select(hist.c.undone, func.count())
                .where(hist.c.dataset_id == self._id, hist.c.image == image)
                .group_by(hist.c.undone)
            )
            n = {bool(u): int(c) for u, c in rows}
        return n.get(False, 0), n.get(True, 0)

    def undo(self, image: str, request_id: str | None = None) -> Change | None:
        """Undo the last change of ``image``'s annotations (one transaction).

        Returns:
            What changed, ``None`` when there is nothing to undo.
        Raises:
            ValueError: the change's annotations were changed since outside the history
                (nothing changed), or ``request_id`` was used for another kind of write.
        """
        return self._travel(image, "undo", request_id)

    def redo(self, image: str, request_id: str | None = None) -> Change | None:
        """Redo the change of ``image`` undone last (as :meth:`undo`); ``None``: nothing to redo."""
        return self._travel(image, "redo", request_id)

    def _travel(self, image: str, way: str, request_id: str | None) -> Change | None:
        if not image:  # the class history's steps (store/classes.py): undo_classes, redo_classes
            raise ValueError("name the image whose change to undo or redo")
        with self._write() as conn:
            change = self._replayed_change(conn, request_id, way) or self._travelled(conn, image, way, request_id)
        if change is not None:
            change.undoable, change.redoable = self.history_depth(image)
        return change

    def _travelled(self, conn: Connection, image: str, way: str, request_id: str | None) -> Change | None:
        step = self._step(conn, image, undone=way == "redo")
        if step is None:
            return None
        now_rows, then_rows = (step.after, step.before) if way == "undo" else (step.before, step.after)
        now = [Annotation(**a) for a in now_rows]
        then = [Annotation(**a) for a in then_rows]
        self._check_unchanged(conn, now, {a.id for a in then} - {a.id for a in now})
        made = step.created_rows or {}
        if way == "redo":
            moved = self._recreate(conn, made, image)
            if moved:  # the rows take the ids their names have now; the step keeps them for the next undo
                for a in then:
                    a.category_id = moved.get(a.category_id, a.category_id)
                made = {**made, "categories": [[n, moved.get(int(c), int(c))] for n, c in made.get("categories") or []]}
                conn.execute(
                    update(t.history)
                    .where(t.history.c.id == step.id)
                    .values(after=[asdict(a) for a in then], created_rows=made)
                )
        ids = [a.id for a in now]
        if ids:
            conn.execute(delete(t.annotations).where(self._is(t.annotations), t.annotations.c.id.in_(ids)))
        if then:
            conn.execute(insert(t.annotations), [row_of(self._id, a) for a in then])
        if way == "undo":
            self._drop_created(conn, made, image)
        conn.execute(update(t.history).where(t.history.c.id == step.id).values(undone=way == "undo"))
        kept = {a.id for a in then}
        change = Change(step.kind, image, [i for i in ids if i not in kept], then)
        self._remember(conn, request_id, way, asdict(change))
        return change

    def _replayed_change(self, conn: Connection, request_id: str | None, way: str) -> Change | None:
        r = self._request_result(conn, request_id, way)
        if r is None:
            return None
        r = dict(r)
        r["annotations"] = [Annotation(**a) for a in r["annotations"]]
        return Change(**r)

    def _check_unchanged(self, conn: Connection, expected: list[Annotation], absent: set[int]) -> None:
        current = {
            int(r.id): r
            for r in conn.execute(
                select(t.annotations).where(
                    self._is(t.annotations), t.annotations.c.id.in_([a.id for a in expected] + sorted(absent))
                )
            )
        }
        for a in expected:
            row = current.get(a.id)
            if row is None or asdict(annotation_of(row)) != asdict(a):
                raise ValueError(
                    f"annotation {a.id} was changed since, outside this image's undo history (a class rename, "
                    "a bulk run): nothing undone"
                )
        back = sorted(absent & current.keys())
        if back:
            raise ValueError(f"annotation {back[0]} exists again: nothing undone")

    def _recreate(self, conn: Connection, made: dict, image: str) -> dict[int, int]:
        """Redo: the categories and the image row the change had created, with their ids where
        still free. Returns the category ids that moved, old → new (a name that exists again, or
        an id another name took meanwhile)."""
        if made.get("image") is not None:
            self._ensure_image(conn, image, *made["image"])
        moved = {}
        for name, cid in made.get("categories") or []:
            taken = conn.execute(
                select(func.count())
                .select_from(t.categories)
                .where(self._is(t.categories), (t.categories.c.name == name) | (t.categories.c.category_id == int(cid)))
            ).scalar()
            if not taken:
                conn.execute(insert(t.categories).values(dataset_id=self._id, name=name, category_id=int(cid)))
                continue
            now = self._category_id(conn, name)
            if now != int(cid):
                moved[int(cid)] = now
        return moved

    def _drop_created(self, conn: Connection, made: dict, image: str) -> None:
        """Undo: the categories no annotation uses any more and the image row with nothing left,
        that the change had created (an image marked done stays)."""
        for name, cid in made.get("categories") or []:
            used = conn.execute(
                select(func.count())
                .select_from(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.category_id == int(cid))
            ).scalar()
            if not used:
                conn.execute(delete(t.categories).where(self._is(t.categories), t.categories.c.name == name))
        if made.get("image") is not None:
            left = conn.execute(
                select(func.count())
                .select_from(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.image == image)
            ).scalar()
            done = conn.execute(select(t.done.c.key).where(self._is(t.done), t.done.c.key == image)).first()
            if not left and done is None:
                conn.execute(delete(t.images).where(self._is(t.images), t.images.c.key == image))


__all__ = ["MAX_STEPS", "HistoryMixin"]
