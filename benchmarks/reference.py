"""The code a benchmark compares against, read from git: a module as an earlier commit had it.

Used by the scripts beside it (``from reference import module_at``), so that a reference runs in
the same process and run as the code measured.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def module_at(commit: str, path: str, name: str) -> ModuleType:
    """``path`` (e.g. ``annotator/store.py``) as of ``commit``, loaded as ``annotator.<name>`` so
    that its relative imports resolve against today's package.

    Raises:
        subprocess.CalledProcessError: not a git checkout, or no such commit or file.
    """
    source = subprocess.check_output(["git", "show", f"{commit}:{path}"], cwd=ROOT, text=True)
    file = Path(tempfile.mkdtemp(prefix="ovsam_ref_")) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(f"annotator.{name}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
