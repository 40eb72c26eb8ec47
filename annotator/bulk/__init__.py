"""Bulk auto-annotation of a folder, resumable, in this process or on Ray.

Each image is segmented (everything mode), searched for named classes or prompted with given
boxes, and its outcome is appended to a journal by this process as soon as the image is
finished, wherever it ran.  Running the same command again skips every image already in the
journal; at the end the journal is imported into the folder's annotation store and exported as
COCO instances JSON.

The package, each module importing only those listed before it::

    boxes       load_boxes, boxes_for, box_category_ids: prompt boxes from COCO JSON or per-image JSON lists
    records     to_records, from_records: Instances ⇄ the journal's annotation records
    step        BulkConfig, ImageOutcome, the per-image step (image record → outcome), Runner
    journal     Journal (JSON Lines: append, read), pending / resumed / skipped_to_retry, check_same_classes
    local       LocalRunner: the step in this process
    ray_runner  RayRunner, RayConfig, plan_actors: the step in Ray actors
    run         annotate_folder: the run as named steps, which picks a runner; import_journal

Both runners have one signature, ``runner.run(folder, keys, config) -> Iterator[ImageOutcome]``
(:class:`~.step.Runner`).
"""

from .boxes import box_category_ids, boxes_for, load_boxes
from .journal import Journal, check_same_classes, file_stat, pending, resumed, skipped_to_retry
from .local import LocalRunner
from .ray_runner import ActorPlan, RayConfig, RayRunner, plan_actors
from .records import from_records, to_records
from .run import BulkSummary, annotate_folder, import_journal, journal_outcomes
from .step import BulkConfig, ImageOutcome, Runner, annotate_image, annotate_loaded, annotate_record, process_image

__all__ = [
    "ActorPlan",
    "BulkConfig",
    "BulkSummary",
    "ImageOutcome",
    "Journal",
    "LocalRunner",
    "RayConfig",
    "RayRunner",
    "Runner",
    "annotate_folder",
    "annotate_image",
    "annotate_loaded",
    "annotate_record",
    "box_category_ids",
    "boxes_for",
    "check_same_classes",
    "file_stat",
    "from_records",
    "import_journal",
    "journal_outcomes",
    "load_boxes",
    "pending",
    "plan_actors",
    "process_image",
    "resumed",
    "skipped_to_retry",
    "to_records",
]
