"""Push an annotated folder to a Label Studio server as tasks with our masks as predictions.

Talks to the server through ``label-studio-sdk`` 2.x (``LabelStudio(base_url, api_key)``).

Authentication: a **personal access token** (Label Studio 1.22+; in 1.23 legacy tokens are off by
default): *Account & Settings → Personal Access Token*.  It is a JWT refresh token that the SDK
trades for short-lived access tokens; a legacy token is accepted too (the SDK tells them apart).

Project: reused when one with the title (or the id) exists, else created with
:func:`~annotator.formats.label_studio.config.labeling_config` of the store's classes.  A reused
project's config must have our control (``<BrushLabels|PolygonLabels name="label"
toName="image">``); classes it lacks are added to it, nothing else in it is touched.

Images, two ways:

- ``upload`` (default, works with any server): each image file is uploaded to the project
  (``POST /api/projects/{id}/import``, multipart), which creates its task; its prediction is then
  attached (``predictions.create``).
- ``local-files`` (the server shares this disk): tasks reference
  ``/data/local-files/?d=<folder relative to the document root>/<key>`` and are imported with
  their predictions as JSON, in batches; the project gets a Local Storage for the folder (never
  synced, so it creates no tasks of its own) which lets the server serve the files.  The server
  must run with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` = a parent folder of the images.

Resumable: every created task and prediction is journalled (JSON Lines, fsynced) per server and
project; running the same push again skips what is there, finishes an image whose task was
created but whose prediction was not, and re-pushes images whose task was deleted on the server.
"""

from __future__ import annotations

import mimetypes
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...fileio import append_jsonl, read_jsonl
from ..dataset import Dataset
from .config import FROM_NAME, MODEL_VERSION, REGION_TYPES, TO_NAME, image_url, labeling_config, local_files_prefix
from .export import labels_of, prediction_for

ENV_URL, ENV_API_KEY = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
ENV_DOCUMENT_ROOT = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
IMAGE_MODES = ("upload", "local-files")
_CONTROL_TAGS = {"brush": "BrushLabels", "polygon": "PolygonLabels"}


class LabelStudioPushError(RuntimeError):
    """The server refused or could not be reached; the message says what to change."""


@dataclass(frozen=True)
class PushConfig:
    """Where and how to push.

    Attributes:
        url: the server, e.g. ``http://localhost:8080``.
        api_key: personal access token (or legacy token).
        project_title: project to reuse or create (ignored with ``project_id``).
        project_id: an existing project to push into.
        images: ``upload`` or ``local-files`` (see module doc).
        document_root: the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (local-files);
            default the image folder's parent.
        region_type: ``brush`` (exact masks, Label Studio RLE) or ``polygon``.
        batch_size: tasks per import request (local-files).
        model_version: ``model_version`` of the predictions.
    """

    url: str
    api_key: str
    project_title: str | None = None
    project_id: int | None = None
    images: str = "upload"
    document_root: Path | None = None
    region_type: str = "brush"
    batch_size: int = 100
    model_version: str = MODEL_VERSION

    def __post_init__(self) -> None:
        if self.images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {IMAGE_MODES}")
        if self.region_type not in REGION_TYPES:
            raise ValueError(f"region_type must be one of {REGION_TYPES}")
        if not self.api_key:
            raise LabelStudioPushError(
                f"no Label Studio token: pass --api-key or set {ENV_API_KEY} to a personal access token "
                "(Label Studio: Account & Settings → Personal Access Token)"
            )
        if self.project_id is None and not self.project_title:
            raise ValueError("give a project title or a project id")


