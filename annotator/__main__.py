"""Command line: ``python -m annotator eval|annotate|import|export|push-label-studio|models ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .evaluation import TASKS, ReferencePredictor, evaluate_everything, evaluate_find_all, evaluate_prompts
from .everything.pipeline import METHODS
from .options import add_engine_arguments, engine_config_from_args, positive_int, unit_interval
from .outputs import EXPORT_FORMATS, IMPORT_FORMATS, FolderOutputs
from .store import AnnotationStore, StoreError
from .text_prompts import LabelsUnavailable, parse_classes
from .vocabulary import VocabularyError


def _add_class_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--classes", metavar="NAMES|FILE",
                        help=f"{what}: find all instances of these classes only, named against the rest of the "
                        "vocabulary as background: 'car, person, traffic light' or a file with one class a line; "
                        "names the vocabulary lacks are free text (needs CLIP)")  # fmt: skip
    parser.add_argument("--class-threshold", type=unit_interval, metavar="P",
                        help="with --classes: also keep a region whose named class loses to a background class "
                        "when its probability reaches P (default: only where a named class wins)")  # fmt: skip


def _classes(args: argparse.Namespace) -> list[str] | None:
    """The --classes names, or None; exits 2 with the reason on a bad list."""
    if not args.classes:
        if args.class_threshold is not None:
            print("--class-threshold: only with --classes", file=sys.stderr)
            raise SystemExit(2)
        return None
    try:
        return parse_classes(args.classes)
    except ValueError as exc:
        print(f"--classes: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _eval(args: argparse.Namespace) -> int:
    from .engine import build_engine
    from .everything.patches import PatchConfig
    from .everything.pipeline import EverythingConfig

    if args.reference and args.task == "everything":
        print("--reference: for prompt-box and prompt-point (everything mode's reference is benchmarks/everything.py)")
        return 2
    if args.flip_tta and args.task != "prompt-box":
        print("--flip-tta: for prompt-box only (clicks measured worse with it; everything mode does not take it)")
        return 2
    classes = _classes(args)
    if classes and args.task != "everything":
        print("--classes: for --task everything (find all); prompt tasks name no class")
        return 2
    engine = build_engine(engine_config_from_args(args, args.vocab or args.gt))
    patches = PatchConfig(points_per_side=args.points_per_side) if args.points_per_side else None
    config = EverythingConfig(method=args.method, patches=patches)
    if classes:
        try:
            scores = evaluate_find_all(
                engine,
                args.images,
                args.gt,
                classes,
                args.limit,
                args.class_threshold,
                config,
            )
        except (LabelsUnavailable, ValueError) as exc:
            print(f"--classes: {exc}", file=sys.stderr)
            return 2
        result = {"find all": {"method": args.method, "classes": ", ".join(classes), **scores}}
    elif args.task == "everything":
        scores = evaluate_everything(
            engine,
            args.images,
            args.gt,
            args.limit,
            config,
            panoptic_gt=args.panoptic_gt,
            panoptic_dir=args.panoptic_dir,
        )
        pq = scores.pop("PQ")
        result = {"everything": {"method": args.method, **scores}}
        if pq:
            for group, row in pq.items():
                result[f"panoptic {group}"] = row
        elif args.panoptic_gt:
            print("PQ: skipped, the instances are unlabelled (" + str(scores["note"]) + ")")
    else:
        reference = ReferencePredictor(engine.decoder.model) if args.reference else None
        result = evaluate_prompts(
            engine, args.images, args.gt, (args.task,), args.limit, reference=reference, flip_tta=args.flip_tta
        )
    for task, row in result.items():
        print(f"\n{task}")
        for key, value in row.items():
            missing = "n/a (no ground truth instance)" if key.startswith("AP ") else "n/a (no CLIP weights)"
            shown = missing if value is None else (f"{value:.2f}" if isinstance(value, float) else value)
            print(f"  {key:18} {shown}")
    if args.json:
        from .fileio import atomic_write_json

        atomic_write_json(args.json, result, indent=2)
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from .bulk import BulkConfig, annotate_folder, load_boxes

    if args.flip_tta and not args.boxes:
        print("--flip-tta: for box prompts (--boxes); the everything pass does not take it")
        return 2
    classes = _classes(args)
    if classes and args.boxes:
        print("--classes: not with --boxes (the boxes already say what to segment)")
        return 2
    try:
        boxes = load_boxes(args.boxes) if args.boxes else None
    except ValueError as exc:
        print(f"--boxes: {exc}", file=sys.stderr)
        return 2
    # A store that exists (or a database named) is checked, opened and a JSON store of before
    # migrated, before any model loads or any image runs: one that cannot be opened ends the
    # command at once. A new one is made by the run (nothing is written before it starts).
    if not Path(args.folder).is_dir():
        print(f"annotate: {args.folder}: not a folder", file=sys.stderr)
        return 2
    outputs = FolderOutputs(args.folder, args.out)
    if args.db or outputs.store_path.exists() or outputs.legacy_store_path.exists():
        outputs.open_store(database=args.db).close()
    engine_config = engine_config_from_args(args)
    config = BulkConfig(
        method=args.method,
        boxes=boxes,
        score_threshold=args.score_threshold,
        min_area=args.min_area,
        flip_tta=args.flip_tta,
        classes=tuple(classes) if classes else None,
        class_threshold=args.class_threshold,
    )
    # --vocab given: say where its ids differ from a --boxes file's (the file's are kept)
    resume = {"retry_skipped": args.retry_skipped, "vocab_given": args.vocab is not None}
    if args.ray is None and args.workers is None:
        from .engine import build_engine, engine_summary

        engine = build_engine(engine_config)
        print(f"engine: {engine_summary(engine)}")
        if not engine.has_labels and not classes:
            print("labels: off (the warning above says why); instances are named 'object' unless --boxes names them")
        try:
            summary = annotate_folder(engine, args.folder, args.out, config, database=args.db, **resume)
        except (LabelsUnavailable, ValueError) as exc:  # no CLIP; a journal of other classes
            print(f"annotate: {exc}", file=sys.stderr)
            return 2
    else:
        from .bulk import RayConfig

        logging.getLogger("annotator.bulk.ray_runner").setLevel(logging.INFO)  # the actor plan
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # one progress bar, ours; errors still show
        address = None if args.ray in (None, "local") else args.ray
        ray = RayConfig(address=address, actors=args.workers, cpus_per_actor=args.threads)
        try:
            summary = annotate_folder(
                None, args.folder, args.out, config, ray=ray, engine_config=engine_config, database=args.db, **resume
            )
        except (ConnectionError, ValueError) as exc:  # no cluster there, a bad folder, no GPUs for --device cuda
            print(f"annotate on Ray: {exc}", file=sys.stderr)
            return 2
        except RuntimeError as exc:  # the run stopped
            print(f"annotate on Ray failed: {exc}\n(what was journalled is kept; run the same command again "
                  "to continue)", file=sys.stderr)  # fmt: skip
            return 1
    print(f"\n{summary.report()}")
    for key, reason in summary.skipped.items():
        print(f"  {'failed' if key in summary.failed else 'skipped'} {key}: {reason}")
    if summary.annotated:  # a rate of nothing annotated says nothing
        print(f"{summary.images_per_minute:.1f} images/min this run, {summary.seconds:.0f} s")
    else:
        print(f"nothing annotated this run ({summary.seconds:.0f} s)")
    print("instances per class:")
    for label, n in list(summary.instances_per_class.items())[:30]:
        print(f"  {label:30} {n}")
    print(f"annotation store: {summary.store_path}\nCOCO export: {summary.coco_path}")
    return 0


DB_HELP = (
    "the annotation store's database (default: <out>/<folder>.annotations.db): "
    "postgresql://USER:PASSWORD@HOST/DB (shared by a team) or sqlite:///FILE"
)


def _folder_store(args: argparse.Namespace) -> tuple[FolderOutputs, AnnotationStore] | None:
    """The folder's outputs and annotation store, or ``None`` (reported) when the folder has
    not been annotated."""
    outputs = FolderOutputs(args.folder, args.out)
    if args.db is None and not (outputs.store_path.is_file() or outputs.legacy_store_path.is_file()):
        print(
            f"no annotations for {args.folder}: {outputs.store_path} does not exist (annotate it first)",
            file=sys.stderr,
        )
        return None
    return outputs, outputs.open_store(database=args.db)


def _import(args: argparse.Namespace) -> int:
    from .formats.errors import FormatReadError
    from .importer import import_annotations

    if not Path(args.folder).is_dir():
        print(f"import: {args.folder}: not a folder", file=sys.stderr)
        return 2
    outputs = FolderOutputs(args.folder, args.out)
    store = outputs.open_store(database=args.db)
    sam = None
    if args.sam_boxes:
        from .engine import build_engine

        sam = build_engine(engine_config_from_args(args))
    try:
        summary = import_annotations(
            store, args.folder, args.source, args.format, missing=args.missing, replace=args.replace, sam=sam
        )
    except FormatReadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        n = len(exc.problems)
        print(f"import: {n} problem{'s' if n > 1 else ''}; nothing imported", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"import: {exc}; nothing imported", file=sys.stderr)
        return 2
    print(summary.report())
    print(f"annotation store: {store.location}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .formats.dataset import ReviewedView
    from .vocabulary import load_vocabulary

    found = _folder_store(args)
    if found is None:
        return 2
    outputs, store = found
    view = ReviewedView(store, args.only)
    path = outputs.export(
        view,
        args.format,
        segmentation=args.segmentation,
        isthing=load_vocabulary(args.vocab).isthing_by_name() if args.vocab else {},
        url_prefix=args.image_url_prefix,
        region_type=args.regions,
        images=args.yolo_images,
        val_fraction=args.val_fraction,
        seed=args.seed,
        task=args.task,
        tolerance=args.tolerance,
        shape_type=args.shape_type,
    )
    counts = store.total_state_counts()
    kept = counts["accepted"] + (counts["predicted"] if args.only == "all" else 0)
    left = [f"{counts['rejected']} rejected"] + (
        [f"{counts['predicted']} predicted"] if args.only == "accepted" else []
    )
    print(f"{kept} annotations of {len(store.images)} images → {path} (left out: {', '.join(left)})")
    return 0


def _push(args: argparse.Namespace) -> int:
    import os

    from tqdm import tqdm

    from .formats.dataset import ReviewedView
    from .formats.label_studio.push import ENV_API_KEY, ENV_URL, LabelStudioPushError, PushConfig, push_folder

    found = _folder_store(args)
    if found is None:
        return 2
    outputs, store = found
    try:
        config = PushConfig(
            url=args.url or os.environ.get(ENV_URL) or "http://localhost:8080",
            api_key=args.api_key or os.environ.get(ENV_API_KEY, ""),
            project_title=args.project or Path(args.folder).resolve().name,
            project_id=args.project_id,
            images=args.images,
            document_root=Path(args.document_root) if args.document_root else None,
            region_type=args.regions,
        )
        bars: list[tqdm] = []  # the bar starts with the first image pushed, not before the server answers

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(desc="pushing", unit="img", total=total))
            bars[0].update(done - bars[0].n)

        try:
            view = ReviewedView(store, args.only)
            summary = push_folder(view, args.folder, config, outputs.push_journal_path, progress)
        finally:
            for bar in bars:
                bar.close()
    except LabelStudioPushError as exc:
        print(f"push failed: {one_line(exc)} (what was pushed is kept: run the same command again to continue)",
              file=sys.stderr)  # fmt: skip
        return 2
    made = "created" if summary.created_project else "reused"
    print(f"project {summary.project_id} ({made}): {summary.tasks_created} tasks and "
          f"{summary.predictions_created} predictions ({summary.regions} regions) pushed, "
          f"{summary.already_pushed} already there, {summary.seconds:.1f} s")  # fmt: skip
    if summary.labels_added:
        print(f"classes added to its labelling config: {', '.join(summary.labels_added)}")
    for key, reason in summary.skipped.items():
        print(f"  skipped {key}: {reason}")
    print(f"project URL: {summary.project_url}")
    return 0


def _models(_args: argparse.Namespace) -> int:
    from .models import format_table, model_table

    print(format_table(model_table()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovsam", description="OV-SAM annotator tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("eval", help="score the engine against COCO-format ground truth")
    ev.add_argument("--task", choices=TASKS, required=True,
                    help="prompt-box / prompt-point: mean IoU of prompted masks (+ label accuracy with CLIP); "
                    "everything: class-agnostic AR@10, AR@100, AP (+ mask AP and PQ with labels)")  # fmt: skip
    ev.add_argument("--images", required=True, help="folder of the images named in --gt")
    ev.add_argument("--gt", required=True, help="COCO instances JSON")
    ev.add_argument("--limit", type=int, help="first N images (by id)")
    ev.add_argument("--json", help="also write the figures to this file")
    ev.add_argument(
        "--reference",
        action="store_true",
        help="prompt tasks: also score segment-anything's plain SamPredictor, same weights, same instances",
    )
    ev.add_argument(
        "--flip-tta", action="store_true", help="prompt-box: flip test-time augmentation, as annotate --flip-tta"
    )
    _add_class_arguments(ev, "everything")
    add_engine_arguments(ev, vocab_default=None)  # --vocab: default the --gt categories
    ev.add_argument("--method", default="samcp", choices=METHODS, help="everything: the pass")
    ev.add_argument(
        "--points-per-side",
        type=int,
        help="everything: a uniform N×N point grid (default: 32×32 on CUDA; on a CPU one prompt per unexplained image segment)",
    )
    ev.add_argument("--panoptic-gt", help="everything: COCO panoptic JSON of the same images, for PQ/SQ/RQ")
    ev.add_argument("--panoptic-dir", help="its PNG folder (default: the JSON path without .json)")
    an = sub.add_parser("annotate", help="auto-annotate a folder (resumable: run again to continue)")
    an.add_argument("folder", help="images, searched recursively")
    an.add_argument("--out", default="exports", help="journal, annotation store and COCO export go here")
    an.add_argument(
        "--db",
        metavar="URL",
        help=DB_HELP,
    )
    an.add_argument("--method", default="samcp", choices=METHODS, help="everything pass")
    an.add_argument("--boxes", help="prompt with these boxes instead: COCO JSON, or a folder of <stem>.json lists")
    an.add_argument(
        "--flip-tta",
        action="store_true",
        help="with --boxes: also decode each box on the mirrored image and average (better masks, "
        "one more image encoder pass per image)",
    )
    _add_class_arguments(an, "instead of labelling everything")
    an.add_argument("--retry-skipped", action="store_true",
                    help="try every image an earlier run skipped as unreadable again (without it, only those "
                    "whose file changed since)")  # fmt: skip
    an.add_argument("--score-threshold", type=float, default=0.0, help="drop labelled instances scoring lower")
    an.add_argument("--min-area", type=int, default=0, help="drop instances smaller than this (pixels)")
    an.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="run on Ray: alone (or 'local'), a local Ray on this machine; 'auto', the cluster "
                    "this machine is a node of; HOST:6379 or ray://HOST:10001, that cluster. The images "
                    "must be at the same path on every node; outputs are written here")  # fmt: skip
    an.add_argument("--workers", type=positive_int, metavar="N",
                    help="engine actors on Ray (implies --ray; default: one per GPU, else CPUs / --threads)")  # fmt: skip
    add_engine_arguments(an, vocab_default=None)  # None: not given (the default vocabulary, no id warnings)
    im = sub.add_parser(
        "import", help="import annotations made elsewhere into a folder's store, as predictions to review"
    )
    im.add_argument("folder", help="the image folder the annotations are of")
    im.add_argument("--from", dest="source", required=True, metavar="PATH",
                    help="the file or dataset folder to read (COCO JSON, YOLO folder, LabelMe folder, ...)")  # fmt: skip
    im.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    im.add_argument("--out", default="exports", help="where the annotation store is (created if need be)")
    im.add_argument("--db", metavar="URL", help=DB_HELP)
    im.add_argument("--missing", default="error", choices=["error", "skip"],
                    help="an image of the file the folder lacks: refuse the import (default) or skip that image")  # fmt: skip
    im.add_argument("--replace", action="store_true",
                    help="first remove the annotations the imported images already have")  # fmt: skip
    im.add_argument("--sam-boxes", action="store_true",
                    help="turn box-only annotations (YOLO detection, VOC/CVAT boxes) into masks with SAM")  # fmt: skip
    add_engine_arguments(im, vocab_default=None)
    ex = sub.add_parser("export", help="export a folder's annotations (from the app or annotate)")
    ex.add_argument("folder", help="the image folder that was annotated")
    ex.add_argument("--format", default="coco", choices=EXPORT_FORMATS)
    ex.add_argument("--segmentation", default="rle", choices=["rle", "polygon"], help="coco: mask encoding")
    ex.add_argument("--yolo-images", default="link", choices=["link", "copy"],
                    help="yolo: images/ as relative links to the folder's files (default) or copies")  # fmt: skip
    ex.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                    help="yolo: put this share of the images in images/val (seeded; default 0: val is train)")  # fmt: skip
    ex.add_argument("--seed", type=int, default=0, help="yolo: seed of the train/val split")
    ex.add_argument("--task", default="segment", choices=["segment", "detect"], help="yolo: polygons or boxes")
    ex.add_argument("--tolerance", type=float, default=0.5, metavar="PX",
                    help="yolo: polygon simplification, pixels (0: every boundary pixel)")  # fmt: skip
    ex.add_argument("--shape-type", default="mask", choices=["mask", "polygon"],
                    help="labelme: exact mask shapes (labelme >= 5.3) or polygons (holes cut in, parts by group_id)")  # fmt: skip
    ex.add_argument("--only", default="all", choices=["all", "accepted"],
                    help="all: every annotation but the rejected ones; accepted: only those a person made or accepted")  # fmt: skip
    ex.add_argument("--vocab", help="coco-panoptic: vocabulary giving isthing (e.g. coco_panoptic)")
    ex.add_argument("--regions", default="brush", choices=["brush", "polygon"], help="label-studio: region type")
    ex.add_argument("--image-url-prefix", help="label-studio: prefix of image URLs (default: local-files serving)")
    ex.add_argument("--out", default="exports", help="where the annotation store is and exports go")
    ex.add_argument(
        "--db",
        metavar="URL",
        help=DB_HELP,
    )
    ps = sub.add_parser("push-label-studio", help="push a folder's annotations to Label Studio as predictions")
    ps.add_argument("folder", help="the image folder that was annotated")
    ps.add_argument("--url", help="server (default: $LABEL_STUDIO_URL, else http://localhost:8080)")
    ps.add_argument("--api-key", help="personal access token (default: $LABEL_STUDIO_API_KEY; prefer the variable)")
    ps.add_argument("--project", help="project title to reuse or create (default: the folder's name)")
    ps.add_argument("--project-id", type=int, help="push into this existing project instead")
    ps.add_argument("--images", default="upload", choices=["upload", "local-files"],
                    help="upload the image files (any server), or reference them by local-files serving "
                    "(the server shares this disk)")  # fmt: skip
    ps.add_argument("--document-root",
                    help="local-files: the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT "
                    "(default: that variable here, else the folder's parent)")  # fmt: skip
    ps.add_argument("--regions", default="brush", choices=["brush", "polygon"], help="region type of the masks")
    ps.add_argument("--only", default="all", choices=["all", "accepted"],
                    help="all: every annotation but the rejected ones; accepted: only those a person made or accepted")  # fmt: skip
    ps.add_argument("--out", default="exports", help="where the annotation store is (and the push journal goes)")
    ps.add_argument(
        "--db",
        metavar="URL",
        help=DB_HELP,
    )
    sub.add_parser("models", help="list the SAM and CLIP models, their weights and where each is the default")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "annotate": _annotate,
        "import": _import,
        "export": _export,
        "eval": _eval,
        "push-label-studio": _push,
        "models": _models,
    }
    try:
        return commands[args.cmd](args)
    except USER_ERRORS as exc:
        print(f"{args.cmd}: {one_line(exc)}", file=sys.stderr)
        return 2


# Errors that come from what the user gave (a store or session file that cannot be read, a
# database that cannot be opened, a vocabulary that does not exist, a file or folder missing or not
# writable, a full disk): one line on stderr and exit status 2, not a traceback.
USER_ERRORS = (StoreError, VocabularyError, OSError)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (a database driver's message spans several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
