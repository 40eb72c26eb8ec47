"""Vocabularies: the class names a mask can be labelled with.

A registry of built-in vocabularies plus user files:

- ``imagenet21k``: the 21,843 ImageNet-21k (fall11) synsets, from the class lists the ``timm``
  package ships; each synset's lemmas are its synonyms and its WordNet definition its gloss.
- ``coco``: the 80 COCO thing classes with their official ids.
- ``coco_panoptic``: the 133 COCO panoptic classes (things and stuff, ``isthing`` kept).
- a text file: one class a line, ``name`` or ``id:name``, comma-separated synonyms allowed, ``#``
  comments and blank lines ignored (the fc-clip / V3Det list formats).
- a COCO JSON file: its ``categories`` (ids, names and ``isthing`` when present).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

_DATA = Path(__file__).with_name("vocab_data")


class VocabularyError(ValueError):
    """A vocabulary name or file could not be turned into a non-empty class list."""


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes.

    Attributes:
        name: registry name or file name it came from.
        names: display name per class (unique within the vocabulary).
        synonyms: per class, the phrases used in CLIP text prompts (first is the main one).
        ids: per class, a stable category id (the file's or official id, else index + 1).
        isthing: per class, COCO panoptic ``isthing``; ``None`` when the source does not say.
        glosses: per class, the sense's definition (WordNet's, for ImageNet-21k); ``None`` when
            the source has none.
    """

    name: str
    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    ids: tuple[int, ...]
    isthing: tuple[bool, ...] | None = None
    glosses: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise VocabularyError(f"vocabulary {self.name!r} contains no class names")
        optional = [f for f in (self.isthing, self.glosses) if f is not None]
        if len(self.synonyms) != n or len(self.ids) != n or any(len(f) != n for f in optional):
            raise VocabularyError(f"vocabulary {self.name!r}: per-class fields differ in length")
        if len(set(self.names)) != n:
            raise VocabularyError(f"vocabulary {self.name!r}: display names are not unique")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def fingerprint(self) -> str:
        """sha256 over names and synonyms: the cache key part for text embeddings."""
        payload = json.dumps([self.names, self.synonyms], ensure_ascii=False).encode()
        return hashlib.sha256(payload).hexdigest()

    def isthing_by_name(self) -> dict[str, bool]:
        """COCO panoptic ``isthing`` per display name; empty when the source does not say."""
        return dict(zip(self.names, self.isthing, strict=True)) if self.isthing is not None else {}

    @cached_property
    def name_set(self) -> frozenset[str]:
        """The display names, for membership tests."""
        return frozenset(self.names)

    @cached_property
    def _lookup_phrases(self) -> tuple[tuple[str, ...], ...]:
        """Per class, the normalised display name, then each synonym and its prompt phrase."""
        rows = []
        for name, syns in zip(self.names, self.synonyms, strict=True):
            phrases = dict.fromkeys([name, *syns, *(prompt_phrase(s) for s in syns)])
            rows.append(tuple(normalise_phrase(p) for p in phrases if p))
        return tuple(rows)

    def lookup(self, phrase: str) -> list[int]:
        """Indices of the classes a phrase names exactly: through the display name or a synonym,
        compared as the label search compares them (case-insensitive, ``_`` and ``-`` as spaces);
        display-name matches first, then vocabulary order. Homonyms (``crane (1)``, ``crane
        (2)``) all match their shared synonym. Empty when none does."""
        q = normalise_phrase(phrase)
        if not q:
            return []
        hits = [
            (k > 0, idx)
            for idx, phrases in enumerate(self._lookup_phrases)
            for k, norm in enumerate(phrases)
            if norm == q
        ]
        return list(dict.fromkeys(idx for _, idx in sorted(hits)))

    def index_of(self, name: str) -> int:
        """Index of a display name. Raises ``KeyError`` if absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None


def normalise_phrase(text: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, runs of white space folded (for label search and lookup)."""
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def prompt_phrase(name: str) -> str:
    """A class name as natural text: ``wall-other-merged`` → ``wall``, ``traffic_light`` → ``traffic light``."""
    text = re.sub(r"-(merged|other|stuff)\b", "", name)
    return re.sub(r"[_\-]+", " ", text).strip()


