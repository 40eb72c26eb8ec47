"""The annotation store: one dataset (an image folder) in a database, one transaction per change.

SQLite by default (one file per output folder, WAL), or any SQLAlchemy URL (PostgreSQL through
psycopg) shared by a team; see :mod:`.schema` for the tables and how writers are serialised.
Every process on the same database sees the others' writes at once: nothing is held in memory
beyond a transaction, so the page, ``annotate`` and a second app process never overwrite each
other. Writes take a client ``request_id``: a retried or parallel duplicate is stored once and
answered with the first result.

Annotations cross module lines as :class:`~annotator.instances.Instances`
(:meth:`AnnotationStore.instances`, :meth:`AnnotationStore.add_instances`) or
:class:`~annotator.store.model.Annotation` records.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ..instances import Instances, Source
from ..masks import decode_rle, encode_rle, rle_area, rle_bbox
from . import schema as t
from .classes import ClassesMixin
from .history import HistoryMixin
from .legacy import read_legacy
from .model import Annotation, ImageInfo, State, StoreError, StoreFullError, checked_label, checked_state
from .review import ReviewMixin
from .rows import annotation_of, row_of

log = logging.getLogger(__name__)

REQUEST_TTL_S = 7 * 24 * 3600
"""How long a write's request id is remembered (seconds): a retry within it is answered with
the first result."""

MAX_REQUEST_ID_CHARS = 100


def os_user() -> str:
    """The OS user running this process (the author of what it writes when nobody signed in)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


def _is_full(exc: OperationalError) -> bool:
    orig = exc.orig
    return (
        getattr(orig, "sqlite_errorname", "") == "SQLITE_FULL"
        or getattr(orig, "sqlstate", None) == "53100"  # PostgreSQL disk_full
        or "disk is full" in str(orig)
    )


