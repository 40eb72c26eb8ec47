"""The project's classes (the ``categories`` table): counts, rename, merge, a fixed class list,
and undo / redo of class changes.

A class is a category name with its stable id. :meth:`ClassesMixin.rename_category` renames
one: every annotation of it takes the new name, the id stays; when the new name is a class
already, that is a merge: the annotations take the other class's name and id and the old
class's row goes. :meth:`ClassesMixin.merge_categories` merges several into one. Each is one
transaction and one step of the **class history**.

The class history is dataset-wide, not per image: a rename changes annotations on many images
at once, and its category rows belong to no image. Its steps are kept in the ``history`` table
under the image key :data:`CLASS_STEPS` (``""``, which no image has), so the per-image undo
(Ctrl+Z on an image) never undoes a rename by surprise; the class panel undoes and redoes them
(:meth:`ClassesMixin.undo_classes`, :meth:`ClassesMixin.redo_classes`). A step records, per
name moved, the ids of the annotations it relabelled and the category rows before and after;
only ``label`` and ``category_id`` of those rows change, so undo puts them back byte for byte
(and ``meta["classes"]``, the declared class list, too). A step is refused (nothing changes)
when the rows are no longer as it left them: one of its annotations deleted or relabelled since,
the class given to annotations made since, or the old name taken again.

A per-image step logged before a rename still holds the old label: undoing it after the rename
is refused (the rows changed since) until the rename is undone.

With a fixed class list (:meth:`ClassesMixin.declare_classes`, the page's ``--classes FILE``)
every write that names a label (accept, relabel, merge, re-prompt, find-all and everything
accepts, rename) refuses one not in the list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from . import schema as t
from .model import checked_label

log = logging.getLogger(__name__)

CLASS_STEPS = ""
"""The ``history.image`` of the class history's steps (no image key is empty)."""

MAX_CLASS_STEPS = 50
"""Class changes kept for undo (older ones are forgotten)."""


@dataclass
class ClassInfo:
    """One class of the project: its ``name``, stable ``id`` and ``count`` of annotations."""

    name: str
    id: int
    count: int


@dataclass
class ClassChange:
    """What a class rename or merge (or its undo / redo) did.

    Attributes:
        kind: ``rename`` or ``merge`` (of the step undone or redone, for those).
        moves: ``[old name, new name]`` per class moved, in order (undo: reversed, new → old).
        ids: the annotations relabelled (every image).
        images: their image keys, sorted.
        undoable, redoable: class changes that can be undone, redone now.
    """

    kind: str
    moves: list[list[str]]
    ids: list[int]
    images: list[str]
    undoable: int = 0
    redoable: int = 0
    way: str = field(default="do")


