"""A bulk run of a folder, written as its named steps.

1. :func:`pick_runner`: where the images are annotated (:class:`~.local.LocalRunner` with a
   loaded engine, or :class:`~.ray_runner.RayRunner` from an engine config), and
   :func:`check_question`: the options asked for can be answered, before any image.
2. :func:`list_keys`: every image under the folder (recursively), as keys: POSIX paths
   relative to it.
3. :func:`resume`: read the journal (:mod:`.journal`), refuse one made for other classes; the
   images it lacks, or has as ``failed``, or as ``skipped`` with a file changed since
   (:func:`~.journal.skipped_to_retry`), are what is left to do.
4. :func:`journal_outcomes`: the runner annotates those; each outcome is journalled by this
   process as it arrives (durable line by line), whichever runner produced it.
5. :func:`open_run_store` and :func:`import_journal`: the journal's annotations into the folder's
   annotation store (the one the page edits), each image once; then the COCO export.  Both
   files are written atomically (:class:`~annotator.outputs.FolderOutputs`).  Boxes from a COCO
   file keep that file's category ids (:func:`open_run_store`); where they cannot (the store
   named the class before), :func:`warn_id_conflicts` says so.
6. :func:`summarize`: what the run did, :meth:`BulkSummary.report` in one line.

Running the same command again reads the journal and skips every image already in it, so a
killed or crashed run continues where it stopped: nothing lost, nothing done twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..engine import Engine, EngineConfig
from ..images import list_images
from ..outputs import FolderOutputs
from ..store import AnnotationStore, State
from ..text_prompts import NamedClass, resolve_classes
from ..vocabulary import Vocabulary, load_vocabulary
from .boxes import box_category_ids
from .journal import Journal, check_same_classes, file_stat, pending, resumed, skipped_to_retry
from .local import LocalRunner
from .ray_runner import RayConfig, RayRunner
from .records import from_records
from .step import BulkConfig, ImageOutcome, Runner

log = logging.getLogger(__name__)

DEFAULT_CONFIG = BulkConfig()  # frozen: one shared default


@dataclass
class BulkSummary:
    """What a run did.

    Attributes:
        done: images annotated (this run and earlier runs): ``resumed + annotated``.
        skipped: key → reason for images that could not be read (or failed, see ``failed``;
            those are retried by the next run).
        resumed: images found done in the journal at start (counted in ``done``).
        instances_per_class: label → count over all done images.
        seconds: wall time of this run; images_per_minute: of the images processed this run.
        coco_path: the COCO export; store_path: where the annotation store is (its file, or
            its database URL without the password).
        images: every image of the folder.
        annotated: images annotated by this run.
        failed: the keys of ``skipped`` that failed (a model error), not unreadable.
        retried: images skipped by an earlier run that this run annotated (their file changed,
            or ``retry_skipped``).
        left: images not tried yet (``max_images`` stopped the run first).
    """

    done: int
    skipped: dict[str, str]
    resumed: int
    instances_per_class: dict[str, int]
    seconds: float
    images_per_minute: float
    coco_path: Path
    store_path: str
    images: int = 0
    annotated: int = 0
    failed: list[str] = field(default_factory=list)
    retried: int = 0
    left: int = 0

    @property
    def unreadable(self) -> list[str]:
        """The keys of ``skipped`` that could not be read (not ``failed``)."""
        failed = set(self.failed)
        return [k for k in self.skipped if k not in failed]

    def report(self, names: int = 5) -> str:
        """The run in one line, e.g. ``128 images: 117 annotated now, 9 done in an earlier
        run, 2 skipped (unreadable: a.jpg, b.jpg; fix them and run again, or
        --retry-skipped)``; at most ``names`` keys are named per group."""

        def listed(keys: list[str]) -> str:
            more = f" and {len(keys) - names} more" if len(keys) > names else ""
            return ", ".join(keys[:names]) + more

        now = f"{self.annotated} annotated now"
        if self.retried:
            now += f" ({self.retried} of them skipped before)"
        parts = [now]
        if self.resumed:
            parts.append(f"{self.resumed} done in an earlier run")
        if self.unreadable:
            them = "it" if len(self.unreadable) == 1 else "them"
            parts.append(
                f"{len(self.unreadable)} skipped (unreadable: {listed(self.unreadable)}; "
                f"fix {them} and run again, or --retry-skipped)"
            )
        if self.failed:
            parts.append(
                f"{len(self.failed)} failed (a model error: {listed(self.failed)}; tried again when you run again)"
            )
        if self.left:
            parts.append(f"{self.left} not tried yet (run again to continue)")
        return f"{self.images} image{'' if self.images == 1 else 's'}: " + ", ".join(parts)


def pick_runner(engine: Engine | None, ray: RayConfig | None, engine_config: EngineConfig | None) -> Runner:
    """The runner of a run: on Ray when ``ray`` is given (actors built from ``engine_config``),
    else in this process with ``engine``.

    Raises:
        ValueError: ``ray`` without ``engine_config``, or neither ``engine`` nor ``ray``.
    """
    if ray is not None:
        if engine_config is None:
            raise ValueError("a Ray run needs the engine_config its actors build their models from")
        return RayRunner(engine_config, ray)
    if engine is None:
        raise ValueError("give the engine, or a Ray config and the engine_config")
    return LocalRunner(engine)


def check_question(engine: Engine | None, config: BulkConfig) -> None:
    """Refuse options that cannot be answered, before any image: ``classes`` with ``boxes``;
    ``classes`` that the local engine cannot find (no CLIP, names it cannot read).

    Raises:
        ValueError: ``classes`` with ``boxes``.
        annotator.text_prompts.LabelsUnavailable: ``classes`` without CLIP.
    """
    if config.classes and config.boxes is not None:
        raise ValueError("classes and boxes do not combine: boxes already say what to segment")
    if config.classes and engine is not None:
        engine.text_query(list(config.classes), config.class_threshold)  # no CLIP, bad names: say so before any image


def run_vocabulary(engine: Engine | None, engine_config: EngineConfig | None) -> Vocabulary | None:
    """The vocabulary that names the store's categories: the engine's, else the one
    ``engine_config`` names (loaded here; a Ray run's models live in its actors)."""
    return engine.vocabulary if engine is not None else load_vocabulary(engine_config.vocab)


def list_keys(outputs: FolderOutputs, folder: str | Path) -> list[str]:
    """Every image under the folder (recursively, sorted) as a POSIX path relative to it.

    Raises:
        FileNotFoundError: the folder is not a folder.
        ValueError: it holds no image files.
    """
    keys = [p.relative_to(outputs.folder).as_posix() for p in list_images(outputs.folder, recursive=True)]
    if not keys:
        raise ValueError(f"{folder} contains no image files")
    return keys


def resume(
    journal: Journal, config: BulkConfig, vocab: Vocabulary | None
) -> tuple[dict[str, ImageOutcome], list[NamedClass]]:
    """The journal's outcomes by key, and ``config.classes`` resolved against ``vocab``
    (:class:`~annotator.text_prompts.NamedClass` each; ``[]`` without classes).

    Raises:
        ValueError: the journal holds results of other classes (see
            :func:`~.journal.check_same_classes`).
    """
    seen = journal.read()
    named = resolve_classes(list(config.classes), vocab) if config.classes else []
    check_same_classes(journal, seen, [c.name for c in named])
    return seen, named


def journal_outcomes(
    outcomes: Iterator[ImageOutcome], journal: Journal, total: int, progress: bool, folder: Path | None = None
) -> dict[str, ImageOutcome]:
    """Journal each outcome as it arrives (durable line by line), report the skipped and failed
    ones, and show a progress bar of ``total`` images with the rate and the instances found so
    far (the running total). A skipped image's line records its file as it is
    (:func:`~.journal.file_stat` of ``folder / key``), so that a later run retries it once it
    changed.

    Returns:
        The outcomes journalled, by key.
    """
    finished: dict[str, ImageOutcome] = {}
    instances = 0
    with tqdm(total=total, desc="annotating", unit="img", disable=not progress) as bar:
        for outcome in outcomes:
            if outcome.status == "skipped" and folder is not None:
                outcome.file = file_stat(folder / outcome.key)
            journal.append(outcome)
            finished[outcome.key] = outcome
            if outcome.status != "done":
                log.warning("%s %s: %s", outcome.status, outcome.key, outcome.reason)
            instances += len(outcome.annotations)
            bar.update(1)
            bar.set_postfix(instances=instances)
    return finished


def open_run_store(
    outputs: FolderOutputs,
    vocab: Vocabulary | None,
    named: list[NamedClass],
    database: str | None = None,
    box_ids: dict[str, int] | None = None,
) -> AnnotationStore:
    """The folder's annotation store (``database``, or the SQLite file in the output folder),
    its new categories numbered as the vocabulary numbers them (the named classes by their
    resolved ids), except the classes of ``box_ids`` (:func:`~.boxes.box_category_ids`: a COCO
    box file's ids), which get the file's ids; the vocabulary's names holding those ids give
    them up. Ids the store already gave stay (see :func:`warn_id_conflicts`). With named
    classes, ``meta["classes"]`` lists them, so that the exports list them even where none was
    found.

    Raises:
        annotator.store.StoreError: the store cannot be opened (checked before any image runs).
    """
    category_ids = dict(zip(vocab.names, vocab.ids, strict=True)) if vocab else {}
    category_ids.update((c.name, c.category_id) for c in named)
    if box_ids:
        taken = set(box_ids.values())
        category_ids = {n: i for n, i in category_ids.items() if i not in taken}
        category_ids.update(box_ids)
    store = outputs.open_store(category_ids=category_ids, database=database)
    if named:
        store.meta["classes"] = [c.name for c in named]
    return store


def warn_vocabulary_ids(vocab: Vocabulary | None, box_ids: dict[str, int]) -> None:
    """Warn, one line per class, where the vocabulary (``--vocab``) numbers a class of the box
    file otherwise than the file does; the file's id is the one kept."""
    if vocab is None:
        return
    by_name = dict(zip(vocab.names, vocab.ids, strict=True))
    for name, cid in box_ids.items():
        vid = by_name.get(name)
        if vid is not None and int(vid) != cid:
            log.warning(
                "class %r: the --boxes file gives it id %d, --vocab %s id %d; the store keeps the file's %d",
                name,
                cid,
                vocab.name,
                vid,
                cid,
            )


def warn_id_conflicts(store: AnnotationStore, box_ids: dict[str, int], before: dict[str, int]) -> None:
    """Warn, one line per class, where the store's id of a box file's class is not the file's:
    the store named it before this run (``before``: its categories when the run opened it; ids
    never change), or another class held the file's id. Classes the store lacks (no box of theirs
    in the folder's images) are not mentioned."""
    now = store.categories
    owners = {cid: name for name, cid in now.items()}
    for name, cid in box_ids.items():
        got = now.get(name)
        if got is None or got == cid:
            continue
        if name in before:
            why = f"this folder's store gave it {got} before this run, and ids never change"
        else:
            why = f"this folder's store gives {cid} to {owners.get(cid, 'another class')!r}"
        log.warning("class %r has id %d, not the --boxes file's %d: %s; the exports use %d", name, got, cid, why, got)


def import_journal(store: AnnotationStore, keys: list[str], seen: dict[str, ImageOutcome]) -> None:
    """Add every done image's annotations to the store, once (the images imported are listed in
    the store's ``meta["bulk_imported"]``); done images without annotations are kept as
    negatives. One transaction: a crash (or a full disk) imports nothing, and the next run
    imports all; writers in other processes (the page) wait for it, then see it."""
    with store.batch():
        imported = set(store.meta.get("bulk_imported", []))
        for key in keys:
            outcome = seen.get(key)
            if outcome is None or outcome.status != "done":
                continue
            store.add_image(key, outcome.width, outcome.height)  # negatives too
            if key in imported:
                continue
            store.add_instances(
                key,
                from_records(outcome.annotations, outcome.width, outcome.height),
                history=False,
                state=State.PREDICTED,
            )
            imported.add(key)
        store.meta["bulk_imported"] = sorted(imported)


def summarize(
    keys: list[str],
    seen: dict[str, ImageOutcome],
    resumed_n: int,
    finished: dict[str, ImageOutcome],
    start: float,
    store_path: str,
    coco_path: Path,
    retried: set[str] | frozenset[str] = frozenset(),
) -> BulkSummary:
    """The :class:`BulkSummary` of a run from the journal's outcomes after it (``seen``), the
    count resumed at its start, the outcomes it journalled, its start
    (``time.perf_counter()``) and the skipped keys it tried again (``retried``)."""
    outcomes = [seen[k] for k in keys if k in seen]
    done = [o for o in outcomes if o.status == "done"]
    elapsed = time.perf_counter() - start
    return BulkSummary(
        done=len(done),
        skipped={o.key: o.reason or "" for o in outcomes if o.status in ("skipped", "failed")},
        resumed=resumed_n,
        instances_per_class=dict(Counter(a["label"] for o in done for a in o.annotations).most_common()),
        seconds=elapsed,
        images_per_minute=60.0 * len(finished) / elapsed if finished else 0.0,
        coco_path=coco_path,
        store_path=store_path,
        images=len(keys),
        annotated=sum(o.status == "done" for o in finished.values()),
        failed=[o.key for o in outcomes if o.status == "failed"],
        retried=sum(k in retried and o.status == "done" for k, o in finished.items()),
        left=sum(k not in seen for k in keys),
    )


def annotate_folder(
    engine: Engine | None,
    folder: str | Path,
    out_dir: str | Path,
    config: BulkConfig = DEFAULT_CONFIG,
    progress: bool = True,
    max_images: int | None = None,
    *,
    ray: RayConfig | None = None,
    engine_config: EngineConfig | None = None,
    database: str | None = None,
    retry_skipped: bool = False,
    vocab_given: bool = False,
) -> BulkSummary:
    """Annotate every image under ``folder`` (recursively), resumably (see the module doc for
    the steps).

    Args:
        engine: the loaded models, kept for the whole run; ``None`` with ``ray`` (the models
            are then loaded by the Ray actors, not here).
        out_dir: the journal, the store and the COCO export go here (names:
            :class:`~annotator.outputs.FolderOutputs`).
        max_images: stop after processing this many new images (for tests and benchmarks).
        ray: run the images on Ray (see :mod:`.ray_runner`): decoding in tasks, the
            models in actors built from ``engine_config``; outcomes arrive here in completion
            order and are journalled as in a local run.
        engine_config: how the actors build their models (required with ``ray``; its
            vocabulary also names the store's categories).
        database: the annotation store's database (an SQLAlchemy URL; default the SQLite
            file in ``out_dir``).
        retry_skipped: try every image skipped by an earlier run again (without it, only those
            whose file changed since).
        vocab_given: the vocabulary was chosen (``--vocab``): warn where it numbers a class of
            ``config.boxes`` otherwise than the box file does (the file's id is kept either way).
    Raises:
        annotator.store.StoreError: the store cannot be opened (before any image is processed).
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: it holds no image files, or ``ray`` without ``engine_config``, or neither
            ``engine`` nor ``ray``, or ``classes`` with ``boxes``, or a journal made with other
            ``classes``.
        annotator.text_prompts.LabelsUnavailable: ``classes`` without CLIP.
        RuntimeError: the Ray run stopped (e.g. the actors could not load the models); what
            was journalled is kept.
    """
    runner = pick_runner(engine, ray, engine_config)
    check_question(engine, config)
    start = time.perf_counter()
    vocab = run_vocabulary(engine, engine_config)  # cheap checks first
    outputs = FolderOutputs(folder, out_dir)
    keys = list_keys(outputs, folder)
    journal = Journal(outputs.journal_path)
    seen, named = resume(journal, config, vocab)
    resumed_n = resumed(keys, seen)
    box_ids = box_category_ids(config.boxes)
    if vocab_given:
        warn_vocabulary_ids(vocab, box_ids)
    store = open_run_store(outputs, vocab, named, database, box_ids)  # a store that cannot open stops the run here
    before = store.categories
    retry = skipped_to_retry(keys, seen, outputs.folder, every=retry_skipped)
    todo = list(pending(keys, seen, retry))[:max_images]
    outcomes = runner.run(outputs.folder, todo, config)
    finished = journal_outcomes(outcomes, journal, len(todo), progress, outputs.folder)
    seen.update(finished)
    import_journal(store, keys, seen)
    warn_id_conflicts(store, box_ids, before)
    coco_path = outputs.export(store, "coco")
    return summarize(keys, seen, resumed_n, finished, start, store.location, coco_path, retry)
