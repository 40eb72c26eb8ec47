"""The Gradio UI: a thin skin over :class:`annotator.workspace.Workspace`.

Click the image to prompt (positive / negative points, or a box from two clicks), pick a label
from the suggestions or the whole vocabulary, accept; accepted annotations are saved to disk at
once and exported as COCO JSON on demand.
"""

from __future__ import annotations

import io
import logging
import re
import time
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np

from annotator.everything.pipeline import METHOD_TITLES, METHODS, EverythingConfig
from annotator.fileio import atomic_write_bytes
from annotator.images import ImageLoadError
from annotator.masks import decode_rle
from annotator.workspace import Workspace

from .render import display_scale, render_accepted, render_prompt

log = logging.getLogger(__name__)

MODE_POS, MODE_NEG, MODE_BOX = "Positive point", "Negative point", "Box (2 clicks)"
TABLE_HEADERS = ["id", "label", "score", "pred. IoU", "area"]
EXPORT_INSTANCES, EXPORT_PANOPTIC, EXPORT_YOLO = "COCO instances", "COCO panoptic", "YOLO segmentation"
EXPORT_LABEL_STUDIO = "Label Studio JSON"


def _empty_prompt(key: str | None) -> dict:
    return {"image": key, "points": [], "labels": [], "box": None, "corner": None}