@dataclass
class PushSummary:
    """What a push did.

    Attributes:
        project_id, project_url: the project (its data manager page).
        created_project: the project was created by this push.
        labels_added: classes added to a reused project's config.
        tasks_created, predictions_created: by this push.
        already_pushed: images found complete on the server from an earlier push.
        regions: prediction regions sent by this push.
        skipped: image key → reason (image file missing).
        seconds: wall time.
    """

    project_id: int
    project_url: str
    created_project: bool
    labels_added: list[str] = field(default_factory=list)
    tasks_created: int = 0
    predictions_created: int = 0
    already_pushed: int = 0
    regions: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def connect(url: str, api_key: str) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client, checked by asking who we are.

    Raises:
        LabelStudioPushError: server unreachable, the token refused, or the server does not
            answer as Label Studio does (JSON of another shape).
    """
    import httpx
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    client = LabelStudio(base_url=url.rstrip("/"), api_key=api_key)
    try:
        me = client.users.whoami()
    except NOT_THE_API as exc:
        raise LabelStudioPushError(f"{url} does not answer as Label Studio's API does ({_unexpected(exc)})") from exc
    except httpx.HTTPError as exc:
        raise LabelStudioPushError(f"cannot reach Label Studio at {url}: {exc}") from exc
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise LabelStudioPushError(
                f"Label Studio at {url} refused the token ({exc.status_code}): use a personal access token "
                "(Account & Settings → Personal Access Token), or a legacy token where the organization enables them"
            ) from exc
        raise LabelStudioPushError(f"Label Studio at {url}: {_api_message(exc)}") from exc
    if not isinstance(getattr(me, "id", None), int):
        raise LabelStudioPushError(
            f"{url} does not answer as Label Studio's API does (no user id from /api/current-user)"
        )
    return client


# What the SDK raises when a server answers 200 with JSON of another shape (a list where an object
# is expected, a string id): it builds its models without validation, so these surface as they come.
NOT_THE_API = (TypeError, ValueError, AttributeError, KeyError)


def _unexpected(exc: Exception) -> str:
    """One line on an answer of the wrong shape: the exception's type and the start of its text."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("validation_errors") or body.get("detail") or body)
    return str(body or exc)


