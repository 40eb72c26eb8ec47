"""The page's HTTP routes as one table: path, request model, response model, the call.

Each POST route validates its JSON body against a model of :mod:`app.schemas` (a malformed one
is answered 422 naming the field, a body over :data:`MAX_BODY_BYTES` 413, before anything runs)
and calls one method of
:class:`app.api.PageAPI`; responses are documented in the OpenAPI schema and returned as the
method builds them (no second serialisation on the click path).
"""

# No ``from __future__ import annotations`` here: FastAPI reads each endpoint's body model from
# its annotation, which must be the class itself.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from . import schemas as s
from .api import ApiError, PageAPI

PREFIX = "/ovsam/api/"
MAX_BODY_BYTES = 1 << 20
"""The largest JSON body the API reads (1 MiB); a prompt or an edit is a few hundred bytes."""

POSTS: list[tuple[str, type[BaseModel], type[BaseModel], Callable[[PageAPI, Any, str | None], dict]]] = [
    ("open", s.OpenRequest, s.OpenOut, lambda api, b, u: api.open(b.session, b.key)),
    ("click", s.ClickRequest, s.PromptAnswer, lambda api, b, u: api.click(b.session, b.x, b.y, b.positive, b.key)),
    ("box", s.BoxRequest, s.PromptAnswer, lambda api, b, u: api.box(b.session, b.box, b.key)),
    ("candidate", s.CandidateRequest, s.PromptAnswer, lambda api, b, u: api.candidate(b.session, b.key)),
    ("reprompt", s.RepromptRequest, s.PromptAnswer, lambda api, b, u: api.reprompt(b.session, b.id, b.key)),
    ("undo", s.TabRequest, s.PromptAnswer, lambda api, b, u: api.undo(b.session)),
    (
        "paint",
        s.PaintRequest,
        s.PromptAnswer,
        lambda api, b, u: api.paint(b.session, b.op, b.points, b.radius, b.key),
    ),
    (
        "edit",
        s.EditRequest,
        s.EditOut,
        lambda api, b, u: api.edit(b.id, b.op, b.points, b.radius, b.request_id, u),
    ),
    (
        "outline",
        s.OutlineRequest,
        s.EditOut,
        lambda api, b, u: api.move_outline(b.id, b.old, b.new, b.hole, b.request_id, u),
    ),
    ("history", s.HistoryRequest, s.HistoryOut, lambda api, b, u: api.travel(b.key, b.way, b.request_id)),
    ("redo", s.TabRequest, s.PromptAnswer, lambda api, b, u: api.redo(b.session)),
    ("clear", s.TabRequest, s.PromptAnswer, lambda api, b, u: api.clear(b.session)),
    ("suggest", s.SuggestRequest, s.SuggestOut, lambda api, b, u: api.suggest(b.session, b.key)),
    (
        "accept",
        s.AcceptRequest,
        s.AcceptOut,
        lambda api, b, u: api.accept(b.session, b.label, b.key, b.request_id, u),
    ),
    ("delete", s.IdsRequest, s.DeleteOut, lambda api, b, u: api.delete(b.ids, b.request_id)),
    ("relabel", s.RelabelRequest, s.RelabelOut, lambda api, b, u: api.relabel(b.ids, b.label, b.request_id, u)),
    ("merge", s.MergeRequest, s.MergeOut, lambda api, b, u: api.merge(b.ids, b.label, b.request_id, u)),
    ("intersect", s.MergeRequest, s.MergeOut, lambda api, b, u: api.intersect(b.ids, b.label, b.request_id, u)),
    ("subtract", s.IdsRequest, s.SubtractOut, lambda api, b, u: api.subtract(b.ids, b.request_id)),
    ("done", s.DoneRequest, s.DoneOut, lambda api, b, u: api.set_done(b.key, b.done)),
    (
        "review",
        s.ReviewRequest,
        s.ReviewOut,
        lambda api, b, u: api.review(b.ids, b.state, b.key, b.request_id, u),
    ),
    ("review/image", s.ReviewImageRequest, s.ReviewOut, lambda api, b, u: api.review_image(b.key, b.request_id, u)),
    ("reviewed", s.ReviewedRequest, s.ReviewedOut, lambda api, b, u: api.set_reviewed(b.key, b.reviewed)),
    (
        "everything",
        s.EverythingRequest,
        s.EverythingOut,
        lambda api, b, u: api.everything(b.session, b.method, b.request_id, u),
    ),
    (
        "find",
        s.FindRequest,
        s.FindOut,
        lambda api, b, u: api.find(b.session, b.classes, b.threshold, b.method, b.key),
    ),
    (
        "find_accept",
        s.FindAcceptRequest,
        s.FindAcceptOut,
        lambda api, b, u: api.find_accept(b.session, b.indices, b.key, b.request_id, u),
    ),
    (
        "classes/rename",
        s.ClassRenameRequest,
        s.ClassChangeOut,
        lambda api, b, u: api.rename_class(b.old, b.new, b.key, b.request_id, u),
    ),
    (
        "classes/merge",
        s.ClassMergeRequest,
        s.ClassChangeOut,
        lambda api, b, u: api.merge_classes(b.names, b.into, b.key, b.request_id, u),
    ),
    (
        "classes/history",
        s.ClassHistoryRequest,
        s.ClassChangeOut,
        lambda api, b, u: api.travel_classes(b.way, b.key, b.request_id),
    ),
]
"""Every POST route: (path, request body model, response model, the call with the body and the
signed-in user, ``None`` without authentication)."""