def _build(
    name: str, rows: list[tuple[int | None, list[str], bool | None]], glosses: list[str] | None = None
) -> Vocabulary:
    """Rows of (id or None, synonyms, isthing or None) → Vocabulary with unique display names.

    Homonyms (classes sharing a main synonym, e.g. ImageNet's senses of *car*) are told apart by a
    qualifier: the first synonym of theirs that no other sense of the name has (``car (auto)``,
    ``car (railcar)``, ``car (elevator car)``); senses without one are numbered (``crane (1)``).
    """
    rows = [(i, [s.strip() for s in syns if s.strip()], t) for i, syns, t in rows]
    keep = [k for k, r in enumerate(rows) if r[1] and r[1][0] != "invalid_class_id"]  # fc-clip's id-0 placeholder
    rows = [rows[k] for k in keep]
    if glosses is not None:
        glosses = [glosses[k] for k in keep]
    if not rows:
        raise VocabularyError(f"vocabulary {name!r} contains no class names")
    displays = _display_names([r[1] for r in rows])
    names, synonyms, ids, things = [], [], [], []
    for k, ((cid, syns, thing), display) in enumerate(zip(rows, displays, strict=True)):
        names.append(display)
        synonyms.append(tuple(syns))
        ids.append(cid if cid is not None else k + 1)
        things.append(thing)
    if len(set(ids)) != len(ids):
        raise VocabularyError(f"vocabulary {name!r}: category ids are not unique")
    isthing = tuple(bool(t) for t in things) if all(t is not None for t in things) else None
    return Vocabulary(
        name, tuple(names), tuple(synonyms), tuple(ids), isthing, tuple(glosses) if glosses is not None else None
    )


def _display_names(synonyms: list[list[str]]) -> list[str]:
    """Unique display names: the main synonym, qualified for homonyms (see :func:`_build`)."""
    groups: dict[str, list[int]] = {}
    for k, syns in enumerate(synonyms):
        groups.setdefault(syns[0], []).append(k)
    taken = {syns[0] for syns in synonyms}
    names = [syns[0] for syns in synonyms]
    for main, members in groups.items():
        if len(members) == 1:
            continue
        shared = Counter(s.lower() for k in members for s in dict.fromkeys(synonyms[k][1:]))
        unnamed = []
        for k in members:
            qual = next(
                (s for s in synonyms[k][1:] if shared[s.lower()] == 1 and s.lower() != main.lower()),
                None,
            )
            display = f"{main} ({qual})" if qual else None
            if display is None or display in taken:
                unnamed.append(k)
            else:
                names[k] = display
                taken.add(display)
        n = 0
        for k in unnamed:
            n += 1
            while f"{main} ({n})" in taken:
                n += 1
            names[k] = f"{main} ({n})"
            taken.add(names[k])
    return names


_LINE = re.compile(r"^(?:(\d+)\s*:)?(.*)$")


def _parse_text(text: str, name: str, with_isthing: bool = False) -> Vocabulary:
    rows = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        cid = int(m.group(1)) if m.group(1) else None
        body, thing = m.group(2), None
        if with_isthing:
            body, _, flag = body.rpartition(":")
            thing = flag.strip() == "1"
        rows.append((cid, body.split(","), thing))
    return _build(name, rows)


def _parse_coco_json(path: Path) -> Vocabulary:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VocabularyError(f"{path}: not valid JSON ({exc})") from exc
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list):
        raise VocabularyError(f"{path}: a COCO JSON vocabulary needs a 'categories' list")
    rows = []
    for c in cats:
        if not isinstance(c, dict) or "name" not in c:
            raise VocabularyError(f"{path}: every category needs a 'name'")
        thing = bool(c["isthing"]) if "isthing" in c else None
        rows.append((int(c["id"]) if "id" in c else None, str(c["name"]).split(","), thing))
    return _build(path.name, rows)


def _imagenet21k() -> Vocabulary:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-21k-goog")
    short, detailed = info.label_descriptions(), info.label_descriptions(detailed=True)
    rows = [(None, desc.split(","), None) for desc in short]
    glosses = [full[len(desc) :].removeprefix(": ") for desc, full in zip(short, detailed, strict=True)]
    return _build("imagenet21k", rows, glosses)


VOCABULARIES: dict[str, Callable[[], Vocabulary]] = {
    "imagenet21k": _imagenet21k,
    "coco": lambda: _parse_text((_DATA / "coco.txt").read_text(), "coco"),
    "coco_panoptic": lambda: _parse_text((_DATA / "coco_panoptic.txt").read_text(), "coco_panoptic", True),
}


def load_vocabulary(spec: str | Path) -> Vocabulary:
    """Load a vocabulary by registry name or from a file.

    Args:
        spec: a key of :data:`VOCABULARIES`, a ``.txt`` class list, or a COCO ``.json`` file.
    Raises:
        VocabularyError: unknown name, unreadable file, or no class names in it.
    """
    key = str(spec)
    if key in VOCABULARIES:
        return VOCABULARIES[key]()
    path = Path(key)
    if not path.is_file():
        known = ", ".join(VOCABULARIES)
        raise VocabularyError(f"unknown vocabulary {key!r}: use one of {known}, or a .txt / COCO .json file")
    if path.suffix.lower() == ".json":
        return _parse_coco_json(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"{path}: not UTF-8 text ({exc})") from exc
    return _parse_text(text, path.name)
