"""Label Studio: the export (tasks with our masks as predictions, and the labelling config) and
the push to a server (:mod:`.push`), in one package.

- :mod:`.config`: the labelling config, the image URLs (local-files serving);
- :mod:`.export`: tasks and predictions, the registry's ``label-studio`` format (written; its
  module says what is not kept);
- :mod:`.importer`: Label Studio JSON (a project's export, or ours) read as a dataset;
- :mod:`.push`: a folder's annotations pushed to a server through ``label-studio-sdk``.
"""

from __future__ import annotations

from .config import FROM_NAME, MODEL_VERSION, REGION_TYPES, TO_NAME, image_url, labeling_config, local_files_prefix
from .export import FORMAT, export_label_studio, labels_of, prediction_for, region_score, to_label_studio
from .importer import read_label_studio
from .push import (
    ENV_API_KEY,
    ENV_DOCUMENT_ROOT,
    ENV_URL,
    IMAGE_MODES,
    LabelStudioPushError,
    PushConfig,
    PushSummary,
    add_labels,
    connect,
    push_folder,
)

__all__ = [
    "ENV_API_KEY",
    "ENV_DOCUMENT_ROOT",
    "ENV_URL",
    "FORMAT",
    "FROM_NAME",
    "IMAGE_MODES",
    "MODEL_VERSION",
    "REGION_TYPES",
    "TO_NAME",
    "LabelStudioPushError",
    "PushConfig",
    "PushSummary",
    "add_labels",
    "connect",
    "export_label_studio",
    "image_url",
    "labeling_config",
    "labels_of",
    "local_files_prefix",
    "prediction_for",
    "push_folder",
    "read_label_studio",
    "region_score",
    "to_label_studio",
]