class AnnotationStore(HistoryMixin, ClassesMixin, ReviewMixin):
    """Annotations of one dataset in a database, safe for many writers (threads and processes).

    Args:
        database: an SQLAlchemy URL (``postgresql://user:pw@host/db``, ``sqlite:///f.db``) or an
            SQLite file path (created, with its folder, on first use).
        dataset: the dataset's name in the database (the image folder's slug): one database may
            hold many. ``None``: the database's only dataset, else ``"default"``.
        category_ids: preferred ids for names (the vocabulary's), used when a name is first seen.
        author: who writes, when a write names nobody (default: the OS user).
    Raises:
        StoreError: the database cannot be opened (not a database, a server refusing, a bad URL).
        StoreFullError: no space to create it.
    """

    def __init__(
        self,
        database: str | Path,
        dataset: str | None = None,
        category_ids: dict[str, int] | None = None,
        author: str | None = None,
    ):
        self.url = t.database_url(database)
        self.dataset = dataset
        self.author = author if author is not None else os_user()
        self._preferred = dict(category_ids or {})
        self._preferred_max = max(self._preferred.values(), default=0)
        self._local = threading.local()
        with self._errors("cannot be opened"):
            try:
                self.engine = t.open_engine(self.url)
            except (ValueError, ModuleNotFoundError) as exc:  # ArgumentError is a ValueError
                raise StoreError(f"cannot open the database {t.redacted(self.url)}: {exc}") from exc
            self._writer = self.engine.execution_options(store_write=True)
            t.create_tables(self.engine)
            if self.dataset is None:
                with self.engine.connect() as conn:
                    names = list(conn.execute(select(t.datasets.c.name).limit(2)).scalars())
                self.dataset = names[0] if len(names) == 1 else "default"
            self._id = self._dataset_id()
            with self._writer.begin() as conn:
                conn.execute(
                    delete(t.requests).where(
                        t.requests.c.dataset_id == self._id, t.requests.c.created < time.time() - REQUEST_TTL_S
                    )
                )

    # ------------------------------------------------------------------ plumbing
    @property
    def location(self) -> str:
        """Where the store is, for messages: the SQLite file, or the URL without its password,
        and the dataset."""
        path = self.path
        return f"{path}" if path is not None else f"{t.redacted(self.url)} (dataset {self.dataset!r})"

    @property
    def path(self) -> Path | None:
        """The SQLite file, ``None`` on a server."""
        url = make_url(self.url)
        return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None

    def __repr__(self) -> str:
        return f"AnnotationStore({self.location})"

    def close(self) -> None:
        """Close the database connections (the store can still be used: they reopen)."""
        self.engine.dispose()

    @contextmanager
    def _errors(self, doing: str = "failed") -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            if _is_full(exc):
                raise StoreFullError(f"disk full: nothing saved ({self.location})") from exc
            raise StoreError(f"the annotation store {self.location} {doing}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"the annotation store {self.location} {doing}: {reason}") from exc

    def _dataset_id(self) -> int:
        for _ in range(3):  # another process may create the row at the same moment
            with self._writer.begin() as conn:
                found = conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == self.dataset)).scalar()
                if found is not None:
                    return int(found)
                try:
                    with conn.begin_nested():
                        values = {"name": self.dataset, "next_annotation_id": 1, "schema_version": t.SCHEMA_VERSION}
                        return int(conn.execute(insert(t.datasets).values(**values)).inserted_primary_key[0])
                except IntegrityError:
                    continue
        raise StoreError(f"cannot create the dataset {self.dataset!r} in {t.redacted(self.url)}")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction holding the dataset's write lock (or the open one of
        :meth:`batch`)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._errors(), self._writer.begin() as conn:
            conn.execute(select(t.datasets.c.id).where(t.datasets.c.id == self._id).with_for_update())
            self._local.conn = conn
            self._local.created = {"categories": [], "images": {}}
            try:
                yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write inside one transaction: all or nothing (e.g. a bulk run's import,
        its images and its ``meta`` together). Writes of other threads wait for it.

        Raises:
            StoreFullError: the disk is full at commit; nothing of the batch was saved.
        """
        with self._write():
            yield

    def _is(self, table) -> Any:
        return table.c.dataset_id == self._id

    # ------------------------------------------------------------------ requests
    def _request_result(self, conn: Connection, request_id: str | None, kind: str | tuple[str, ...]) -> Any:
        """The stored JSON result of an earlier write with ``request_id`` (``None``: none, or no id).

        Raises:
            ValueError: the id was used for another kind of write, or is too long.
        """
        if not request_id:
            return None
        if len(request_id) > MAX_REQUEST_ID_CHARS:
            raise ValueError(f"a request id has at most {MAX_REQUEST_ID_CHARS} characters")
        row = conn.execute(
            select(t.requests.c.kind, t.requests.c.result).where(
                self._is(t.requests), t.requests.c.request_id == request_id
            )
        ).first()
        if row is None:
            return None
        kinds = (kind,) if isinstance(kind, str) else kind
        if row.kind not in kinds:
            raise ValueError(f"request id {request_id!r} was used for a {row.kind}, not a {' or '.join(kinds)}")
        return row.result

    def _replayed(
        self, conn: Connection, request_id: str | None, kind: str | tuple[str, ...]
    ) -> list[Annotation] | None:
        result = self._request_result(conn, request_id, kind)
        return None if result is None else [Annotation(**a) for a in result]

    def _record(self, conn: Connection, request_id: str | None, kind: str, result: list[Annotation]) -> None:
        if request_id:  # the rows as dicts only when they are kept
            self._remember(conn, request_id, kind, [asdict(a) for a in result])

    def _remember(self, conn: Connection, request_id: str | None, kind: str, result: Any) -> None:
        """Keep a write's JSON-able result under its request id (none kept without an id), so that
        a retry of the same request is answered from it (:meth:`_request_result`)."""
        if request_id:
            conn.execute(
                insert(t.requests).values(
                    dataset_id=self._id, request_id=request_id, kind=kind, result=result, created=time.time()
                )
            )

    def replay(self, request_id: str | None, kind: str | tuple[str, ...]) -> list[Annotation] | None:
        """The result of an earlier write made with ``request_id`` (the annotations it returned,
        as they were then), ``None`` if there was none (or no id).

        Args:
            kind: the write's kind (``add``, ``delete``, ``relabel``, ``merge``, ``intersect``,
                ``subtract``, ``replace``, ``edit``), or a tuple of kinds any of which it may have been.
        Raises:
            ValueError: the id was used for another kind of write, or is too long.
        """
        with self._read() as conn:
            return self._replayed(conn, request_id, kind)

    # ------------------------------------------------------------------ categories
    def _category_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(
            select(t.categories.c.category_id).where(self._is(t.categories), t.categories.c.name == name)
        ).scalar()
        if found is not None:
            return int(found)
        used = set(conn.execute(select(t.categories.c.category_id).where(self._is(t.categories))).scalars())
        cid = self._preferred.get(name)
        if cid is None or cid in used:
            cid = max([*used, self._preferred_max, 0]) + 1
        conn.execute(insert(t.categories).values(dataset_id=self._id, name=name, category_id=int(cid)))
        self._local.created["categories"].append([name, int(cid)])
        return int(cid)

    def category_id(self, name: str) -> int:
        """Stable id of a category name, assigned on first use (the vocabulary's id if free)."""
        with self._read() as conn:
            found = conn.execute(
                select(t.categories.c.category_id).where(self._is(t.categories), t.categories.c.name == name)
            ).scalar()
        if found is not None:
            return int(found)
        with self._write() as conn:
            return self._category_id(conn, name)

    @property
    def categories(self) -> dict[str, int]:
        """Every category used so far, name → id (a snapshot)."""
        with self._read() as conn:
            rows = conn.execute(select(t.categories.c.name, t.categories.c.category_id).where(self._is(t.categories)))
            return {r.name: int(r.category_id) for r in rows}

    def declared_categories(self) -> dict[str, int]:
        """The categories a run declared (``annotate --classes`` keeps them in ``meta["classes"]``)
        with their ids: the exports list them even where no instance was found."""
        return {name: self.category_id(name) for name in self.meta.get("classes", [])}

    # ------------------------------------------------------------------ views
    @property
    def images(self) -> Mapping[str, ImageInfo]:
        """The images of the dataset, key → :class:`ImageInfo` (a live view: each access reads
        the database)."""
        return _Images(self)

    @property
    def annotations(self) -> Mapping[int, Annotation]:
        """Every annotation, id → :class:`Annotation` (a live view: ``store.annotations[i]`` and
        ``len()`` are one query each; iterating reads them all)."""
        return _Annotations(self)

    @property
    def meta(self) -> MutableMapping[str, Any]:
        """Run metadata (JSON values; ``classes``, ``bulk_imported``), written through: each
        assignment is one transaction."""
        return _Settings(self, "meta")

    # ------------------------------------------------------------------ writes
    def _ensure_image(self, conn: Connection, image: str, width: int, height: int) -> None:
        found = conn.execute(select(t.images.c.key).where(self._is(t.images), t.images.c.key == image)).first()
        if found is None:
            conn.execute(insert(t.images).values(dataset_id=self._id, key=image, width=int(width), height=int(height)))
            self._local.created["images"][image] = [int(width), int(height)]

    def _insert(self, conn: Connection, image: str, items: list[dict], author: str | None) -> list[Annotation]:
        if not items:
            return []
        h, w = items[0]["rle"]["size"]
        self._ensure_image(conn, image, w, h)
        first = int(
            conn.execute(select(t.datasets.c.next_annotation_id).where(t.datasets.c.id == self._id)).scalar_one()
        )
        now = time.time()
        ids = {label: self._label_id(conn, label) for label in dict.fromkeys(item["label"] for item in items)}
        anns = [
            Annotation(
                id=first + i,
                image=image,
                label=item["label"],
                category_id=ids[item["label"]],
                rle=item["rle"],
                bbox=rle_bbox(item["rle"]),
                area=item["area"],
                score=item.get("score"),
                predicted_iou=item.get("predicted_iou"),
                prompt=item.get("prompt") or {},
                created=now,
                source=item.get("source") or "",
                author=self.author if author is None else author,
                state=item.get("state") or "",
                data=item.get("data") or {},
            )
            for i, item in enumerate(items)
        ]
        conn.execute(update(t.datasets).where(t.datasets.c.id == self._id).values(next_annotation_id=first + len(anns)))
        conn.execute(insert(t.annotations), [row_of(self._id, a) for a in anns])
        return anns

    def add_image(self, image: str, width: int, height: int) -> ImageInfo:
        """Register an image with no annotation yet (e.g. one where nothing was found: a
        negative, still exported and pushed for review). Existing images are left as they are."""
        with self._write() as conn:
            self._ensure_image(conn, image, width, height)
        return self.images[image]

    def add(
        self,
        image: str,
        mask: np.ndarray | dict,
        label: str,
        score: float | None = None,
        predicted_iou: float | None = None,
        prompt: dict | None = None,
        source: Source | None = None,
        request_id: str | None = None,
        author: str | None = None,
        state: State | str | None = None,
    ) -> Annotation:
        """Accept one mask (one transaction).

        Args:
            image: image key; mask: (H, W) bool at the image's resolution, or its COCO RLE.
            source: how it was made; default from ``prompt`` (see
                :func:`~annotator.store.model.source_of_prompt`).
            request_id: the client's id of this write (see :meth:`add_instances`).
            author: who made it (default: the store's :attr:`author`).
            state: its review state (default from its source, see
                :meth:`~annotator.store.model.State.of_source`).
        Raises:
            ValueError: empty mask; empty, too long a label (:data:`MAX_LABEL_CHARS`) or one with
                a control character; an unknown state.
            StoreFullError: the disk is full; nothing was saved.
        """
        rle = dict(mask) if isinstance(mask, dict) else encode_rle(mask)
        item = self._item(rle, label, score, predicted_iou, prompt, source, state)
        if item["area"] == 0:
            raise ValueError("cannot accept an empty mask")
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "add")
            if prior is not None:
                return prior[0]
            (ann,) = self._insert(conn, image, [item], author)
            self._log(conn, "add", [], [ann], author)
            self._record(conn, request_id, "add", [ann])
            return ann

    @staticmethod
    def _item(rle: dict, label: str, score, predicted_iou, prompt, source, state=None, data=None) -> dict:
        return {
            "state": "" if state is None else checked_state(state),
            "data": dict(data or {}),
            "rle": rle,
            "label": checked_label(label),
            "area": rle_area(rle),
            "score": None if score is None else float(score),
            "predicted_iou": None if predicted_iou is None else float(predicted_iou),
            "prompt": prompt or {},
            "source": "" if source is None else Source(source).value,
        }

    def add_instances(
        self,
        image: str,
        instances: Instances,
        request_id: str | None = None,
        author: str | None = None,
        history: bool = True,
        state: State | str | None = None,
    ) -> list[Annotation]:
        """Accept every instance of an image (empty masks are skipped), in order, in one
        transaction.

        The prompt kept with each is ``data["prompt"]`` when the instances carry one, else for
        the everything mode ``{"everything": source, "patches": [...]}``; its ``data`` (JSON)
        is ``data["annotation_data"]`` (a dict per instance) where given.

        Args:
            image: image key; ``instances``: of that image, at its resolution.
            request_id: the client's id of this write: a second write with the same id (a retry,
                a parallel duplicate, in any process) stores nothing and returns the first's
                annotations.
            author: who made them (default: the store's :attr:`author`).
            history: keep the change in the image's undo history (a bulk run's import does not).
            state: the review state of all of them (a bulk run's and an import's: ``predicted``);
                default each one's from its source (:meth:`~annotator.store.model.State.of_source`).
        Returns:
            The new annotations.
        Raises:
            ValueError: a label the store refuses (nothing is stored).
            StoreFullError: the disk is full; nothing was saved.
        """
        prompts = instances.data.get("prompt")
        patches = instances.data.get("patches")
        extra = instances.data.get("annotation_data")
        areas = instances.areas
        items = []
        for i, rle in enumerate(instances.rles()):
            if areas[i] == 0:
                continue
            source = Source(instances.source[i])
            if prompts is not None:
                prompt = dict(prompts[i])
            elif source.automatic:
                prompt = {"everything": source.value}
                if patches is not None:
                    prompt["patches"] = [int(p) for p in patches[i]]
            else:
                prompt = {}
            items.append(
                self._item(
                    rle,
                    str(instances.class_names[i]),
                    instances.score_or_none(i),
                    instances.predicted_iou_or_none(i),
                    prompt,
                    source,
                    state,
                    None if extra is None else extra[i],
                )
            )
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "add")
            if prior is not None:
                return prior
            if not items:  # a negative is still an image of the dataset
                h, w = instances.image_size
                self._ensure_image(conn, image, w, h)
            anns = self._insert(conn, image, items, author)
            if history:
                self._log(conn, "add", [], anns, author)
            self._record(conn, request_id, "add", anns)
            return anns

    def _get(self, conn: Connection, ids: list[int]) -> list[Annotation]:
        rows = conn.execute(select(t.annotations).where(self._is(t.annotations), t.annotations.c.id.in_(ids)))
        found = {int(r.id): annotation_of(r) for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        return [found[i] for i in ids]

    def get(self, ann_ids: Iterable[int]) -> list[Annotation]:
        """Annotations by id, in the order given.

        Raises:
            KeyError: the first id that is not in the store.
        """
        ids = [int(i) for i in ann_ids]
        with self._read() as conn:
            return self._get(conn, ids)

    def delete(self, ann_ids: int | Iterable[int], request_id: str | None = None) -> list[Annotation]:
        """Remove annotations (all or none). Their ids are never given again.

        Returns:
            The annotations removed (a replayed ``request_id``: those of the first call).
        Raises:
            KeyError: an unknown id (nothing is removed).
        """
        ids = list(dict.fromkeys([int(ann_ids)] if isinstance(ann_ids, (int, np.integer)) else map(int, ann_ids)))
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "delete")
            if prior is not None:
                return prior
            gone = self._get(conn, ids)
            conn.execute(delete(t.annotations).where(self._is(t.annotations), t.annotations.c.id.in_(ids)))
            self._log(conn, "delete", gone, [], None)
            self._record(conn, request_id, "delete", gone)
            return gone

    def relabel(
        self, ann_ids: int | Iterable[int], label: str, request_id: str | None = None, author: str | None = None
    ) -> list[Annotation]:
        """Change annotations' label (score cleared: the label is now the user's).

        Returns:
            The annotations as changed.
        Raises:
            KeyError: unknown id (nothing changed). ValueError: a label :meth:`add` refuses.
        """
        label = checked_label(label)
        ids = list(dict.fromkeys([int(ann_ids)] if isinstance(ann_ids, (int, np.integer)) else map(int, ann_ids)))
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "relabel")
            if prior is not None:
                return prior
            was = self._get(conn, ids)
            cid = self._label_id(conn, label)
            conn.execute(
                update(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.id.in_(ids))
                .values(label=label, category_id=cid, score=None, state=State.ACCEPTED.value)
            )
            changed = self._get(conn, ids)
            self._log(conn, "relabel", was, changed, author)
            self._record(conn, request_id, "relabel", changed)
            return changed

    def merge(
        self, ann_ids: list[int], label: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Replace annotations of one image by one whose mask is their union (one transaction).

        Args:
            ann_ids: two or more ids.
            label: the merged label; default the parts' label where they all have the same one.
        Returns:
            The new annotation (a new id, source ``merge``; score cleared, predicted IoU the
            best of the parts).
        Raises:
            KeyError: an unknown id.
            ValueError: fewer than two distinct ids, annotations of different images, or parts of
                different labels and no ``label`` (nothing is changed: the caller asks which).
        """
        return self._combine("merge", ann_ids, label, request_id, author)

    def intersect(
        self, ann_ids: list[int], label: str | None = None, request_id: str | None = None, author: str | None = None
    ) -> Annotation:
        """Replace annotations of one image by one whose mask is their intersection (the pixels
        all of them cover), as :meth:`merge` does with the union (same ``label`` rule, new id,
        source ``merge``).

        Raises:
            KeyError: an unknown id.
            ValueError: as :meth:`merge`, or the masks have no pixel in common (nothing changed).
        """
        return self._combine("intersect", ann_ids, label, request_id, author)

    def _parts(self, conn: Connection, ann_ids: list[int]) -> tuple[list[int], list[Annotation]]:
        """Two or more distinct annotations of one image, by id (in the order given)."""
        ids = list(dict.fromkeys(int(i) for i in ann_ids))
        if len(ids) < 2:
            raise ValueError("this needs two or more different annotation ids")
        parts = self._get(conn, ids)
        if len({a.image for a in parts}) != 1:
            raise ValueError("annotations of different images cannot be combined")
        return ids, parts

    def _combine(
        self, kind: str, ann_ids: list[int], label: str | None, request_id: str | None, author: str | None
    ) -> Annotation:
        with self._write() as conn:
            prior = self._replayed(conn, request_id, kind)
            if prior is not None:
                return prior[0]
            ids, parts = self._parts(conn, ann_ids)
            labels = list(dict.fromkeys(a.label for a in parts))
            if label is None and len(labels) > 1:
                named = ", ".join(repr(n) for n in labels)
                done = "merged" if kind == "merge" else "intersected"
                raise ValueError(f"the parts are labelled {named}: name the {done} annotation's label")
            masks = [decode_rle(a.rle) for a in parts]
            mask = np.logical_or.reduce(masks) if kind == "merge" else np.logical_and.reduce(masks)
            if not mask.any():
                raise ValueError("the masks have no pixel in common: nothing to keep")
            ious = [a.predicted_iou for a in parts if a.predicted_iou is not None]
            prompt = {"merged": ids} if kind == "merge" else {"intersected": ids}
            item = self._item(
                encode_rle(mask),
                label or labels[0],
                None,
                max(ious) if ious else None,
                prompt,
                Source.MERGE,
                State.ACCEPTED,
            )
            conn.execute(delete(t.annotations).where(self._is(t.annotations), t.annotations.c.id.in_(ids)))
            (combined,) = self._insert(conn, parts[0].image, [item], author)
            self._log(conn, kind, parts, [combined], author)
            self._record(conn, request_id, kind, [combined])
            return combined

    def replace(
        self,
        ann_id: int,
        instances: Instances,
        request_id: str | None = None,
        author: str | None = None,
    ) -> Annotation:
        """Replace annotation ``ann_id`` by the one instance of ``instances`` (a saved mask
        re-prompted): in place, one transaction; its id stays, its mask, box, area, label,
        scores, prompt and source become the instance's (prompt and source stay where the
        instance's prompt has no point and no box), its author and time the editor's.

        Args:
            instances: one instance of the annotation's image, at its resolution (``data["prompt"]``
                kept as the prompt).
            request_id, author: as for :meth:`add_instances`.
        Returns:
            The annotation as changed.
        Raises:
            KeyError: unknown id. ValueError: not one non-empty instance, another image's size,
                or a label :meth:`add` refuses. StoreFullError: the disk is full; nothing changed.
        """
        if len(instances) != 1 or not instances.areas[0]:
            raise ValueError("a replacement is one non-empty mask")
        (rle,) = instances.rles()
        prompts = instances.data.get("prompt")
        item = self._item(
            rle,
            str(instances.class_names[0]),
            instances.score_or_none(0),
            instances.predicted_iou_or_none(0),
            dict(prompts[0]) if prompts is not None else {},
            Source(instances.source[0]),
        )
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "replace")
            if prior is not None:
                return prior[0]
            (old,) = self._get(conn, [int(ann_id)])
            if list(old.rle["size"]) != list(rle["size"]):
                raise ValueError(f"the mask is {rle['size']}, annotation {ann_id}'s image is {old.rle['size']}")
            if not (item["prompt"].get("points") or item["prompt"].get("box")):  # no new prompt: it keeps its own
                item["prompt"], item["source"] = old.prompt, old.source
            conn.execute(
                update(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.id == int(ann_id))
                .values(
                    counts=rle["counts"],
                    bbox=[float(v) for v in rle_bbox(rle)],
                    area=int(item["area"]),
                    label=item["label"],
                    category_id=self._label_id(conn, item["label"]),
                    score=item["score"],
                    predicted_iou=item["predicted_iou"],
                    prompt=item["prompt"],
                    source=item["source"],
                    created=time.time(),
                    author=self.author if author is None else author,
                    state=State.ACCEPTED.value,
                )
            )
            (changed,) = self._get(conn, [int(ann_id)])
            self._log(conn, "replace", [old], [changed], author)
            self._record(conn, request_id, "replace", [changed])
            return changed

    def edit(
        self,
        ann_id: int,
        change: Callable[[np.ndarray], np.ndarray],
        request_id: str | None = None,
        author: str | None = None,
    ) -> Annotation:
        """Change annotation ``ann_id``'s mask by hand (a brush or eraser stroke, a polygon added
        or cut out, an outline moved; see :mod:`annotator.mask_edit`), in place and under the
        write lock (two editors' strokes both land): its id, label, scores and prompt stay; its
        mask, box and area change, its author and time become the editor's; its prompt gains
        ``"edited": true``. One transaction, one undo step; a change that leaves the mask as it
        was stores nothing.

        Args:
            change: the stored mask, (H, W) bool at the image's resolution → the new one.
        Returns:
            The annotation as it is now.
        Raises:
            KeyError: unknown id. ValueError: nothing would be left (delete the annotation
                instead), another size, or the change's own refusal (nothing changed).
            StoreFullError: the disk is full; nothing changed.
        """
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "edit")
            if prior is not None:
                return prior[0]
            (old,) = self._get(conn, [int(ann_id)])
            before = decode_rle(old.rle)
            mask = np.asarray(change(before), dtype=bool)
            if mask.shape != before.shape:
                raise ValueError(f"the mask is {mask.shape}, annotation {ann_id}'s image is {before.shape}")
            if not mask.any():
                raise ValueError("the edit leaves nothing of the annotation: delete it instead")
            if np.array_equal(mask, before):
                return old
            rle = encode_rle(mask)
            conn.execute(
                update(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.id == int(ann_id))
                .values(
                    counts=rle["counts"],
                    bbox=rle_bbox(rle),
                    area=int(mask.sum()),
                    prompt={**old.prompt, "edited": True},
                    created=time.time(),
                    author=self.author if author is None else author,
                    state=State.ACCEPTED.value,
                )
            )
            (changed,) = self._get(conn, [int(ann_id)])
            self._log(conn, "edit", [old], [changed], author)
            self._record(conn, request_id, "edit", [changed])
            return changed

    def subtract(self, ann_ids: list[int], request_id: str | None = None) -> Annotation:
        """Cut the masks of ``ann_ids[1:]`` out of annotation ``ann_ids[0]`` (a hole, or a part
        removed), in place: its id, label and score stay, its mask, box and area change; the
        others are kept as they are. One transaction.

        Args:
            ann_ids: the annotation to cut, then one or more of the same image to cut with.
        Returns:
            The first annotation as changed.
        Raises:
            KeyError: an unknown id.
            ValueError: fewer than two distinct ids, different images, nothing in common (the
                mask would not change), or nothing left (nothing is changed).
        """
        with self._write() as conn:
            prior = self._replayed(conn, request_id, "subtract")
            if prior is not None:
                return prior[0]
            ids, parts = self._parts(conn, ann_ids)
            target = decode_rle(parts[0].rle)
            cut = np.logical_or.reduce([decode_rle(a.rle) for a in parts[1:]])
            mask = target & ~cut
            if not mask.any():
                raise ValueError(f"nothing of annotation {ids[0]} would be left")
            if np.array_equal(mask, target):
                raise ValueError(f"the others do not overlap annotation {ids[0]}: nothing to cut")
            rle = encode_rle(mask)
            conn.execute(
                update(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.id == ids[0])
                .values(counts=rle["counts"], bbox=rle_bbox(rle), area=int(mask.sum()), state=State.ACCEPTED.value)
            )
            (changed,) = self._get(conn, ids[:1])
            self._log(conn, "subtract", parts[:1], [changed], None)
            self._record(conn, request_id, "subtract", [changed])
            return changed

    # ------------------------------------------------------------------ reads
    def for_image(self, image: str) -> list[Annotation]:
        """Annotations of one image, in acceptance order (an indexed query)."""
        with self._read() as conn:
            rows = conn.execute(
                select(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.image == image)
                .order_by(t.annotations.c.id)
            )
            return [annotation_of(r) for r in rows]

    def instances(self, image: str) -> Instances:
        """One image's annotations as :class:`~annotator.instances.Instances` (RLE masks, the
        store's category ids, ``data["annotation_id"]`` (int64), ``data["prompt"]``,
        ``data["author"]`` (str), ``data["created"]`` (float64, UNIX seconds), ``data["state"]``
        (str, the review state), ``data["iscrowd"]`` (bool: an imported crowd region) and
        ``data["annotation_data"]`` (each one's ``data`` dict)), in acceptance order.

        Raises:
            KeyError: the image is not in the store.
        """
        with self._read() as conn:
            info = _Images(self).get_in(conn, image)
            if info is None:
                raise KeyError(image)
            rows = conn.execute(
                select(t.annotations)
                .where(self._is(t.annotations), t.annotations.c.image == image)
                .order_by(t.annotations.c.id)
            )
            anns = [annotation_of(r) for r in rows]
        return Instances(
            [a.rle for a in anns],
            image_size=(info.height, info.width),
            scores=[a.score for a in anns],
            predicted_iou=[a.predicted_iou for a in anns],
            class_names=[a.label for a in anns],
            class_ids=[a.category_id for a in anns],
            source=[a.source for a in anns],
            data={
                "annotation_id": np.array([a.id for a in anns], dtype=np.int64),
                "prompt": [a.prompt for a in anns],
                "author": [a.author for a in anns],
                "created": np.array([a.created for a in anns], dtype=np.float64),
                "state": [a.state for a in anns],
                "iscrowd": np.array([bool(a.data.get("iscrowd")) for a in anns], dtype=bool),
                "annotation_data": [a.data for a in anns],
            },
        )

    def counts(self, keys: Iterable[str] | None = None) -> dict[str, int]:
        """Number of annotations per image key (images without any are absent), of every image
        or of ``keys`` only (an indexed query each)."""
        mine = self._is(t.annotations)
        with self._read() as conn:
            if keys is None:
                rows = conn.execute(
                    select(t.annotations.c.image, func.count()).where(mine).group_by(t.annotations.c.image)
                )
                return {image: int(n) for image, n in rows}
            one = select(func.count()).select_from(t.annotations).where(mine)
            counted = {
                k: int(conn.execute(one.where(t.annotations.c.image == k)).scalar()) for k in dict.fromkeys(keys)
            }
            return {k: n for k, n in counted.items() if n}

    # ------------------------------------------------------------------ session
    @property
    def last_image(self) -> str | None:
        """The image worked on last (by anyone on this dataset), ``None`` before any."""
        return _Settings(self, "session").get("last_image")

    def set_last_image(self, image: str) -> None:
        """Remember the image worked on. Best effort: on a full disk this is logged, not raised
        (opening and viewing an image must work then)."""
        session = _Settings(self, "session")
        try:
            if session.get("last_image") != image:
                session["last_image"] = image
        except StoreFullError as exc:
            log.warning("the image worked on last is not remembered: %s", exc)

    @property
    def done(self) -> set[str]:
        """Image keys marked done."""
        with self._read() as conn:
            return set(conn.execute(select(t.done.c.key).where(self._is(t.done))).scalars())

    def set_done(self, image: str, done: bool = True) -> None:
        """Mark an image as done (or not)."""
        with self._write() as conn:
            conn.execute(delete(t.done).where(self._is(t.done), t.done.c.key == image))
            if done:
                conn.execute(insert(t.done).values(dataset_id=self._id, key=image))

    # ------------------------------------------------------------------ migration
    def migrate_json(self, path: Path, session_path: Path | None = None) -> bool:
        """Bring a JSON store of earlier versions (and its session file) into this dataset, in
        one transaction, ids, categories, done marks and metadata kept; then rename the files to
        ``*.bak``. Done only into a dataset that holds nothing yet; a dataset that already
        migrated ``path`` just renames it.

        Returns:
            Whether anything was migrated.
        Raises:
            StoreError: the JSON store (or session file) is unreadable; it is left untouched.
        """
        path = Path(path)
        if not path.exists():
            return False
        settings = _Settings(self, "store")
        migrated = settings.get("migrated_from") == str(path.resolve())
        if not migrated:
            if len(self.images) or len(self.annotations):
                log.warning("%s not migrated: the store %s holds annotations already", path, self.location)
                return False
            old = read_legacy(path, session_path)
            with self._write() as conn:
                for info in old.images.values():
                    self._ensure_image(conn, info.key, info.width, info.height)
                for name, cid in old.categories.items():
                    conn.execute(insert(t.categories).values(dataset_id=self._id, name=name, category_id=int(cid)))
                for ann in old.annotations:
                    self._ensure_image(conn, ann.image, ann.rle["size"][1], ann.rle["size"][0])
                if old.annotations:
                    conn.execute(insert(t.annotations), [row_of(self._id, a) for a in old.annotations])
                top = max([old.next_id, *(a.id + 1 for a in old.annotations)])
                conn.execute(update(t.datasets).where(t.datasets.c.id == self._id).values(next_annotation_id=top))
                for key, value in old.meta.items():
                    self.meta[key] = value
                if old.last_image is not None:
                    _Settings(self, "session")["last_image"] = old.last_image
                for key in dict.fromkeys(old.done):
                    conn.execute(insert(t.done).values(dataset_id=self._id, key=key))
                settings["migrated_from"] = str(path.resolve())
            log.info("migrated %s (%d annotations) into %s", path, len(old.annotations), self.location)
        for old_file in (path, session_path):
            if old_file is not None and Path(old_file).exists():
                os.replace(old_file, Path(f"{old_file}.bak"))
        return not migrated


class _Images(Mapping):
    """A live view of the dataset's images (see :attr:`AnnotationStore.images`)."""

    def __init__(self, store: AnnotationStore):
        self._store = store

    def get_in(self, conn: Connection, key: str) -> ImageInfo | None:
        s = self._store
        row = conn.execute(
            select(t.images.c.width, t.images.c.height).where(s._is(t.images), t.images.c.key == key)
        ).first()
        return None if row is None else ImageInfo(key, int(row.width), int(row.height))

    def __getitem__(self, key: str) -> ImageInfo:
        with self._store._read() as conn:
            info = self.get_in(conn, str(key))
        if info is None:
            raise KeyError(key)
        return info

    def __iter__(self) -> Iterator[str]:
        return iter([info.key for info in self.values()])

    def __len__(self) -> int:
        s = self._store
        with s._read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.images).where(s._is(t.images))).scalar())

    def values(self) -> list[ImageInfo]:  # type: ignore[override]
        s = self._store
        with s._read() as conn:
            rows = conn.execute(select(t.images).where(s._is(t.images)).order_by(t.images.c.key))
            return [ImageInfo(r.key, int(r.width), int(r.height)) for r in rows]

    def items(self) -> list[tuple[str, ImageInfo]]:  # type: ignore[override]
        return [(info.key, info) for info in self.values()]


