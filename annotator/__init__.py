"""OV-SAM annotator: click or box → mask (SAM) + open-vocabulary label (CLIP), exported as COCO.

The public face, as segment-anything's package has one::

    from annotator import EngineConfig, Workspace, build_engine

    engine = build_engine(EngineConfig(clip_model="none"))  # masks only
    ws = Workspace.open_folder(engine, "photos/", "exports/")
    emb = engine.embed(ws.load(ws.keys[0]))
    result = engine.predict(emb, point_coords=[[320, 240]], point_labels=[1])
    ws.store.add_instances(ws.keys[0], result.to_instances())
    ws.export("coco")

Names are loaded on first use (``import annotator`` itself loads no model library). Never
imports gradio: the UI lives in ``app/`` and only calls into this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_PUBLIC = {
    "Engine": "engine",
    "EngineConfig": "engine",
    "build_engine": "engine",
    "Instances": "instances",
    "Source": "instances",
    "Workspace": "workspace",
    "FORMATS": "formats",
    "Tabs": "tabs",
}

if TYPE_CHECKING:
    from .engine import Engine, EngineConfig, build_engine
    from .formats import FORMATS
    from .instances import Instances, Source
    from .tabs import Tabs
    from .workspace import Workspace


def __getattr__(name: str):
    """The public names, imported when first asked for (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'annotator' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FORMATS",
    "Engine",
    "EngineConfig",
    "Instances",
    "Source",
    "Tabs",
    "Workspace",
    "__version__",
    "build_engine",
]
