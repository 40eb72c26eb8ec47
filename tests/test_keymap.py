"""The page's one shortcut table (app/static/js/keymap.js) and README's "Keyboard shortcuts"
table show the same rows: the key and action columns, in order."""

from __future__ import annotations

import json
import re

from .conftest import ROOT

KEYMAP_JS = ROOT / "app" / "static" / "js" / "keymap.js"


def keymap_rows() -> list[tuple[str, str]]:
    """(key, help) of every row of keymap.js's KEYMAP table (strict JSON between its markers)."""
    text = KEYMAP_JS.read_text(encoding="utf-8")
    m = re.search(r"// KEYMAP BEGIN\nexport const KEYMAP = (\[.*?\n\]);\n// KEYMAP END", text, re.S)
    assert m, "keymap.js lost its KEYMAP markers"
    return [(row["key"], row["help"]) for row in json.loads(m.group(1))]


def readme_rows() -> list[tuple[str, str]]:
    """(key, action) of every row of README's "### Keyboard shortcuts" table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Keyboard shortcuts", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and rule
    return [tuple(cell.strip() for cell in line.strip("|").split("|")[:2]) for line in rows]


def test_readme_lists_the_keymap():
    rows = keymap_rows()
    assert len(rows) >= 18
    assert readme_rows() == rows


def test_every_binding_names_keys_and_an_action():
    table = json.loads(re.search(r"KEYMAP = (\[.*?\n\]);", KEYMAP_JS.read_text(encoding="utf-8"), re.S).group(1))
    bindings = [b for row in table for b in row.get("bind", [])]
    assert bindings and all(b["keys"] and b["action"] for b in bindings)
    keys = [(k, b.get("mods", "none")) for b in bindings for k in b["keys"]]
    assert len(keys) == len(set(keys)), "a key is bound twice"
