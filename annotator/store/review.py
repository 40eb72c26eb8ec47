"""Review of predicted annotations: each annotation's state, each image's status.

An annotation is ``predicted`` (a machine's guess: a bulk ``annotate`` run, an import, the
page's Everything and Find all), ``accepted`` (a person made it, edited it or accepted it) or
``rejected`` (a person said no: kept, with its history, and left out of every export). A
person's change of an annotation (relabel, hand edit, re-prompt, merge, intersect, subtract)
makes the result ``accepted``; :meth:`ReviewMixin.set_state` and
:meth:`ReviewMixin.accept_image` change states alone, each one undoable step of the image's
history (kind ``review``).

An image's status is the first that holds of: ``reviewed`` (marked so by a person,
:meth:`ReviewMixin.set_reviewed`), ``done`` (marked done), ``in progress`` (it has
annotations), ``to do``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from . import schema as t
from .model import STATES, Annotation, State, checked_state

IMAGE_STATUSES = ("to do", "in progress", "done", "reviewed")
"""An image's statuses, in the order work goes."""


class ReviewMixin:
    """The review operations of :class:`~annotator.store.AnnotationStore` (see the module docstring)."""

    def set_state(
        self,
        ann_ids: int | Iterable[int],
        state: State | str,
        request_id: str | None = None,
        author: str | None = None,
    ) -> list[Annotation]:
        """Set annotations' review state (one transaction; one undoable ``review`` step per
        image touched). Their masks, labels and scores stay.

        Args:
            ann_ids: annotation ids (any images).
            state: ``predicted``, ``accepted`` or ``rejected``.
        Returns:
            The annotations as they are now, in the order given (those already in ``state``
            included; no step is logged when none changes).
        Raises:
            ValueError: an unknown state. KeyError: an unknown id (nothing changed).
        """
        state = checked_state(state)
        ids = list(dict.fromkeys([int(ann_ids)] if isinstance(ann_ids, int) else (int(i) for i in ann_ids)))
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "review")
            if prior is not None:
                return prior
            return self._set_state(conn, ids, state, request_id, author)

    def _set_state(
        self, conn: Connection, ids: list[int], state: str, request_id: str | None, author: str | None
    ) -> list[Annotation]:
        was = self._get(conn, ids)
        moving = [a.id for a in was if a.state != state]
        if moving:
            conn.execute(
                update(t.annotations).where(self._is(t.annotations), t.annotations.c.id.in_(moving)).values(state=state)
            )
        now = self._get(conn, ids)
        if moving:
            self._log(conn, "review", [a for a in was if a.id in moving], [a for a in now if a.id in moving], author)
        self._record(conn, request_id, "review", now)
        return now

    def accept_image(self, image: str, request_id: str | None = None, author: str | None = None) -> list[Annotation]:
        """Accept every ``predicted`` annotation of ``image`` (one transaction, one undoable
        step); ``rejected`` ones stay rejected.

        Returns:
            The annotations accepted now (none: nothing was predicted, no step is logged).
        """
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "review")
            if prior is not None:
                return prior
            ids = list(
                conn.execute(
                    select(t.annotations.c.id)
                    .where(
                        self._is(t.annotations),
                        t.annotations.c.image == image,
                        t.annotations.c.state == State.PREDICTED.value,
                    )
                    .order_by(t.annotations.c.id)
                ).scalars()
            )
            return self._set_state(conn, [int(i) for i in ids], State.ACCEPTED.value, request_id, author)

    def state_counts(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """Annotations per review state of each image: key → ``{"predicted": n, "accepted": n,
        "rejected": n}`` (every state named; images without annotations absent), of every image
        or of ``keys`` only."""
        a = t.annotations
        query = select(a.c.image, a.c.state, func.count()).where(self._is(a)).group_by(a.c.image, a.c.state)
        if keys is not None:
            query = query.where(a.c.image.in_(list(dict.fromkeys(keys))))
        out: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for image, state, n in conn.execute(query):
                out.setdefault(image, dict.fromkeys(STATES, 0))[state] = int(n)
        return out

    def total_state_counts(self) -> dict[str, int]:
        """Annotations per review state in the whole dataset (every state named)."""
        a = t.annotations
        counts = dict.fromkeys(STATES, 0)
        with self._read() as conn:
            for state, n in conn.execute(select(a.c.state, func.count()).where(self._is(a)).group_by(a.c.state)):
                counts[state] = int(n)
        return counts

    @property
    def reviewed(self) -> set[str]:
        """Image keys marked reviewed."""
        with self._read() as conn:
            return set(conn.execute(select(t.reviewed.c.key).where(self._is(t.reviewed))).scalars())

    def set_reviewed(self, image: str, reviewed: bool = True) -> None:
        """Mark an image reviewed (or not). Marking also marks it done, as reviewing finishes it.

        Raises:
            KeyError: ``image`` is not an image of the store.
        """
        with self._write() as conn:
            if self.images.get_in(conn, image) is None:
                raise KeyError(image)
            conn.execute(delete(t.reviewed).where(self._is(t.reviewed), t.reviewed.c.key == image))
            if reviewed:
                conn.execute(insert(t.reviewed).values(dataset_id=self._id, key=image))
                conn.execute(delete(t.done).where(self._is(t.done), t.done.c.key == image))
                conn.execute(insert(t.done).values(dataset_id=self._id, key=image))

    def image_status(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """Each image's status (one of :data:`IMAGE_STATUSES`, see the module docstring): of
        every image of the store, or of ``keys`` (keys the store does not hold yet: ``to do``)."""
        keys = list(self.images) if keys is None else list(dict.fromkeys(keys))
        reviewed, done, counts = self.reviewed, self.done, self.counts()
        return {
            k: "reviewed" if k in reviewed else "done" if k in done else "in progress" if counts.get(k) else "to do"
            for k in keys
        }

    def check_categories(self, categories: Mapping[str, int]) -> list[str]:
        """What stands against taking ``categories`` (name → id) as they are: a name the store
        has under another id, an id another name has, a name a declared class list lacks. One
        line each; ``[]``: they can all be taken (see :meth:`take_categories`)."""
        have = self.categories
        by_id = {cid: name for name, cid in have.items()}
        problems = []
        for name, cid in categories.items():
            if name in have and have[name] != int(cid):
                problems.append(f"class {name!r} has id {cid} there and {have[name]} in this dataset")
            elif name not in have and int(cid) in by_id:
                problems.append(f"class {name!r} has id {cid} there, which is {by_id[int(cid)]!r}'s in this dataset")
            elif self.allowed is not None and name not in self.allowed:
                problems.append(f"class {name!r} is not in this project's class list")
        return problems

    def take_categories(self, categories: Mapping[str, int]) -> None:
        """Create the categories of ``categories`` (name → id) the store lacks, with those ids
        (inside :meth:`batch` they are part of its transaction).

        Raises:
            ValueError: :meth:`check_categories` finds a problem (nothing is created).
        """
        problems = self.check_categories(categories)
        if problems:
            raise ValueError("; ".join(problems))
        with self._write() as conn:
            have = set(conn.execute(select(t.categories.c.name).where(self._is(t.categories))).scalars())
            new = [(n, int(c)) for n, c in categories.items() if n not in have]
            if new:
                conn.execute(
                    insert(t.categories), [{"dataset_id": self._id, "name": n, "category_id": c} for n, c in new]
                )
                self._local.created["categories"].extend([n, c] for n, c in new)


__all__ = ["IMAGE_STATUSES", "ReviewMixin"]