class ClassesMixin:
    """The class operations of :class:`~annotator.store.AnnotationStore` (see the module docstring)."""

    allowed: frozenset[str] | None = None
    """The class list labels must come from (:meth:`declare_classes`); ``None``: any label."""

    # ------------------------------------------------------------------ the class list
    def _label_id(self, conn: Connection, name: str) -> int:
        """The id of ``name`` for a write that labels annotations with it (created on first use).

        Raises:
            ValueError: a class list is declared and ``name`` is not in it.
        """
        self.check_class(name)
        return self._category_id(conn, name)

    def check_class(self, name: str) -> str:
        """``name`` if annotations may take it (any, unless a class list is declared).

        Raises:
            ValueError: not in the declared class list (the message names a few of the list).
        """
        if self.allowed is not None and name not in self.allowed:
            names = sorted(self.allowed)
            shown = ", ".join(names[:8]) + (f" … ({len(names)} in all)" if len(names) > 8 else "")
            raise ValueError(f"{name!r} is not one of this project's classes (--classes): {shown}")
        return name

    def declare_classes(self, classes: Mapping[str, int]) -> list[str]:
        """Fix the project's class list (the page's ``--classes FILE``): each class exists in the
        store from now on (count 0 included), with the given id where the store has none for it,
        and only these names label annotations written through this store object.

        A class the store already has keeps the id it has (exports so far used it; ids are stable
        per project); an id another class holds already is not taken (the class gets a new one).
        Both are said in the warnings returned (and logged).

        Args:
            classes: name → preferred id (:func:`annotator.vocabulary.load_vocabulary` of the file).
        Returns:
            Warnings, one line each (empty: every class has the file's id).
        Raises:
            ValueError: no class, or a name the store refuses (empty, too long, control characters).
        """
        if not classes:
            raise ValueError("the class list names no class")
        names = {checked_label(n): int(i) for n, i in classes.items()}
        warnings = []
        with self._write() as conn:
            have = {
                r.name: int(r.category_id)
                for r in conn.execute(
                    select(t.categories.c.name, t.categories.c.category_id).where(self._is(t.categories))
                )
            }
            by_id = {i: n for n, i in have.items()}
            for name, want in names.items():
                if name in have:
                    if have[name] != want:
                        warnings.append(
                            f"class {name!r} keeps id {have[name]} it has in the store (the class list says {want})"
                        )
                    continue
                if want in by_id:
                    cid = max([*by_id, *names.values(), 0]) + 1
                    warnings.append(
                        f"class {name!r} gets id {cid}: id {want} of the class list is {by_id[want]!r}'s in the store"
                    )
                else:
                    cid = want
                conn.execute(insert(t.categories).values(dataset_id=self._id, name=name, category_id=cid))
                by_id[cid], have[name] = name, cid
        self.allowed = frozenset(names)
        for w in warnings:
            log.warning("%s", w)
        return warnings

    # ------------------------------------------------------------------ counts
    def category_counts(self) -> list[ClassInfo]:
        """Every class with its id and number of annotations (0 included), by id (one query)."""
        c, a = t.categories, t.annotations
        joined = c.outerjoin(a, (a.c.dataset_id == c.c.dataset_id) & (a.c.category_id == c.c.category_id))
        with self._read() as conn:
            rows = conn.execute(
                select(c.c.name, c.c.category_id, func.count(a.c.id))
                .select_from(joined)
                .where(c.c.dataset_id == self._id)
                .group_by(c.c.name, c.c.category_id)
                .order_by(c.c.category_id)
            )
            return [ClassInfo(name, int(cid), int(n)) for name, cid, n in rows]

    # ------------------------------------------------------------------ rename and merge
    def rename_category(
        self, old: str, new: str, request_id: str | None = None, author: str | None = None
    ) -> ClassChange:
        """Rename class ``old`` to ``new`` (one transaction, one class-history step): every
        annotation of it takes the new name and keeps the id. If ``new`` is a class already,
        this is a merge: they take ``new``'s name and id, and ``old``'s row goes.

        Args:
            new: stripped; refused as :func:`~annotator.store.model.checked_label` refuses.
            request_id: the client's id of this write (a retry is answered with the first result).
        Raises:
            KeyError: no class ``old``.
            ValueError: empty, too long or the same name, or one outside the declared class list;
                nothing changed.
        """
        return self._classes_change("rename", [old], new, request_id, author)

    def merge_categories(
        self, names: list[str], into: str, request_id: str | None = None, author: str | None = None
    ) -> ClassChange:
        """Merge classes ``names`` into class ``into`` (one transaction, one class-history step):
        their annotations take ``into``'s name and id. ``into`` may be one of ``names``, another
        class, or a new name (then the first of ``names`` is renamed to it, keeping its id, and the
        others merged into it).

        Raises:
            KeyError: a name that is no class.
            ValueError: no name besides ``into``, an empty or refused ``into``; nothing changed.
        """
        return self._classes_change("merge", names, into, request_id, author)

    def _classes_change(
        self, kind: str, names: list[str], into: str, request_id: str | None, author: str | None
    ) -> ClassChange:
        into = checked_label(into)
        sources = list(dict.fromkeys(str(n).strip() for n in names))
        with self._write() as conn:
            prior = self._request_result(conn, request_id, f"{kind}_classes")
            if prior is not None:
                return ClassChange(**prior)
            have = self._category_rows(conn)
            for name in sources:
                if name not in have:
                    raise KeyError(f"no class {name!r}")
            sources = [n for n in sources if n != into]
            if not sources:
                raise ValueError(f"{into!r} is already that class: nothing to {kind}")
            self.check_class(into)
            meta_before = self._meta_classes(conn)
            moves = []
            for name in sources:
                target = self._category_rows(conn).get(into)
                merged = target is not None
                src_id = have[name]
                ids = [
                    int(i)
                    for i in conn.execute(
                        select(t.annotations.c.id)
                        .where(self._is(t.annotations), t.annotations.c.label == name)
                        .order_by(t.annotations.c.id)
                    ).scalars()
                ]
                move = {
                    "src": name,
                    "src_id": src_id,
                    "dst": into,
                    "dst_id": target if merged else src_id,
                    "merged": merged,
                    "ids": ids,
                }
                self._move(conn, move, forward=True)
                moves.append(move)
            meta_after = _renamed_list(meta_before, sources, into)
            if meta_after != meta_before:
                self._set_meta_classes(conn, meta_after)
            self._log_classes(conn, kind, moves, meta_before, meta_after, author)
            change = self._class_change(conn, kind, [[m["src"], m["dst"]] for m in moves], moves)
            self._remember(conn, request_id, f"{kind}_classes", change.__dict__)
        change.undoable, change.redoable = self.classes_history_depth()
        return change

    def _class_change(self, conn: Connection, kind: str, pairs: list[list[str]], moves: list[dict]) -> ClassChange:
        ids = sorted({i for m in moves for i in m["ids"]})
        images = (
            sorted(
                set(
                    conn.execute(
                        select(t.annotations.c.image).where(self._is(t.annotations), t.annotations.c.id.in_(ids))
                    ).scalars()
                )
            )
            if ids
            else []
        )
        return ClassChange(kind, pairs, ids, images)

    def _category_rows(self, conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(t.categories.c.name, t.categories.c.category_id).where(self._is(t.categories)))
        return {r.name: int(r.category_id) for r in rows}

    def _meta_classes(self, conn: Connection) -> list[str] | None:
        s = t.settings
        row = conn.execute(select(s.c.value).where(self._is(s), s.c.scope == "meta", s.c.key == "classes")).first()
        return None if row is None else list(row.value)

    def _set_meta_classes(self, conn: Connection, value: list[str] | None) -> None:
        s = t.settings
        conn.execute(delete(s).where(self._is(s), s.c.scope == "meta", s.c.key == "classes"))
        if value is not None:
            conn.execute(insert(s).values(dataset_id=self._id, scope="meta", key="classes", value=value))

    def _move(self, conn: Connection, move: dict, forward: bool) -> None:
        """Move annotations ``move["ids"]`` from one class to another: forward (do, redo) from
        ``src`` to ``dst``, else (undo) back. Checks first that they are as the move left them
        (else ``ValueError``, nothing changed: the caller's transaction rolls back)."""
        if forward:
            src, src_id, dst, dst_id = move["src"], move["src_id"], move["dst"], move["dst_id"]
            src_stays, dst_exists = False, move["merged"]
        else:
            src, src_id, dst, dst_id = move["dst"], move["dst_id"], move["src"], move["src_id"]
            src_stays, dst_exists = move["merged"], False
        ids = move["ids"]
        a, c = t.annotations, t.categories
        rows = self._category_rows(conn)
        if rows.get(src) != src_id:
            raise ValueError(f"class {src!r} was changed since: nothing done")
        if ids:
            n = conn.execute(
                select(func.count())
                .select_from(a)
                .where(self._is(a), a.c.id.in_(ids), a.c.label == src, a.c.category_id == src_id)
            ).scalar()
            if n != len(ids):
                raise ValueError(f"annotations of class {src!r} were deleted or relabelled since: nothing done")
        if not src_stays:
            others = conn.execute(
                select(a.c.id).where(self._is(a), a.c.label == src, a.c.id.not_in(ids)).limit(1)
            ).scalar()
            if others is not None:
                raise ValueError(f"annotation {others} was labelled {src!r} since: nothing done")
        if dst_exists:
            if rows.get(dst) != dst_id:
                raise ValueError(f"class {dst!r} was changed since: nothing done")
        else:
            if dst in rows:
                raise ValueError(f"there is a class {dst!r} again: nothing done")
            holder = next((n for n, i in rows.items() if i == dst_id), None)
            if holder is not None and not (holder == src and not src_stays):
                raise ValueError(f"id {dst_id} is class {holder!r}'s now: nothing done")
        if not src_stays and not dst_exists:
            conn.execute(update(c).where(self._is(c), c.c.name == src).values(name=dst, category_id=dst_id))
        elif not src_stays:
            conn.execute(delete(c).where(self._is(c), c.c.name == src))
        elif not dst_exists:
            conn.execute(insert(c).values(dataset_id=self._id, name=dst, category_id=dst_id))
        if ids:
            conn.execute(update(a).where(self._is(a), a.c.id.in_(ids)).values(label=dst, category_id=dst_id))

    # ------------------------------------------------------------------ the class history
    def _log_classes(
        self,
        conn: Connection,
        kind: str,
        moves: list[dict],
        meta_before: list[str] | None,
        meta_after: list[str] | None,
        author: str | None,
    ) -> None:
        hist = t.history
        mine = (hist.c.dataset_id == self._id, hist.c.image == CLASS_STEPS)
        conn.execute(delete(hist).where(*mine, hist.c.undone.is_(True)))
        conn.execute(
            insert(hist).values(
                dataset_id=self._id,
                image=CLASS_STEPS,
                kind=kind,
                before=[],
                after=[],
                created_rows={"moves": moves, "meta_before": meta_before, "meta_after": meta_after},
                undone=False,
                created=time.time(),
                author=self.author if author is None else author,
            )
        )
        self._trim_history(conn, CLASS_STEPS, MAX_CLASS_STEPS)

    def classes_history_depth(self) -> tuple[int, int]:
        """(class changes that can be undone, that can be redone)."""
        return self.history_depth(CLASS_STEPS)

    def undo_classes(self, request_id: str | None = None) -> ClassChange | None:
        """Undo the last class rename or merge (one transaction): the annotations, the category
        rows and ``meta["classes"]`` as they were, byte for byte.

        Returns:
            What changed (``moves`` new → old), ``None`` when there is nothing to undo.
        Raises:
            ValueError: the rows were changed since (see the module docstring); nothing changed.
        """
        return self._travel_classes("undo", request_id)

    def redo_classes(self, request_id: str | None = None) -> ClassChange | None:
        """Redo the class change undone last (as :meth:`undo_classes`); ``None``: nothing to redo."""
        return self._travel_classes("redo", request_id)

    def _travel_classes(self, way: str, request_id: str | None) -> ClassChange | None:
        with self._write() as conn:
            prior = self._request_result(conn, request_id, f"{way}_classes")
            if prior is not None:
                change = ClassChange(**prior)
            else:
                step = self._step(conn, CLASS_STEPS, undone=way == "redo")
                if step is None:
                    return None
                made = step.created_rows
                moves = made["moves"]
                ordered = moves if way == "redo" else list(reversed(moves))
                for move in ordered:
                    self._move(conn, move, forward=way == "redo")
                meta = made["meta_after"] if way == "redo" else made["meta_before"]
                if meta != self._meta_classes(conn):
                    self._set_meta_classes(conn, meta)
                conn.execute(update(t.history).where(t.history.c.id == step.id).values(undone=way == "undo"))
                pairs = [[m["src"], m["dst"]] if way == "redo" else [m["dst"], m["src"]] for m in ordered]
                change = self._class_change(conn, step.kind, pairs, moves)
                change.way = way
                self._remember(conn, request_id, f"{way}_classes", change.__dict__)
        change.undoable, change.redoable = self.classes_history_depth()
        return change


def _renamed_list(names: list[str] | None, sources: list[str], into: str) -> list[str] | None:
    """A declared class list with ``sources`` named ``into`` (once, where the first was)."""
    if names is None or not set(sources) & set(names):
        return names
    return list(dict.fromkeys(into if n in sources else n for n in names))


__all__ = ["CLASS_STEPS", "MAX_CLASS_STEPS", "ClassChange", "ClassInfo", "ClassesMixin"]
