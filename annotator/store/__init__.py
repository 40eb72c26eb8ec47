"""Accepted annotations in a database that many writers share (see :mod:`.store`).

- :mod:`.model`: the records (:class:`Annotation`, :class:`ImageInfo`) and the label rules;
- :mod:`.schema`: the tables, and how SQLite and PostgreSQL are opened and locked;
- :mod:`.store`: :class:`AnnotationStore`, one dataset of a database;
- :mod:`.classes`: the project's classes: counts, rename, merge, a fixed class list, their undo;
- :mod:`.legacy`: the JSON store of earlier versions, migrated on open.
"""

from .classes import CLASS_STEPS, ClassChange, ClassInfo
from .model import (
    MAX_LABEL_CHARS,
    Annotation,
    Change,
    ImageInfo,
    StoreError,
    StoreFullError,
    check_label_text,
    checked_label,
    source_of_prompt,
)
from .schema import SCHEMA_VERSION, database_url, redacted
from .store import REQUEST_TTL_S, AnnotationStore, os_user

__all__ = [
    "CLASS_STEPS",
    "MAX_LABEL_CHARS",
    "REQUEST_TTL_S",
    "SCHEMA_VERSION",
    "Annotation",
    "AnnotationStore",
    "Change",
    "ClassChange",
    "ClassInfo",
    "ImageInfo",
    "StoreError",
    "StoreFullError",
    "check_label_text",
    "checked_label",
    "database_url",
    "os_user",
    "redacted",
    "source_of_prompt",
]
