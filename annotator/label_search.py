"""Label search: what a user types → the classes they most likely mean, best first.

The tiers, in order (a class takes its best tier over its display name and synonyms):

0. exact (the phrase equals the query), 1. prefix, 2. word prefix, 3. substring,
4. fuzzy: a typo (``girafe``, ``bycicle``, ``traffic lite``), scored by RapidFuzz's Jaro–Winkler
   similarity over the same phrases, at least :data:`FUZZY_CUTOFF`; the closest first.

The query also matches as its singular (``dogs`` → ``dog``, ``boxes`` → ``box``, ``berries`` →
``berry``), in the same tier. Within a tier the project's own classes (those in the store) come
first, then matches through the display name, then common senses (:func:`commonness`), then
shorter phrases, then vocabulary order. So ``car`` gives *car (auto)* (the automobile: LVIS's
``car_(automobile)``) before *car (railcar)* and *cable car*.

:meth:`LabelSearch.search` answers rows of :class:`LabelHit`; a query no class matches closely is
offered as a new class only by the caller's choice (the page shows "Create class '…'" as a row
the user must pick).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

from .vocabulary import Vocabulary, normalise_phrase

FUZZY_CUTOFF = 85.0
"""Least Jaro–Winkler similarity (0–100) for a typo to match: ``bycicle`` → bicycle is 96,
``girafe`` → giraffe 97, ``traffic lite`` → traffic light 95, ``elefant`` → elephant 91. The
closest phrase ranks first (on 15 typos of common classes the intended one was first every time;
Indel similarity, RapidFuzz's ``fuzz.ratio``, put *circle* before *bicycle*)."""

_DATA = Path(__file__).with_name("vocab_data")
_COMMON_LISTS = ("coco.txt", "coco_panoptic.txt", "lvis.txt")
_QUALIFIED = re.compile(r"^(.*?)\s*\((.+)\)$")


@dataclass(frozen=True)
class LabelHit:
    """One search result.

    Attributes:
        name: the class's display name (what is saved as the label).
        synonym: the synonym it matched through, ``None`` when the name itself matched.
        gloss: the sense's definition (WordNet's, for ImageNet-21k), ``None`` when unknown.
        tier: 0 exact, 1 prefix, 2 word prefix, 3 substring, 4 fuzzy.
        in_project: the class is already used in the project (the store has it).
        in_vocabulary: the class is in the vocabulary (a project-only class is not).
    """

    name: str
    synonym: str | None
    gloss: str | None
    tier: int
    in_project: bool
    in_vocabulary: bool


def singular_forms(text: str) -> list[str]:
    """The query's last word in singular, by English plural rules (``dogs`` → ``dog``, ``boxes``
    → ``box``, ``berries`` → ``berry``, ``knives`` → ``knife`` / ``knive``); ``[]`` when it does
    not look plural. The text must be normalised (:func:`annotator.vocabulary.normalise_phrase`)."""
    head, _, last = text.rpartition(" ")
    pre = f"{head} " if head else ""
    if len(last) < 3 or not last.endswith("s") or last.endswith(("ss", "us", "is")):
        return []
    forms = []
    if last.endswith("ies") and len(last) > 4:
        forms.append(last[:-3] + "y")
    if last.endswith("ves"):
        forms += [last[:-3] + "f", last[:-3] + "fe"]
    if re.search(r"(s|x|z|ch|sh|o)es$", last):
        forms.append(last[:-2])
    forms.append(last[:-1])
    return [pre + f for f in dict.fromkeys(forms)]


@cache
def _common_lists() -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """The bundled COCO, COCO panoptic and LVIS names: (plain names, (name, qualifier) pairs of
    LVIS's qualified names such as ``car_(automobile)``), normalised."""
    plain, qualified = set(), []
    for fname in _COMMON_LISTS:
        for raw in (_DATA / fname).read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            body = line.split(":", 1)[1] if re.match(r"^\d+\s*:", line) else line
            if fname == "coco_panoptic.txt":
                body = body.rpartition(":")[0]
            for syn in body.split(","):
                syn = re.sub(r"-(merged|other|stuff)\b", "", syn)
                m = _QUALIFIED.match(normalise_phrase(syn))
                if m:
                    qualified.append((m.group(1), m.group(2)))
                    plain.add(m.group(1))
                elif syn.strip():
                    plain.add(normalise_phrase(syn))
    return frozenset(plain), tuple(qualified)


def commonness(vocabulary: Vocabulary) -> tuple[int, ...]:
    """Per class, how common its sense is in detection datasets: 2 when an LVIS qualified name
    picks this sense (its name is one of the class's synonyms and its qualifier another synonym
    or a word of the gloss: ``car_(automobile)`` → the car whose synonyms hold *automobile*),
    1 when the class's main synonym is a COCO, COCO panoptic or LVIS name, else 0."""
    plain, qualified = _common_lists()
    by_name: dict[str, list[str]] = {}
    for name, qual in qualified:
        by_name.setdefault(name, []).append(qual)
    glosses = vocabulary.glosses or ("",) * len(vocabulary)
    out = []
    for syns, gloss in zip(vocabulary.synonyms, glosses, strict=True):
        norm = [normalise_phrase(s) for s in syns]
        words = set(re.findall(r"[a-z]+", (gloss or "").lower()))
        score = 1 if norm and norm[0] in plain else 0
        for s in norm:
            for qual in by_name.get(s, ()):
                if qual in norm or set(qual.split()) <= words:
                    score = 2
        out.append(score)
    return tuple(out)


class LabelSearch:
    """The ranked label search over a vocabulary and the project's own classes.

    Args:
        vocabulary: the classes to search (display names, synonyms, glosses).
    """

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._common = commonness(vocabulary)
        # (normalised, phrase, class index, k): k 0 the display name, 1 the main synonym (the display
        # name without its qualifier), 2… the other synonyms
        self._phrases: list[tuple[str, str, int, int]] = []
        for idx, (name, syns) in enumerate(zip(vocabulary.names, vocabulary.synonyms, strict=True)):
            seen: set[str] = set()
            for k, phrase in enumerate([name, *syns]):
                norm = normalise_phrase(phrase)
                if norm and norm not in seen:
                    seen.add(norm)
                    self._phrases.append((norm, phrase, idx, k))
        self._norms = [p[0] for p in self._phrases]

    def search(
        self, query: str, limit: int = 20, project: dict[str, int] | None = None, fuzzy: bool = True
    ) -> list[LabelHit]:
        """Rank the classes for a typed query (see the module doc for the tiers and the order).

        Args:
            query: what the user typed (case, ``_`` and ``-`` do not matter); blank gives ``[]``.
            limit: how many rows at most.
            project: the project's classes, name → annotation count; those not in the vocabulary
                are searched too (by name), and every project class ranks first in its tier.
            fuzzy: also the fuzzy tier (``False``: tiers 0–3 only, the search of earlier versions).
        Returns:
            Rows best first.
        """
        q = normalise_phrase(query)
        if not q:
            return []
        project = project or {}
        forms = [q, *singular_forms(q)]
        vocab = self.vocabulary
        extra = [n for n in project if n not in vocab.name_set]
        best: dict[int | str, tuple] = {}  # class index (or extra name) -> (rank, synonym, tier)

        def offer(key, tier, through_synonym, length, phrase, common, order, score=100.0):
            in_project = (vocab.names[key] if isinstance(key, int) else key) in project
            rank = (tier, not in_project, -round(score), through_synonym, -common, length, order)
            if key not in best or rank < best[key][0]:
                best[key] = (rank, phrase if through_synonym else None, tier)

        norms, phrases, common = self._norms, self._phrases, self._common
        for i in _candidates(norms, forms):
            norm, phrase, idx, k = phrases[i]
            tier = _tier(norm, forms)
            if tier is not None and (tier < 3 or len(q) >= 3):  # substrings of 1–2 letters say nothing
                offer(idx, tier, k > 1, len(norm), phrase, common[idx], idx)
        for j, name in enumerate(extra):
            tier = _tier(normalise_phrase(name), forms)
            if tier is not None:
                offer(name, tier, False, len(name), name, 0, -len(extra) + j)
        if fuzzy and len(q) >= 3 and len(best) < limit:
            cutoff = FUZZY_CUTOFF / 100
            for _, score, i in process.extract(
                q,
                self._norms,
                scorer=JaroWinkler.normalized_similarity,
                processor=None,
                limit=limit * 3,
                score_cutoff=cutoff,
            ):
                norm, phrase, idx, k = self._phrases[i]
                offer(idx, 4, k > 1, len(norm), phrase, self._common[idx], idx, score * 100)
            for j, name in enumerate(extra):
                score = JaroWinkler.normalized_similarity(q, normalise_phrase(name))
                if score >= cutoff:
                    offer(name, 4, False, len(name), name, 0, -len(extra) + j, score * 100)
        rows = sorted(best.items(), key=lambda kv: kv[1][0])[:limit]
        glosses = vocab.glosses
        out = []
        for key, (_, synonym, tier) in rows:
            if isinstance(key, int):
                name, gloss, known = vocab.names[key], glosses[key] if glosses else None, True
            else:
                name, gloss, known = key, None, False
            out.append(LabelHit(name, synonym, gloss, tier, name in project, known))
        return out


def _candidates(norms: list[str], forms: list[str]) -> list[int]:
    """Indices of the phrases holding any form of the query (the cheap test first)."""
    hits: set[int] = set()
    for q in forms:
        hits.update(i for i, n in enumerate(norms) if q in n)
    return sorted(hits)


def _tier(norm: str, forms: list[str]) -> int | None:
    """The best tier (0–3) of a phrase for any form of the query, ``None`` when none matches."""
    tier = None
    for q in forms:
        if q not in norm:
            continue
        if norm == q:
            return 0
        t = 1 if norm.startswith(q) else 2 if f" {q}" in f" {norm}" else 3
        tier = t if tier is None else min(tier, t)
    return tier


__all__ = ["FUZZY_CUTOFF", "LabelHit", "LabelSearch", "commonness", "singular_forms"]
