"""Every model the tool can run, in one table: SAM's builders, their verified weights and the CLIP
presets (``ovsam models`` prints it).

It joins :data:`annotator.sam.SAM_BUILDERS` (model type → package and builder),
:data:`annotator.checkpoints.CHECKPOINTS` (model type → weights file, sources, sha256) and
:data:`annotator.engine.CLIP_PRESETS` (device → open_clip model and tag), so a new model is
added to those registries and shows up here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checkpoints import CHECKPOINTS
from .engine.builder import CLIP_PRESETS, EngineConfig
from .sam import SAM_BUILDERS


@dataclass(frozen=True)
class ModelEntry:
    """One row of :func:`model_table`.

    Attributes:
        role: ``sam`` (masks) or ``clip`` (labels).
        name: what to pass: ``--sam NAME``; for CLIP, the open_clip model (``--clip NAME``).
        package: where the code comes from (``mobile_sam.build_sam_vit_t``, ``open_clip``).
        weights: the weights file (SAM) or open_clip pretrained tag (CLIP).
        size_mb: weights size in MB (SAM; ``None`` for CLIP, fetched by open_clip).
        default_on: where it is the default: ``cpu``, ``cuda``, ``cpu, cuda`` or ``""``.
        present: the weights are on this machine (SAM: the verified file; CLIP: not checked).
        description: one line.
    """

    role: str
    name: str
    package: str
    weights: str
    size_mb: float | None
    default_on: str
    present: bool | None
    description: str


def model_table() -> list[ModelEntry]:
    """Every SAM of :data:`~annotator.sam.SAM_BUILDERS` with its checkpoint, then every CLIP preset.

    Raises:
        KeyError: a SAM builder without a checkpoint entry (a registry out of step).
    """
    default_sam = EngineConfig().sam
    rows = []
    for name, (module, builder) in SAM_BUILDERS.items():
        ckpt = CHECKPOINTS[name]
        rows.append(
            ModelEntry(
                "sam",
                name,
                f"{module}.{builder}",
                ckpt.filename,
                round(ckpt.size / 1e6, 1),
                "cpu, cuda" if name == default_sam else "",
                ckpt.path.exists(),
                ckpt.description,
            )
        )
    for device, spec in CLIP_PRESETS.items():
        what = f"CLIP {spec.model}, dense pass at {spec.dense_size} px (--clip auto on {device})"
        rows.append(ModelEntry("clip", spec.model, "open_clip", spec.pretrained or "", None, device, None, what))
    return rows


def format_table(rows: list[ModelEntry]) -> str:
    """The table as aligned text lines, for ``ovsam models``."""
    head = ("role", "name", "weights", "MB", "default", "here", "what")
    cells = [
        (
            r.role,
            r.name,
            r.weights,
            "" if r.size_mb is None else f"{r.size_mb:.1f}",
            r.default_on,
            {True: "yes", False: "no", None: "-"}[r.present],
            r.description,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *cells]) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in [head, *cells]
    )


__all__ = ["ModelEntry", "format_table", "model_table"]
