"""Accepted annotations in a database that many writers share (see :mod:`.store`).

- :mod:`.model`: the records (:class:`Annotation`, :class:`ImageInfo`) and the label rules;
- :mod:`.schema`: the tables, and how SQLite and PostgreSQL are opened and locked;
- :mod:`.store`: :class:`AnnotationStore`, one dataset of a database;
- :mod:`.classes`: the project's classes: counts, rename, merge, a fixed class list, their undo;
- :mod:`.review`: review states of annotations (predicted, accepted, rejected), image status;
- :mod:`.legacy`: the JSON store of earlier versions, migrated on open.
"""

from .classes import CLASS_STEPS, ClassChange, ClassInfo
from .model import (
    MAX_LABEL_CHARS,
    STATES,
    Annotation,
    Change,
    ImageInfo,
    State,
    StoreError,
    StoreFullError,
    check_label_text,
    checked_label,
    checked_state,
    source_of_prompt,
)
from .review import IMAGE_STATUSES
from .schema import SCHEMA_VERSION, database_url, redacted
from .store import REQUEST_TTL_S, AnnotationStore, os_user

__all__ = [
    "CLASS_STEPS",
    "IMAGE_STATUSES",
    "MAX_LABEL_CHARS",
    "REQUEST_TTL_S",
    "SCHEMA_VERSION",
    "STATES",
    "Annotation",
    "AnnotationStore",
    "Change",
    "ClassChange",
    "ClassInfo",
    "ImageInfo",
    "State",
    "StoreError",
    "StoreFullError",
    "check_label_text",
    "checked_label",
    "checked_state",
    "database_url",
    "os_user",
    "redacted",
    "source_of_prompt",
]