class AnnotatorUI:
    """Event handlers bound to one workspace (single user, local tool)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.engine = ws.engine
        # the accepted-annotations layer of the canvas, keyed by (image, (id, label) of each)
        self._base: tuple[tuple, np.ndarray] | None = None
        # the last decoded prompt and its result (decoding is deterministic)
        self._last: tuple[tuple, object] | None = None

    # ---------------------------------------------------------------- helpers
    def _predict(self, prompt: dict):
        """Run the engine on the prompt; ``None`` when there is nothing to decode yet."""
        if not prompt["points"] and prompt["box"] is None:
            return None
        key = (prompt["image"], str(prompt["points"]), str(prompt["labels"]), str(prompt["box"]))
        if self._last is not None and self._last[0] == key:  # accept / delete / relabel redraw it
            return self._last[1]
        self.ws.activate(prompt["image"])
        pts = np.array(prompt["points"], dtype=np.float64) if prompt["points"] else None
        labels = np.array(prompt["labels"], dtype=np.int64) if prompt["points"] else None
        box = np.array(prompt["box"], dtype=np.float64) if prompt["box"] is not None else None
        result = self.engine.predict(point_coords=pts, point_labels=labels, box=box)
        self._last = (key, result)
        return result

    def _canvas(self, prompt: dict, result=None) -> np.ndarray:
        key = prompt["image"]
        if key is None:  # no readable image open (e.g. the last one failed to load)
            return np.full((240, 320, 3), 235, np.uint8)
        image = self.ws.activate(key)
        anns = self.ws.store.for_image(key)
        signature = (key, tuple((a.id, a.label) for a in anns))
        if self._base is None or self._base[0] != signature:
            accepted = [(a.id, decode_rle(a.rle), a.label) for a in anns]
            self._base = (signature, render_accepted(image, accepted))
        return render_prompt(
            self._base[1],
            image.shape[:2],
            None if result is None else result.mask,
            prompt["points"],
            prompt["labels"],
            prompt["box"],
            prompt["corner"],
        )

    def _table(self, key: str | None) -> list[list]:
        rows = []
        for a in self.ws.store.for_image(key) if key else []:
            score = "" if a.score is None else round(a.score, 3)
            iou = "" if a.predicted_iou is None else round(a.predicted_iou, 3)
            rows.append([a.id, a.label, score, iou, a.area])
        return rows

    def _status(self, text: str) -> str:
        note = "" if self.engine.has_labels else f"\n\n⚠️ Label suggestions are off: {self.engine.labels_unavailable}"
        return text + note

    def _suggestion_update(self, result):
        if result is None or not result.labels:
            return gr.update(choices=[], value=None)
        choices = [(f"{s.name} ({s.score:.2f})", s.name) for s in result.labels]
        return gr.update(choices=choices, value=result.labels[0].name)

    def _view(self, prompt: dict, result, text: str, label_value=None):
        """Outputs: canvas, prompt state, suggestions, label, table, status."""
        label_update = gr.update() if label_value is None else gr.update(value=label_value)
        if result is not None and result.labels:
            label_update = gr.update(value=result.labels[0].name)
        return (
            self._canvas(prompt, result),
            prompt,
            self._suggestion_update(result),
            label_update,
            self._table(prompt["image"]),
            self._status(text),
        )

    # ---------------------------------------------------------------- events
    def open_image(self, key: str):
        prompt = _empty_prompt(key)
        try:
            t0 = time.perf_counter()
            image = self.ws.activate(key)
        except ImageLoadError as exc:
            log.warning("%s", exc)
            return self._view(_empty_prompt(None), None, f"❌ {exc}")
        h, w = image.shape[:2]
        text = f"**{key}** — {w}×{h}, ready in {time.perf_counter() - t0:.2f} s. Click an object."
        return self._view(prompt, None, text)

    def step_image(self, key: str, step: int):
        keys = self.ws.keys
        idx = keys.index(key) if key in keys else 0
        return keys[(idx + step) % len(keys)]

    def click(self, prompt: dict, mode: str, evt: gr.SelectData):
        if prompt.get("image") is None:
            return self._view(_empty_prompt(self.ws.last_image()), None, "Pick an image first.")
        image = self.ws.activate(prompt["image"])
        s = display_scale(*image.shape[:2])
        x, y = float(evt.index[0]) / s, float(evt.index[1]) / s
        h, w = image.shape[:2]
        if not (0 <= x <= w and 0 <= y <= h):
            return self._view(prompt, self._predict(prompt), "Click inside the image.")
        if mode == MODE_BOX:
            if prompt["corner"] is None:
                prompt["corner"] = [x, y]
                return self._view(prompt, self._predict(prompt), "Box: now click the opposite corner.")
            x0, y0 = prompt["corner"]
            prompt["box"] = [min(x0, x), min(y0, y), max(x0, x), max(y0, y)]
            prompt["corner"] = None
        else:
            prompt["points"].append([x, y])
            prompt["labels"].append(1 if mode == MODE_POS else 0)
        t0 = time.perf_counter()
        result = self._predict(prompt)
        ms = (time.perf_counter() - t0) * 1000
        text = f"Mask: {result.area} px, predicted IoU {result.predicted_iou:.3f} ({ms:.0f} ms). Accept, or click to refine."
        return self._view(prompt, result, text)

    def undo(self, prompt: dict):
        if prompt.get("image") is None:
            return self._view(_empty_prompt(self.ws.last_image()), None, "Nothing to undo.")
        if prompt["corner"] is not None:
            prompt["corner"] = None
        elif prompt["points"]:
            prompt["points"].pop()
            prompt["labels"].pop()
        elif prompt["box"] is not None:
            prompt["box"] = None
        return self._view(prompt, self._predict(prompt), "Undone.")

    def clear(self, prompt: dict):
        return self._view(_empty_prompt(prompt.get("image") or self.ws.last_image()), None, "Prompt cleared.")

    def accept(self, prompt: dict, label: str | None):
        result = self._predict(prompt) if prompt.get("image") else None
        if result is None or not result.mask.any():
            return self._view(prompt, result, "Nothing to accept: click an object first.")
        if not label or not str(label).strip():
            return self._view(prompt, result, "Choose a label first (suggestions or the label box).")
        label = str(label).strip()
        score = next((s.score for s in result.labels if s.name == label), None)
        ann = self.ws.store.add(
            prompt["image"],
            result.mask,
            label,
            score=score,
            predicted_iou=result.predicted_iou,
            prompt={k: prompt[k] for k in ("points", "labels", "box")},
        )
        fresh = _empty_prompt(prompt["image"])
        return self._view(fresh, None, f"✅ Saved annotation {ann.id} '{label}' ({ann.area} px).", label_value=label)

    def delete(self, prompt: dict, ann_id):
        try:
            self.ws.store.delete(int(ann_id))
            text = f"Deleted annotation {int(ann_id)}."
        except (KeyError, TypeError, ValueError):
            text = f"No annotation with id {ann_id}."
        return self._view(prompt, self._predict(prompt), text)

    def relabel(self, prompt: dict, ann_id, label: str | None):
        try:
            ann = self.ws.store.relabel(int(ann_id), str(label or ""))
            text = f"Annotation {ann.id} is now '{ann.label}'."
        except (KeyError, TypeError, ValueError) as exc:
            text = f"Cannot relabel {ann_id}: {exc}"
        return self._view(prompt, self._predict(prompt), text)

    def everything(self, prompt: dict, method: str, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        """Segment the whole image with the chosen pass; every instance becomes an editable annotation."""
        key = prompt.get("image")
        if key is None:
            return self._view(_empty_prompt(self.ws.last_image()), None, "Pick an image first.")
        self.ws.activate(key)
        t0 = time.perf_counter()
        config = EverythingConfig(method=method if method in METHODS else "samcp")
        result = self.engine.everything(config, progress=lambda f: progress(f, desc="Segmenting everything"))
        for inst in result.instances:
            self.ws.store.add(
                key,
                inst.mask,
                inst.label,
                score=inst.score if result.labelled else None,
                predicted_iou=inst.predicted_iou,
                prompt={"everything": config.method, "patches": list(inst.patches)},
                save=False,
            )
        self.ws.store.save()
        how = "labelled by CLIP" if result.labelled else "labelled 'object'"
        if result.note:
            how += f" — {result.note}"
        text = (
            f"Everything ({config.method}): {len(result.patches)} SAM patches → {len(result.instances)} "
            f"annotations ({how}) in {time.perf_counter() - t0:.1f} s. Relabel, delete or merge them by id."
        )
        return self._view(_empty_prompt(key), None, text)

    def merge(self, prompt: dict, ids_text: str, label: str | None):
        """Merge annotations given as ids separated by spaces or commas; the label box, if set, names the result."""
        try:
            ids = [int(t) for t in re.split(r"[,\s]+", str(ids_text or "").strip()) if t]
            ann = self.ws.store.merge(ids, str(label).strip() if label else None)
            text = f"Merged {', '.join(map(str, ids))} into annotation {ann.id} ('{ann.label}')."
        except KeyError as exc:
            text = f"Cannot merge: no annotation {exc}."
        except ValueError as exc:
            text = f"Cannot merge: {exc}."
        return self._view(prompt, self._predict(prompt), text)

    def export(self, kind: str, fmt: str):
        n = len(self.ws.store.annotations)
        if n == 0:
            return None, "Nothing to export yet."
        if kind == EXPORT_PANOPTIC:
            path = self.ws.export_panoptic()
            archive = _zip(path.with_suffix(".zip"), [path], path.with_suffix(""), path.stem)
            return str(archive), f"Exported {n} annotations as COCO panoptic to `{path}` (+ PNG folder); zip below."
        if kind == EXPORT_YOLO:
            yaml_path = self.ws.export_yolo()
            root = yaml_path.parent
            archive = _zip(root.with_suffix(".zip"), [yaml_path], root / "labels", "labels")
            return str(archive), f"Exported {n} annotations as YOLO segmentation to `{root}` (labels zipped below)."
        if kind == EXPORT_LABEL_STUDIO:
            path = self.ws.export_label_studio()
            archive = _zip(path.with_suffix(".zip"), [path, path.with_suffix(".xml")])
            return str(archive), (
                f"Exported {n} annotations as Label Studio tasks with predictions to `{path}` "
                f"(labelling config: `{path.with_suffix('.xml')}`); zip below."
            )
        path = self.ws.export(segmentation=fmt)
        return str(path), f"Exported {n} annotations to `{path}`."


def _zip(archive: Path, files: list[Path], folder: Path | None = None, arc_folder: str = "") -> Path:
    """Zip ``files`` (at the top) and ``folder``'s files (under ``arc_folder``), written atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
        for f in sorted(p for p in folder.rglob("*") if p.is_file()) if folder is not None else []:
            zf.write(f, f"{arc_folder}/{f.relative_to(folder).as_posix()}")
    return atomic_write_bytes(archive, buf.getvalue())