def _call(what: str, fn: Callable, *args, **kwargs) -> Any:
    """Run one SDK call; an API or network error becomes a :class:`LabelStudioPushError` saying
    ``what``."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise LabelStudioPushError(f"{what}: HTTP {exc.status_code}: {_api_message(exc)}") from exc
    except httpx.HTTPError as exc:
        raise LabelStudioPushError(f"{what}: {exc!r}") from exc
    except NOT_THE_API as exc:
        raise LabelStudioPushError(
            f"{what}: the server's answer is not what Label Studio sends ({_unexpected(exc)})"
        ) from exc


def add_labels(label_config: str, labels: list[str], region_type: str) -> tuple[str, list[str]]:
    """Add missing classes to our control of a labelling config.

    Args:
        label_config: the project's config XML.
        labels: classes our predictions use.
    Returns:
        ``(config XML, classes added)``; the XML is unchanged when nothing is missing.
    Raises:
        LabelStudioPushError: the config has no ``<BrushLabels|PolygonLabels name="label"
            toName="image">`` on an ``<Image name="image" value="$image">``.
    """
    root = ET.fromstring(label_config)
    tag = _CONTROL_TAGS[region_type]
    control = next((e for e in root.iter(tag) if e.get("name") == FROM_NAME and e.get("toName") == TO_NAME), None)
    image = next((e for e in root.iter("Image") if e.get("name") == TO_NAME and e.get("value") == f"${TO_NAME}"), None)
    if control is None or image is None:
        raise LabelStudioPushError(
            f'the project\'s labelling config lacks <{tag} name="{FROM_NAME}" toName="{TO_NAME}"> on '
            f'<Image name="{TO_NAME}" value="${TO_NAME}">, which our predictions use: push to a new project '
            "or add them to its config"
        )
    present = {e.get("value") for e in control.iter("Label")}
    missing = [name for name in labels if name not in present]
    if not missing:
        return label_config, []
    for name in missing:
        ET.SubElement(control, "Label", {"value": name})
    return ET.tostring(root, encoding="unicode"), missing


def _project(client: Any, config: PushConfig, labels: list[str]) -> tuple[Any, bool, list[str]]:
    """The project to push into: ``(project, created, classes added to its config)``."""
    if config.project_id is not None:
        project = _call(f"project {config.project_id}", client.projects.get, id=config.project_id)
    else:
        title = config.project_title
        found = _call("listing projects", lambda: [p for p in client.projects.list(title=title) if p.title == title])
        if len(found) > 1:
            ids = ", ".join(str(p.id) for p in found)
            raise LabelStudioPushError(f"several projects are titled {title!r} (ids {ids}): pick one with --project-id")
        if not found:
            project = _call(
                f"creating project {title!r}",
                client.projects.create,
                title=title,
                label_config=labeling_config(labels, config.region_type),
                description="Masks predicted by ovsam-annotator, for review.",
            )
            return project, True, []
        project = _call(f"project {found[0].id}", client.projects.get, id=found[0].id)
    updated, added = add_labels(project.label_config, labels, config.region_type)
    if added:
        _call(f"adding classes to project {project.id}", client.projects.update, id=project.id, label_config=updated)
    return project, False, added


def _server_task_ids(client: Any, project_id: int) -> set[int]:
    return _call(
        f"listing the tasks of project {project_id}",
        lambda: {t.id for t in client.tasks.list(project=project_id, fields="task_only", page_size=1000)},
    )


def _ensure_local_storage(client: Any, project_id: int, folder: Path) -> None:
    path = str(folder)
    for storage in _call("listing Local Storages", client.import_storage.local.list, project=project_id):
        if storage.path and (path == storage.path or path.startswith(storage.path.rstrip("/") + "/")):
            return
    _call(
        f"adding a Local Storage for {path} (is the server started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
        f"and {ENV_DOCUMENT_ROOT} = a parent of it?)",
        client.import_storage.local.create,
        project=project_id,
        path=path,
        title="ovsam-annotator images",
        use_blob_urls=True,
        recursive_scan=True,
    )


def _upload(client: Any, project_id: int, path: Path) -> int:
    """Upload one image; the server creates its task. Returns the task id."""
    # Why not a public SDK method: in label-studio-sdk 2.1.2 (checked), `projects.import_tasks`
    # posts JSON tasks only (the server's multipart "POST with files" is not exposed), and the
    # `files` client lists, gets, updates and deletes uploads but cannot create one. So the
    # multipart POST /api/projects/{id}/import goes through the SDK's own authenticated HTTP
    # client (`_client_wrapper.httpx_client`: the same token refresh, base URL and retries as
    # every SDK call). Revisit when the SDK exposes a file upload.
    wrapper = getattr(client, "_client_wrapper", None)
    if wrapper is None:
        raise LabelStudioPushError("this label-studio-sdk has no HTTP client wrapper: use --images local-files")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = _call(
        f"uploading {path}",
        wrapper.httpx_client.request,
        f"api/projects/{project_id}/import",
        method="POST",
        params={"return_task_ids": True},
        files={"file": (path.name, path.read_bytes(), mime)},
    )
    if response.status_code >= 400:
        raise LabelStudioPushError(f"uploading {path}: HTTP {response.status_code}: {response.text[:500]}")
    try:
        task_ids = list(response.json().get("task_ids") or [])
    except NOT_THE_API as exc:  # not JSON (a ValueError), or not an object
        raise LabelStudioPushError(f"uploading {path}: not Label Studio's answer ({_unexpected(exc)})") from exc
    if len(task_ids) != 1:
        raise LabelStudioPushError(f"uploading {path}: the server made {len(task_ids)} tasks of it, not 1")
    return int(task_ids[0])


def _journalled(journal_path: str | Path, base: str, project_id: int, client: Any) -> dict[str, dict]:
    """The journal's records of this server and project whose task still exists there."""
    done: dict[str, dict] = {}
    for _, rec in read_jsonl(journal_path):
        if isinstance(rec, dict) and rec.get("server") == base and rec.get("project") == project_id:
            done[rec["key"]] = rec
    if done:
        alive = _server_task_ids(client, project_id)
        done = {k: r for k, r in done.items() if r.get("task") in alive}
    return done


