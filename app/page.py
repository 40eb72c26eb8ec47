"""The annotation page: a Gradio app whose canvas runs in the browser.

:func:`build_app` makes one FastAPI app: the page's JSON API (:mod:`app.api`) under
``/ovsam/api``, its script and style under ``/ovsam/static``, and the Gradio Blocks at ``/``.
The Blocks hold the annotation tool (a ``gr.HTML`` whose script, the ES modules of ``static/js/`` (entry ``main.js``),
draws the image, masks and prompts on a canvas and talks to the API) and the export panel.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from annotator.workspace import Workspace

from .api import PageAPI
from .auth import BasicAuth
from .export_panel import EXPORT_INSTANCES, ONLY_CHOICES, TITLES, export
from .import_panel import IMPORT_TITLES, run_import
from .routes import add_routes
from .security import LOOPBACK_NAMES, allowed_hosts, secure

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


def build_blocks(ws: Workspace) -> gr.Blocks:
    """The Gradio Blocks: the canvas tool (plain JS in ``static/``) and the export panel."""
    markup = (STATIC / "annotator.html").read_text(encoding="utf-8")
    version = int(max(p.stat().st_mtime for p in STATIC.rglob("*")))  # a new script is never a stale cache
    head = f'<link rel="stylesheet" href="/ovsam/static/annotator.css?v={version}">'
    # the page is ES modules (static/js/main.js and its imports); ?v= names only the entry, so the
    # modules it imports are revalidated (conditional requests) before it is imported
    modules = sorted(f"/ovsam/static/{p.relative_to(STATIC).as_posix()}" for p in (STATIC / "js").rglob("*.js"))
    mount = (
        f"Promise.allSettled({modules}.map((u) => fetch(u, {{cache: 'no-cache'}})))"
        f".then(() => import('/ovsam/static/js/main.js?v={version}')).then((m) => m.mount(element));"
    )
    with gr.Blocks(title="OV-SAM annotator", fill_width=True) as demo:
        gr.HTML(
            value="",
            html_template=markup,
            head=head,
            js_on_load=mount,
            apply_default_css=False,
            container=False,
            padding=False,
            elem_id="ovsam-root",
        )
        # always open (an accordion folded it away): right under the canvas, a scroll down
        with gr.Group(elem_id="export-panel"):
            gr.Markdown(
                "### Export dataset\nThe folder's annotations (rejected ones never), written to its output folder;"
                " the file to download appears in the Download box beside Export."
            )
            with gr.Row():
                kind = gr.Radio(list(TITLES.values()), value=EXPORT_INSTANCES, label="Export as")
                fmt = gr.Radio(["rle", "polygon"], value="rle", label="Instance segmentation as")
                only = gr.Radio(
                    list(ONLY_CHOICES), value="All but rejected", label="Annotations", elem_id="export-only"
                )
                export_btn = gr.Button("Export", elem_id="export", variant="primary")
                export_file = gr.File(label="Download", interactive=False)
            export_status = gr.Markdown(elem_id="export-status")
        export_btn.click(lambda k, f, o: export(ws, k, f, o), [kind, fmt, only], [export_file, export_status])
        with gr.Group(elem_id="import-panel"):
            gr.Markdown(
                "### Import annotations\nAnnotations of this folder's images made elsewhere, added as predictions"
                " to review: upload a file (a .zip for dataset folders) or give a path on the server."
            )
            with gr.Row():
                import_kind = gr.Dropdown(list(IMPORT_TITLES.values()), label="Format", elem_id="import-format")
                upload = gr.File(label="File or .zip", file_types=[".json", ".xml", ".zip"], elem_id="import-file")
                server_path = gr.Textbox(label="or a path on the server", elem_id="import-path")
                skip = gr.Checkbox(label="Skip images not in this folder", value=False, elem_id="import-skip")
                import_btn = gr.Button("Import", elem_id="import", variant="primary")
            import_status = gr.Markdown(elem_id="import-status")
        import_btn.click(
            lambda k, u, p, s: run_import(ws, k, u, p, s), [import_kind, upload, server_path, skip], [import_status]
        ).then(None, None, None, js="() => window.OVSAM && window.OVSAM.reload && window.OVSAM.reload()")
    return demo


def build_app(
    ws: Workspace,
    prefetch: int = 1,
    hosts: frozenset[str] | None = LOOPBACK_NAMES,
    users: dict[str, str] | None = None,
) -> FastAPI:
    """The whole app, ready for any ASGI server: the page's API (:mod:`app.routes`, validated by
    the models of :mod:`app.schemas`, served by :class:`app.api.PageAPI`), its static files and
    the Gradio page at ``/``, behind the Host and Origin checks of :mod:`app.security` and,
    with ``users``, HTTP Basic authentication (:mod:`app.auth`).

    Args:
        hosts: the names a request's ``Host`` may carry (:func:`app.security.allowed_hosts`;
            ``None``: any); default the loopback names.
        users: name → password of who may sign in; ``None`` or empty: nobody is asked.
    """
    app = FastAPI(title="OV-SAM annotator")
    if users:
        app.add_middleware(BasicAuth, users=users)
    secure(app, hosts)
    add_routes(app, PageAPI(ws, prefetch=prefetch))
    app.mount("/ovsam/static", StaticFiles(directory=STATIC), name="ovsam-static")
    return gr.mount_gradio_app(app, build_blocks(ws), path="/")


class Server:
    """The app served by uvicorn in a background thread (tests, benchmarks, notebooks).

    Args:
        ws: the workspace to serve.
        host, port: where to listen.
        prefetch: images embedded in the background ahead of the one opened (0: none).
        app: serve this app (from :func:`build_app`, e.g. with routes added) instead of a new one.
        users: who may sign in (see :func:`build_app`).
    Raises:
        RuntimeError: the server did not come up within 60 s.
    """

    def __init__(
        self,
        ws: Workspace,
        host: str = "127.0.0.1",
        port: int = 7860,
        prefetch: int = 1,
        app: FastAPI | None = None,
        users: dict[str, str] | None = None,
    ):
        self.ws = ws
        self.url = f"http://{host}:{port}"
        app = app if app is not None else build_app(ws, prefetch, allowed_hosts(host), users)
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


def serve(
    ws: Workspace,
    host: str = "127.0.0.1",
    port: int = 7860,
    extra_hosts: list[str] | None = None,
    users: dict[str, str] | None = None,
) -> None:
    """Serve the app in the foreground until interrupted.

    Args:
        extra_hosts: host names requests may carry besides the loopback names and ``host``
            (see :func:`app.security.allowed_hosts`).
        users: who may sign in (see :func:`build_app`); ``None``: nobody is asked.
    """
    hosts = allowed_hosts(host, extra_hosts)
    if hosts is None:
        log.warning("serving on every address with no --allowed-host: any Host header is accepted")
    log.info("open http://%s:%d", host, port)
    try:
        uvicorn.run(build_app(ws, hosts=hosts, users=users), host=host, port=port, log_level="warning")
    finally:
        ws.close()


__all__ = ["Server", "build_app", "build_blocks", "export", "serve"]
