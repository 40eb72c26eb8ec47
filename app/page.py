"""The annotation page: a Gradio app whose canvas runs in the browser.

:func:`build_app` makes one FastAPI app: the page's JSON API (:mod:`app.api`) under
``/ovsam/api``, its script and style under ``/ovsam/static``, and the Gradio Blocks at ``/``.
The Blocks hold the annotation tool (a ``gr.HTML`` whose script, ``static/annotator.js``,
draws the image, masks and prompts on a canvas and talks to the API) and the export panel.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from pathlib import Path
from typing import Annotated

import gradio as gr
import uvicorn
from fastapi import Body, FastAPI, Query
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from annotator.fileio import atomic_write_bytes
from annotator.workspace import Workspace

from .api import ApiError, PageAPI

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
EXPORT_INSTANCES, EXPORT_PANOPTIC, EXPORT_YOLO = "COCO instances", "COCO panoptic", "YOLO segmentation"
EXPORT_LABEL_STUDIO = "Label Studio JSON"
Json = Annotated[dict, Body()]  # a request's JSON object


def _zip(archive: Path, files: list[Path], folder: Path | None = None, arc_folder: str = "") -> Path:
    """Zip ``files`` (at the top) and ``folder``'s files (under ``arc_folder``), written atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
        for f in sorted(p for p in folder.rglob("*") if p.is_file()) if folder is not None else []:
            zf.write(f, f"{arc_folder}/{f.relative_to(folder).as_posix()}")
    return atomic_write_bytes(archive, buf.getvalue())


def export(ws: Workspace, kind: str, fmt: str = "rle") -> tuple[str | None, str]:
    """Export every accepted annotation of the folder.

    Args:
        kind: one of ``EXPORT_INSTANCES``, ``EXPORT_PANOPTIC``, ``EXPORT_YOLO``, ``EXPORT_LABEL_STUDIO``.
        fmt: COCO instance segmentation as ``rle`` or ``polygon``.
    Returns:
        (path of the file to download or ``None``, a sentence for the page).
    """
    n = len(ws.store.annotations)
    if n == 0:
        return None, "Nothing to export yet."
    if kind == EXPORT_PANOPTIC:
        path = ws.export("coco-panoptic")
        archive = _zip(path.with_suffix(".zip"), [path], path.with_suffix(""), path.stem)
        return str(archive), f"Exported {n} annotations as COCO panoptic to `{path}` (+ PNG folder); zip below."
    if kind == EXPORT_YOLO:
        yaml_path = ws.export("yolo")
        root = yaml_path.parent
        archive = _zip(root.with_suffix(".zip"), [yaml_path], root / "labels", "labels")
        return str(archive), f"Exported {n} annotations as YOLO segmentation to `{root}` (labels zipped below)."
    if kind == EXPORT_LABEL_STUDIO:
        path = ws.export("label-studio")
        archive = _zip(path.with_suffix(".zip"), [path, path.with_suffix(".xml")])
        return str(archive), (
            f"Exported {n} annotations as Label Studio tasks with predictions to `{path}` "
            f"(labelling config: `{path.with_suffix('.xml')}`); zip below."
        )
    path = ws.export("coco", segmentation=fmt)
    return str(path), f"Exported {n} annotations to `{path}`."


def build_blocks(ws: Workspace) -> gr.Blocks:
    """The Gradio Blocks: the canvas tool (plain JS in ``static/``) and the export panel."""
    markup = (STATIC / "annotator.html").read_text(encoding="utf-8")
    version = int(max(p.stat().st_mtime for p in STATIC.iterdir()))  # a new script is never a stale cache
    head = (
        f'<link rel="stylesheet" href="/ovsam/static/annotator.css?v={version}">'
        f'<script src="/ovsam/static/annotator.js?v={version}"></script>'
    )
    with gr.Blocks(title="OV-SAM annotator", fill_width=True) as demo:
        gr.HTML(
            value="",
            html_template=markup,
            head=head,
            js_on_load="window.OVSAM.mount(element);",
            apply_default_css=False,
            container=False,
            padding=False,
            elem_id="ovsam-root",
        )
        with gr.Accordion("Export dataset", open=False, elem_id="export-panel"), gr.Row():
            kind = gr.Radio(
                [EXPORT_INSTANCES, EXPORT_PANOPTIC, EXPORT_YOLO, EXPORT_LABEL_STUDIO],
                value=EXPORT_INSTANCES,
                label="Export as",
            )
            fmt = gr.Radio(["rle", "polygon"], value="rle", label="Instance segmentation as")
            export_btn = gr.Button("Export", elem_id="export")
            export_file = gr.File(label="Export", interactive=False)
            export_status = gr.Markdown(elem_id="export-status")
        export_btn.click(lambda k, f: export(ws, k, f), [kind, fmt], [export_file, export_status])
    return demo


