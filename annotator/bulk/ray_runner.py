"""The Ray runner: a bulk run's per-image step spread over a Ray cluster.

The pipeline is a streaming Ray Data dataset::

    image keys ─▶ decode (CPU tasks) ─▶ engine actors (map_batches)  ─▶ this process
                  load_image_record     annotate_record; models loaded   yields each outcome
                                        once per actor

- The image keys (paths relative to the folder) are the dataset; each row also carries its
  image's prompt boxes (JSON text) when the run prompts with boxes.
- Decoding is done by Ray tasks (:func:`~annotator.images.load_image_record`, as in the local
  runner), overlapped with inference.  An unreadable file keeps its reason.
- A pool of actors, each holding one :class:`~annotator.engine.Engine` built from the
  :class:`~annotator.engine.EngineConfig`, turns the decoded images into outcomes with
  :func:`~.step.annotate_record` (the local runner's step: masks as COCO RLE, unreadable images
  ``skipped``), sent back as JSON text.  On a cluster with GPUs there is one actor per GPU
  (``num_gpus=1`` each, or a share with more actors); otherwise CPU actors, each reserving
  ``cpus_per_actor`` cores and running that many threads.
- Outcomes stream back to the calling process in completion order; the caller journals them,
  so resuming, skipping and the exports are those of a local run.

Where things must live: the image folder must be readable at the same path on every node (a
shared filesystem), and every node needs this package and the model weights (the checkpoints
folder; they are fetched there on first use when they can be downloaded).  The journal, the
annotation store and the exports are written only by the calling process.

Ray itself is imported when a run starts, so that this module (and :class:`RayConfig`) costs
nothing to import for a local run.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engine import EngineConfig, build_engine
from ..images import load_image_record
from .boxes import boxes_for
from .step import BulkConfig, ImageOutcome, annotate_record

if TYPE_CHECKING:
    import ray.data

log = logging.getLogger(__name__)

DEFAULT_CPUS_PER_ACTOR = 1  # two 1-core actors annotate 1.7x faster than one 2-core one (benchmarks/bulk.py)
MAX_BLOCKS = 10_000  # the driver puts each block in the object store up front
ACTOR_MEMORY = 3 * 2**30  # bytes reserved per actor: ~1.6 GiB peak masks-only (measured), plus CLIP and its vocabulary


@dataclass(frozen=True)
class RayConfig:
    """Where and how a bulk run uses Ray.

    Attributes:
        address: ``None`` starts a local Ray for the run (stopped at its end, and with the
            calling process if that is killed); ``"auto"`` joins the cluster this machine is a
            node of (``ray start``); ``"HOST:6379"`` joins that head; ``"ray://HOST:10001"``
            connects through Ray Client.  Ignored when Ray is already initialised in this
            process (that connection is used).
        actors: engine actors; ``None``: one per GPU of the cluster, or, without GPUs, the
            cluster's CPUs divided by ``cpus_per_actor``.  More actors than GPUs share them
            (e.g. 8 actors on 4 GPUs reserve 0.5 GPU each), so that one actor's CPU work
            (mask clean-up, RLE) overlaps another's GPU work.
        cpus_per_actor: CPU actors: the cores each reserves and its torch/runtime threads;
            ``None``: the engine config's ``threads``, else :data:`DEFAULT_CPUS_PER_ACTOR`
            (at most the cluster's CPUs).
        num_cpus: a local Ray: how many CPUs it may use (``None``: all).
        images_per_block: images per dataset block (the unit of scheduling and of streaming
            back: a killed run redoes the blocks in flight); ``None``: 1, or more when there are
            over :data:`MAX_BLOCKS` images.
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: int | None = None
    num_cpus: int | None = None
    images_per_block: int | None = None


@dataclass(frozen=True)
class ActorPlan:
    """The engine actors of a run, from the cluster's resources (see :func:`plan_actors`).

    Attributes:
        actors: how many; num_cpus, num_gpus: what each reserves; device: the engine's
        (``cuda`` or ``cpu``); threads: its CPU threads (``None``: the runtime's default);
        decode_cpus: what each decoding task reserves (0 on CPU-only clusters: decoding
        takes milliseconds beside seconds of inference and must not wait for a free core);
        decode_tasks: how many decode at once (each a worker process).
    """

    actors: int
    num_cpus: float
    num_gpus: float
    device: str
    threads: int | None
    decode_cpus: float
    decode_tasks: int

    def describe(self) -> str:
        """One line, e.g. ``2 actors × 1 GPU`` or ``1 actor × 2 CPUs``."""
        each = (
            f"{self.num_gpus:g} GPU" if self.num_gpus else f"{self.num_cpus:g} CPU{'s' if self.num_cpus != 1 else ''}"
        )
        return f"{self.actors} engine actor{'s' if self.actors != 1 else ''} × {each} ({self.device})"


def plan_actors(resources: dict[str, float], ray_config: RayConfig, engine_config: EngineConfig) -> ActorPlan:
    """How many engine actors to run, and what each reserves.

    Args:
        resources: the cluster's total resources (``ray.cluster_resources()``: ``CPU``, ``GPU``,
            ``memory`` in bytes); without ``actors``, no more actors than ``memory`` holds at
            :data:`ACTOR_MEMORY` each.
    Raises:
        ValueError: ``device="cuda"`` on a cluster without GPUs, or a cluster without CPUs.
    """
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    fit = max(1, int(resources.get("memory", ACTOR_MEMORY) // ACTOR_MEMORY))
    if cpus < 1:
        raise ValueError(f"the Ray cluster has no CPUs ({resources})")
    if engine_config.device == "cuda" and gpus == 0:
        raise ValueError("device cuda asked for, but the Ray cluster has no GPUs")
    if gpus and engine_config.device != "cpu":
        actors = ray_config.actors or min(gpus, fit)
        share = 1.0 if actors <= gpus else math.floor(1e4 * gpus / actors) / 1e4  # more actors: GPUs shared
        return ActorPlan(actors, 1, share, "cuda", engine_config.threads, 1, 2 * actors)
    per = min(cpus, ray_config.cpus_per_actor or engine_config.threads or DEFAULT_CPUS_PER_ACTOR)
    actors = ray_config.actors or max(1, min(cpus // per, fit))
    return ActorPlan(actors, per, 0, "cpu", per, 0, actors)


def connect(ray_config: RayConfig) -> bool:
    """Initialise Ray for a run unless it already is.

    Returns:
        Whether this call started the connection (the caller then shuts it down).
    Raises:
        ConnectionError: no cluster at ``address``.
    """
    import ray

    if ray.is_initialized():
        return False
    local = ray_config.address is None
    ray.init(
        address="local" if local else ray_config.address,
        num_cpus=ray_config.num_cpus if local else None,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    return True


class EngineActor:
    """A Ray Data map_batches callable holding one engine (built once, in the actor).

    Each batch row is a decoded image (see :func:`~annotator.images.load_image_record`) with
    its boxes as JSON text (``""`` without boxes); the output row is its
    :class:`~.step.ImageOutcome` as JSON text.
    """

    def __init__(self, engine_config: EngineConfig, config: BulkConfig):
        self.engine = build_engine(engine_config)
        self.config = config
        if config.classes:  # no CLIP on this node: the run stops with the reason, before any image
            self.engine.text_query(list(config.classes), config.class_threshold)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = []
        for key, boxes, image, error, seconds in zip(
            batch["key"], batch["boxes"], batch["image"], batch["error"], batch["seconds"], strict=True
        ):
            key = str(key)
            config = self.config if self.config.boxes is None else replace(self.config, boxes={key: json.loads(boxes)})
            # a writable copy: batches are read-only views of the object store
            record = {"key": key, "image": np.array(image, dtype=np.uint8), "error": str(error), "seconds": seconds}
            outcomes.append(json.dumps(asdict(annotate_record(self.engine, record, config))))
        return {"outcome": np.array(outcomes, dtype=object)}


def build_dataset(
    engine_config: EngineConfig,
    folder: Path,
    todo: Sequence[str],
    config: BulkConfig,
    ray_config: RayConfig,
    plan: ActorPlan,
) -> ray.data.Dataset:
    """The lazy dataset of ``todo``'s outcomes (see the module doc); nothing runs until it is
    iterated."""
    import ray.data

    rows = [
        {"key": key, "boxes": "" if config.boxes is None else json.dumps(boxes_for(config.boxes, key))} for key in todo
    ]
    per_block = ray_config.images_per_block or math.ceil(len(rows) / MAX_BLOCKS)
    blocks = math.ceil(len(rows) / max(1, per_block))
    actor_config = replace(engine_config, device=plan.device, threads=plan.threads)
    return (
        ray.data.from_items(rows, override_num_blocks=blocks)
        .map(
            load_image_record,
            fn_kwargs={"folder": str(folder)},
            num_cpus=plan.decode_cpus,
            compute=ray.data.TaskPoolStrategy(size=plan.decode_tasks),
        )
        .map_batches(
            EngineActor,
            fn_constructor_kwargs={
                "engine_config": actor_config,
                "config": replace(config, boxes={} if config.boxes is not None else None),
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
        )
    )


def _last_line(exc: BaseException) -> str:
    """The last line of a Ray error's text: the original exception of a remote traceback."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    return next((line for line in reversed(lines) if line), type(exc).__name__)


class RayRunner:
    """Annotates images on Ray (a :class:`~.step.Runner`; see the module doc).

    Args:
        engine_config: what each actor builds (its device and threads are set by the plan).
        ray_config: which cluster, and how many actors.
    """

    def __init__(self, engine_config: EngineConfig, ray_config: RayConfig):
        self.engine_config = engine_config
        self.ray_config = ray_config

    def run(self, folder: Path, keys: Sequence[str], config: BulkConfig) -> Iterator[ImageOutcome]:
        """The outcomes of ``keys`` computed on Ray, in completion order; nothing connects to
        Ray when ``keys`` is empty.

        Args:
            folder: the image folder, at the same path on every node.
            keys: image paths relative to ``folder``.
        Raises:
            RuntimeError: the Ray run stopped (e.g. the actors could not load the models); the
                outcomes yielded before are valid.
            ConnectionError: no cluster at the configured address.
        """
        if not keys:
            return
        import ray
        import ray.data

        started = connect(self.ray_config)
        try:
            plan = plan_actors(ray.cluster_resources(), self.ray_config, self.engine_config)
            log.info("Ray: %s on %s", plan.describe(), self.ray_config.address or "a local Ray")
            context = ray.data.DataContext.get_current()
            bars = context.enable_progress_bars
            context.enable_progress_bars = False  # the caller shows one bar of finished images
            try:
                dataset = build_dataset(self.engine_config, folder, keys, config, self.ray_config, plan)
            finally:
                context.enable_progress_bars = bars
            try:
                # whole blocks, no prefetch: iter_rows() would hold each outcome until the next is ready
                for batch in dataset.iter_batches(batch_size=None, prefetch_batches=0, batch_format="numpy"):
                    for outcome in batch["outcome"]:
                        yield ImageOutcome(**json.loads(outcome))
            except ray.exceptions.RayError as exc:
                raise RuntimeError(f"the Ray run stopped: {_last_line(exc)}") from exc
        finally:
            if started:
                ray.shutdown()