class _Push:
    """One push in progress: the journal, the summary and the progress callback."""

    def __init__(self, client, project_id, base, journal_path, done, summary, total, progress):
        self.client, self.project_id, self.base = client, project_id, base
        self.journal_path, self.done, self.summary = journal_path, done, summary
        self.total, self.progress = total, progress
        self.handled = summary.already_pushed + len(summary.skipped)
        self.tick(0)

    def journal(self, key: str, task: int, prediction: bool) -> None:
        rec = {"server": self.base, "project": self.project_id, "key": key, "task": task, "prediction": prediction}
        append_jsonl(self.journal_path, rec)
        self.done[key] = rec

    def tick(self, n: int) -> None:
        self.handled += n
        if self.progress:
            self.progress(self.handled, self.total)

    def upload(self, store: Dataset, folder: Path, pending: list[str], config: PushConfig) -> None:
        """Upload mode: each image file uploaded (its task made), then its prediction attached."""
        for key in pending:
            pred = prediction_for(store, key, config.region_type, config.model_version)
            if key not in self.done:
                self.journal(key, _upload(self.client, self.project_id, folder / key), False)
                self.summary.tasks_created += 1
            _call(
                f"adding the prediction of {key}",
                self.client.predictions.create,
                task=self.done[key]["task"],
                result=pred["result"],
                score=pred.get("score"),
                model_version=pred["model_version"],
            )
            self.journal(key, self.done[key]["task"], True)
            self.summary.predictions_created += 1
            self.summary.regions += len(pred["result"])
            self.tick(1)

    def local_files(self, store: Dataset, folder: Path, pending: list[str], config: PushConfig, prefix: str):
        """Local-files mode: tasks with their predictions imported as JSON, in batches."""
        _ensure_local_storage(self.client, self.project_id, folder)
        for i in range(0, len(pending), config.batch_size):
            batch = pending[i : i + config.batch_size]
            tasks = [
                {
                    "data": {TO_NAME: image_url(prefix, key)},
                    "predictions": [prediction_for(store, key, config.region_type, config.model_version)],
                }
                for key in batch
            ]
            response = _call(
                f"importing {len(tasks)} tasks",
                self.client.projects.import_tasks,
                id=self.project_id,
                request=tasks,
                return_task_ids=True,
            )
            task_ids = list(response.task_ids or [])
            if len(task_ids) != len(batch):
                raise LabelStudioPushError(f"the server made {len(task_ids)} tasks of {len(batch)}")
            for key, task_id in zip(batch, task_ids, strict=True):
                self.journal(key, int(task_id), True)
            self.summary.tasks_created += len(batch)
            self.summary.predictions_created += len(batch)
            self.summary.regions += sum(len(t["predictions"][0]["result"]) for t in tasks)
            self.tick(len(batch))


def _local_files_prefix(folder: Path, config: PushConfig) -> str:
    """Image URL prefix for local-files mode, checked before anything is made on the server."""
    root = config.document_root or os.environ.get(ENV_DOCUMENT_ROOT) or folder.parent
    try:
        return local_files_prefix(folder, root)
    except ValueError as exc:
        raise LabelStudioPushError(f"{exc}: pass the server's document root with --document-root") from exc


def push_folder(
    store: Dataset,
    folder: str | Path,
    config: PushConfig,
    journal_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> PushSummary:
    """Push every image of ``store`` (keys relative to ``folder``) with its annotations as a
    prediction (see module doc).

    Steps: connect, find or create the project, read the journal (dropping tasks deleted on the
    server), then push what is missing by upload or as local-files tasks.

    Args:
        store: the folder's annotation store (app or ``annotate``), or any
            :class:`~annotator.formats.dataset.Dataset` of it.
        folder: the image folder.
        config: server, token, project, image mode.
        journal_path: the push journal (JSON Lines); the same path resumes a push.
        progress: called with (images handled, images in all) after each image.
    Returns:
        :class:`PushSummary`.
    Raises:
        LabelStudioPushError: the server is unreachable, refuses the token, the project or a
            request; what was pushed before the error is journalled and kept.
    """
    start = time.perf_counter()
    folder = Path(folder).resolve()
    keys = sorted(store.images)
    if not keys:
        where = f"the annotation store {store.location}" if hasattr(store, "location") else "the dataset"
        raise LabelStudioPushError(f"nothing to push: {where} has no images")
    prefix = _local_files_prefix(folder, config) if config.images == "local-files" else ""
    client = connect(config.url, config.api_key)
    labels = labels_of(store) or ["object"]  # a config needs a class even when nothing was found
    project, created, added = _project(client, config, labels)
    base = config.url.rstrip("/")
    summary = PushSummary(project.id, f"{base}/projects/{project.id}/data", created, added)
    done = _journalled(journal_path, base, project.id, client)
    pending = []
    for key in keys:
        if done.get(key, {}).get("prediction"):
            summary.already_pushed += 1
        elif not (folder / key).is_file():
            summary.skipped[key] = "image file missing"
        else:
            pending.append(key)
    push = _Push(client, project.id, base, journal_path, done, summary, len(keys), progress)
    if config.images == "upload":
        push.upload(store, folder, pending, config)
    else:
        push.local_files(store, folder, pending, config, prefix)
    summary.seconds = time.perf_counter() - start
    return summary