class _Annotations(Mapping):
    """A live view of the dataset's annotations (see :attr:`AnnotationStore.annotations`)."""

    def __init__(self, store: AnnotationStore):
        self._store = store

    def __getitem__(self, ann_id: int) -> Annotation:
        return self._store.get([ann_id])[0]

    def __contains__(self, ann_id: object) -> bool:
        try:
            self._store.get([int(ann_id)])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def __iter__(self) -> Iterator[int]:
        return iter([a.id for a in self.values()])

    def __len__(self) -> int:
        s = self._store
        with s._read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(t.annotations).where(s._is(t.annotations))).scalar()
            )

    def values(self) -> list[Annotation]:  # type: ignore[override]
        s = self._store
        with s._read() as conn:
            rows = conn.execute(select(t.annotations).where(s._is(t.annotations)).order_by(t.annotations.c.id))
            return [annotation_of(r) for r in rows]

    def items(self) -> list[tuple[int, Annotation]]:  # type: ignore[override]
        return [(a.id, a) for a in self.values()]


class _Settings(MutableMapping):
    """JSON values of one scope of the ``settings`` table, written through."""

    def __init__(self, store: AnnotationStore, scope: str):
        self._store, self._scope = store, scope

    def _where(self):
        s = self._store
        return s._is(t.settings), t.settings.c.scope == self._scope

    def __getitem__(self, key: str) -> Any:
        with self._store._read() as conn:
            row = conn.execute(select(t.settings.c.value).where(*self._where(), t.settings.c.key == key)).first()
        if row is None:
            raise KeyError(key)
        return row.value

    def __setitem__(self, key: str, value: Any) -> None:
        s = self._store
        with s._write() as conn:
            conn.execute(delete(t.settings).where(*self._where(), t.settings.c.key == key))
            conn.execute(insert(t.settings).values(dataset_id=s._id, scope=self._scope, key=key, value=value))

    def __delitem__(self, key: str) -> None:
        with self._store._write() as conn:
            if not conn.execute(delete(t.settings).where(*self._where(), t.settings.c.key == key)).rowcount:
                raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self._store._read() as conn:
            return iter(list(conn.execute(select(t.settings.c.key).where(*self._where())).scalars()))

    def __len__(self) -> int:
        return len(list(iter(self)))


__all__ = ["REQUEST_TTL_S", "AnnotationStore", "os_user"]