def build_app(ws: Workspace, prefetch: int = 1) -> FastAPI:
    """The whole app: API, static files and the Gradio page, ready for any ASGI server."""
    api = PageAPI(ws, prefetch=prefetch)
    app = FastAPI(title="OV-SAM annotator")

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    def route(method: str, path: str):
        return getattr(app, method)(f"/ovsam/api/{path}")

    @route("get", "state")
    def state(session: Annotated[str, Query()]):
        return api.state(session)

    @route("post", "open")
    def open_image(body: Json):
        return api.open(body.get("session"), body.get("key"))

    @route("get", "image")
    def image(key: Annotated[str, Query()]):
        data, media_type = api.image_bytes(key)
        return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @route("post", "click")
    def click(body: Json):
        try:
            x, y = float(body["x"]), float(body["y"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(400, "x and y (original image pixels) are required") from exc
        return api.click(body.get("session"), x, y, bool(body.get("positive", True)), body.get("key"))

    @route("post", "box")
    def box(body: Json):
        return api.box(body.get("session"), body.get("box"), body.get("key"))

    @route("post", "undo")
    def undo(body: Json):
        return api.undo(body.get("session"))

    @route("post", "clear")
    def clear(body: Json):
        return api.clear(body.get("session"))

    @route("post", "suggest")
    def suggest(body: Json):
        return api.suggest(body.get("session"), body.get("key"))

    @route("post", "accept")
    def accept(body: Json):
        return api.accept(body.get("session"), body.get("label"), body.get("key"))

    @route("get", "labels")
    def labels(q: str = ""):
        return api.labels(q)

    @route("post", "delete")
    def delete(body: Json):
        return api.delete(body.get("ids", []))

    @route("post", "relabel")
    def relabel(body: Json):
        return api.relabel(body.get("ids", []), body.get("label"))

    @route("post", "merge")
    def merge(body: Json):
        return api.merge(body.get("ids", []), body.get("label"))

    @route("post", "done")
    def done(body: Json):
        return api.set_done(body.get("key"), bool(body.get("done", True)))

    @route("post", "everything")
    def everything(body: Json):
        return api.everything(body.get("session"), body.get("method", "samcp"))

    @route("post", "find")
    def find(body: Json):
        return api.find(
            body.get("session"),
            body.get("classes"),
            body.get("threshold"),
            body.get("method", "samcp"),
            body.get("key"),
        )

    @route("post", "find_accept")
    def find_accept(body: Json):
        return api.find_accept(body.get("session"), body.get("indices", []), body.get("key"))

    @route("get", "progress")
    def progress(session: Annotated[str, Query()]):
        return api.progress(session)

    app.mount("/ovsam/static", StaticFiles(directory=STATIC), name="ovsam-static")
    return gr.mount_gradio_app(app, build_blocks(ws), path="/")


class Server:
    """The app served by uvicorn in a background thread (tests, benchmarks, notebooks).

    Args:
        ws: the workspace to serve.
        host, port: where to listen.
        prefetch: images embedded in the background ahead of the one opened (0: none).
        app: serve this app (from :func:`build_app`, e.g. with routes added) instead of a new one.
    Raises:
        RuntimeError: the server did not come up within 60 s.
    """

    def __init__(
        self, ws: Workspace, host: str = "127.0.0.1", port: int = 7860, prefetch: int = 1, app: FastAPI | None = None
    ):
        self.ws = ws
        self.url = f"http://{host}:{port}"
        app = app if app is not None else build_app(ws, prefetch)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="uvicorn")
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() - t0 > 60:
                raise RuntimeError(f"the app did not start on {self.url}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop serving and the workspace's prefetch thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.ws.close()


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the app in the foreground until interrupted."""
    log.info("open http://%s:%d", host, port)
    try:
        uvicorn.run(build_app(ws), host=host, port=port, log_level="warning")
    finally:
        ws.close()


__all__ = ["Server", "build_app", "build_blocks", "export", "serve"]