ERRORS = {code: {"model": s.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 500, 503, 507)}


def _post(app: FastAPI, api: PageAPI, path: str, request: type[BaseModel], response: type[BaseModel], call) -> None:
    def endpoint(body: request, http: Request):  # type: ignore[valid-type]
        return call(api, body, http.scope.get("ovsam_user"))

    endpoint.__name__ = path
    app.post(PREFIX + path, responses={200: {"model": response}, **ERRORS}, summary=request.__doc__)(endpoint)


def _validation_error(_request, exc: RequestValidationError) -> JSONResponse:
    """A body that does not fit its model: 422 with ``{"error": "field: reason"}``, as every refusal."""
    reasons = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()]
    return JSONResponse({"error": "; ".join(reasons)}, status_code=422)


class BodyLimit:
    """ASGI middleware: a request to the API whose body exceeds ``limit`` bytes is answered 413
    ``{"error": "body: ..."}`` before the route runs. The declared ``Content-Length`` is checked
    first; the body (a chunked one too) is read up to the limit, then handed on."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await self._refuse(send)
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send):
        response = JSONResponse({"error": f"body: at most {self.limit} bytes"}, status_code=413)
        await response({"type": "http"}, None, send)


def add_routes(app: FastAPI, api: PageAPI) -> None:
    """Mount the page's API on ``app`` under :data:`PREFIX`, with its error answers."""
    app.add_exception_handler(ApiError, lambda _r, exc: JSONResponse({"error": str(exc)}, status_code=exc.status))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit)
    for path, request, response, call in POSTS:
        _post(app, api, path, request, response, call)
    tab_id = Annotated[str, Query(description="the browser tab's id")]

    @app.get(PREFIX + "state", responses={200: {"model": s.StateOut}, **ERRORS})
    def state(session: tab_id):
        return api.state(session)

    @app.get(PREFIX + "progress", responses={200: {"model": s.ProgressOut}, **ERRORS})
    def progress(session: tab_id):
        return api.progress(session)

    @app.get(PREFIX + "outline", responses={200: {"model": s.OutlineOut}, **ERRORS})
    def outline(id: Annotated[int, Query(ge=0, description="the annotation's id")]):
        return api.outline(id)

    @app.get(PREFIX + "classes", responses={200: {"model": s.ClassesOut}, **ERRORS})
    def classes():
        return api.classes()

    @app.get(PREFIX + "labels", responses={200: {"model": s.LabelsOut}})
    def labels(q: str = ""):
        return api.labels(q)

    @app.get(PREFIX + "image", response_class=Response, responses=ERRORS)
    def image(key: Annotated[str, Query(description="the image's path in the folder")]):
        data, media_type = api.image_bytes(key)
        return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


__all__ = ["POSTS", "PREFIX", "add_routes"]