def build_ui(ws: Workspace) -> gr.Blocks:
    """Build the Blocks app for a workspace (launch it with ``.launch()``)."""
    ui = AnnotatorUI(ws)
    vocab_names = list(ws.engine.vocabulary.names) if ws.engine.vocabulary else []
    with gr.Blocks(title="OV-SAM annotator") as demo:
        prompt = gr.State(_empty_prompt(None))
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                image_pick = gr.Dropdown(ws.keys, value=ws.last_image(), label="Image", elem_id="image-pick")
                with gr.Row():
                    prev_btn = gr.Button("◀ Prev", size="sm")
                    next_btn = gr.Button("Next ▶", size="sm")
                mode = gr.Radio([MODE_POS, MODE_NEG, MODE_BOX], value=MODE_POS, label="Click adds", elem_id="mode")
                with gr.Row():
                    undo_btn = gr.Button("Undo", size="sm")
                    clear_btn = gr.Button("Clear", size="sm")
                method = gr.Radio(
                    [(METHOD_TITLES[m], m) for m in METHODS], value="samcp", label="Everything pass", elem_id="method"
                )
                everything_btn = gr.Button("Everything", elem_id="everything")
                gr.Markdown("Segments the whole image into annotations (about 10 s per photo on a CPU).")
            with gr.Column(scale=4):
                canvas = gr.Image(
                    type="numpy",
                    interactive=False,
                    show_label=False,
                    format="jpeg",
                    elem_id="canvas",
                    buttons=[],
                )
                status = gr.Markdown("Loading…", elem_id="status")
            with gr.Column(scale=2, min_width=280):
                suggestions = gr.Radio([], label="Suggestions", elem_id="suggestions")
                label = gr.Dropdown(
                    vocab_names,
                    value=None,
                    label=f"Label ({len(vocab_names)} classes; type to search or add)",
                    allow_custom_value=True,
                    filterable=True,
                    elem_id="label",
                )
                accept_btn = gr.Button("Accept", variant="primary", elem_id="accept")
                table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Annotations on this image")
                with gr.Row():
                    ann_id = gr.Number(value=None, label="Annotation id", precision=0)
                    delete_btn = gr.Button("Delete", size="sm")
                    relabel_btn = gr.Button("Set label", size="sm")
                with gr.Row():
                    merge_ids = gr.Textbox(label="Merge ids", placeholder="e.g. 12 15", elem_id="merge-ids")
                    merge_btn = gr.Button("Merge", size="sm", elem_id="merge")
                kind = gr.Radio(
                    [EXPORT_INSTANCES, EXPORT_PANOPTIC, EXPORT_YOLO, EXPORT_LABEL_STUDIO],
                    value=EXPORT_INSTANCES,
                    label="Export as",
                )
                fmt = gr.Radio(["rle", "polygon"], value="rle", label="Instance segmentation as")
                export_btn = gr.Button("Export", elem_id="export")
                export_file = gr.File(label="Export", interactive=False)
                export_status = gr.Markdown(elem_id="export-status")

        view = [canvas, prompt, suggestions, label, table, status]
        # The engine holds one current image: every event that touches it runs one at a time.
        serial = {"concurrency_id": "engine", "concurrency_limit": 1}
        image_pick.change(ui.open_image, image_pick, view, **serial)
        prev_btn.click(lambda k: ui.step_image(k, -1), image_pick, image_pick)
        next_btn.click(lambda k: ui.step_image(k, 1), image_pick, image_pick)
        canvas.select(ui.click, [prompt, mode], view, **serial)
        undo_btn.click(ui.undo, prompt, view, **serial)
        clear_btn.click(ui.clear, prompt, view, **serial)
        suggestions.change(lambda v: gr.update() if v is None else gr.update(value=v), suggestions, label)
        accept_btn.click(ui.accept, [prompt, label], view, **serial)
        everything_btn.click(ui.everything, [prompt, method], view, **serial)
        merge_btn.click(ui.merge, [prompt, merge_ids, label], view, **serial)
        delete_btn.click(ui.delete, [prompt, ann_id], view, **serial)
        relabel_btn.click(ui.relabel, [prompt, ann_id, label], view, **serial)
        export_btn.click(ui.export, [kind, fmt], [export_file, export_status], **serial)
        # A reload (or restart) comes back to the image worked on last, with its annotations.
        demo.load(lambda: ws.last_image(), None, image_pick).then(ui.open_image, image_pick, view, **serial)
    return demo
