"""Find all: name the classes, get every instance of them (text prompts).

The user names classes ("car, person, traffic light"); the everything pass finds the regions
and Prompt I of SAM-CP (does region P match text T?) is asked with those names as the text
queries, against **the rest of the vocabulary as background** (CLIP's zero-shot softmax, as
:class:`~annotator.classifier.RegionClassifier` computes it, over named + background classes):

- a region takes its best named class ``q*`` when ``q*`` beats every background class (it
  *wins*), or when its probability ``p(q*)`` reaches ``threshold`` (the knob the user moves to
  recover what a near-synonym or a narrower class of a large vocabulary outranks, e.g. "sedan"
  over "car");
- otherwise it is background and dropped.

The background is the vocabulary without every class a named phrase names exactly (its display
name or a synonym, homonyms included: see :meth:`~annotator.vocabulary.Vocabulary.lookup`), so
a name never competes with itself. A name the vocabulary lacks is free text: its text embedding
is computed on the fly with the same prompt templates and cached (see :meth:`Engine.text_query
<annotator.engine.Engine.text_query>`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .classifier import LOGIT_SCALE, RegionClassifier
from .vocabulary import Vocabulary, VocabularyError, load_vocabulary


class LabelsUnavailable(RuntimeError):
    """Find all cannot run: no CLIP (``str()`` says why, as label suggestions say it)."""


def parse_classes(spec: str) -> list[str]:
    """The classes a user named: ``"car, person, traffic light"``, or the path of a text file
    with one class a line (commas also separate; ``#`` comments and blank lines ignored), or a
    vocabulary file (``id:name,synonym`` lines, a COCO JSON: its class names, see
    :func:`annotator.vocabulary.load_vocabulary`).

    Returns:
        The names, white space folded, duplicates (case-insensitive) dropped, order kept.
    Raises:
        ValueError: no class named; an unreadable file.
    """
    text = spec
    path = Path(spec)
    if "," not in spec and "\n" not in spec and path.suffix and path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the class list ({exc})") from exc
        if path.suffix.lower() == ".json" or re.search(r"^\s*\d+\s*:", text, re.M):
            # a vocabulary file (``id:name,synonym`` lines or COCO categories): its class names,
            # as the page's --classes reads the same file
            try:
                return list(load_vocabulary(path).names)
            except VocabularyError as exc:
                raise ValueError(str(exc)) from exc
    lines = (re.sub(r"#.*", "", line) for line in text.splitlines())
    out, seen = [], set()
    for name in (" ".join(part.split()) for line in lines for part in line.split(",")):
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    if not out:
        raise ValueError("name at least one class (comma-separated, or a file with one a line)")
    return out


@dataclass(frozen=True)
class NamedClass:
    """One class the user named, resolved against the vocabulary.

    Attributes:
        name: the label instances get: the vocabulary's display name when the phrase is one
            (case aside), else the phrase as typed.
        vocab_indices: the vocabulary classes the phrase names (empty: free text); the first
            gives the text embedding, all leave the background.
        category_id: the vocabulary's id of that class; for free text, ids after the
            vocabulary's largest.
        isthing: the vocabulary's ``isthing`` (free text: a thing).
    """

    name: str
    vocab_indices: tuple[int, ...]
    category_id: int
    isthing: bool

    @property
    def in_vocabulary(self) -> bool:
        """Whether the vocabulary holds the phrase (else its embedding is made on the fly)."""
        return bool(self.vocab_indices)


def resolve_classes(names: list[str], vocabulary: Vocabulary) -> list[NamedClass]:
    """Match each named phrase to the vocabulary (see :class:`NamedClass`).

    Raises:
        ValueError: two phrases resolve to the same label.
    """
    next_id = max(vocabulary.ids) + 1
    out, seen = [], set()
    for phrase in names:
        hits = tuple(vocabulary.lookup(phrase))
        if hits and vocabulary.names[hits[0]].lower() == phrase.lower():
            name, cid = vocabulary.names[hits[0]], vocabulary.ids[hits[0]]
        else:
            name, cid = phrase, next_id
            next_id += 1
        if name in seen:
            raise ValueError(f"{phrase!r} names {name!r} twice")
        seen.add(name)
        isthing = True if not hits or vocabulary.isthing is None else vocabulary.isthing[hits[0]]
        out.append(NamedClass(name, hits, cid, bool(isthing)))
    return out


class TextQueryClassifier(RegionClassifier):
    """Prompt I with the named classes as the text queries and the rest of the vocabulary as
    background (see module doc): a :class:`~annotator.classifier.RegionClassifier` over the
    named classes whose probabilities come from the softmax over named + background classes,
    with the rows of rejected regions zeroed (the everything passes drop those).

    Args:
        named: the Q classes.
        named_text: (Q, D) unit-norm text embeddings, in ``named`` order.
        vocabulary_text: (K, D) unit-norm text embeddings of the whole vocabulary, or ``None``
            (no background: every region takes its best named class).
        threshold: keep a region whose best named class loses to a background class when its
            probability is at least this; ``None`` = only winners.
        logit_scale: the softmax temperature (:data:`~annotator.classifier.LOGIT_SCALE`).
    Raises:
        ValueError: no class, or embeddings of other lengths or widths.
    """

    def __init__(
        self,
        named: list[NamedClass],
        named_text: torch.Tensor,
        vocabulary_text: torch.Tensor | None,
        threshold: float | None = None,
        logit_scale: float = LOGIT_SCALE,
    ):
        if not named:
            raise ValueError("no class to find")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability in [0, 1], not {threshold}")
        vocab = Vocabulary(
            "find all",
            tuple(c.name for c in named),
            tuple((c.name,) for c in named),
            tuple(c.category_id for c in named),
            tuple(c.isthing for c in named),
        )
        super().__init__(named_text, vocab, logit_scale)
        self.named = list(named)
        self.threshold = threshold
        self.background = None
        if vocabulary_text is not None:
            if vocabulary_text.shape[1] != self.text.shape[1]:
                raise ValueError(f"vocabulary embeddings of width {vocabulary_text.shape[1]}, not {self.text.shape[1]}")
            keep = torch.ones(len(vocabulary_text), dtype=torch.bool)
            for c in named:
                keep[list(c.vocab_indices)] = False
            self.background = vocabulary_text.to(self.device, torch.float32)
            self._excluded = (~keep).to(self.device)

    @torch.inference_mode()
    def distribution(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Softmax over the Q named classes, then the K vocabulary classes (the named ones
        among them at probability 0).

        Args:
            embeddings: (N, D) unit-norm region embeddings; zero rows = empty regions.
        Returns:
            (N, Q + K) float32 on :attr:`device` (Q columns without a background), rows summing
            to 1, zero rows for empty regions.
        """
        e = self._regions(embeddings)
        logits = self.logit_scale * e @ self.text.T
        if self.background is not None:
            bg = (self.logit_scale * e @ self.background.T).masked_fill(self._excluded, float("-inf"))
            logits = torch.cat([logits, bg], dim=1)
        return logits.softmax(dim=-1) * (e.norm(dim=-1, keepdim=True) > 0)

    def restrict(self, distribution: torch.Tensor) -> torch.Tensor:
        """The named classes' probabilities, zero for regions the rule rejects (see module
        doc): (N, Q + K) → (N, Q)."""
        q = len(self.named)
        named = distribution[:, :q]
        best = named.max(dim=1).values
        rival = distribution[:, q:].max(dim=1).values if distribution.shape[1] > q else torch.zeros_like(best)
        keep = best > rival
        if self.threshold is not None:
            keep |= best >= self.threshold
        return named * (keep & (best > 0))[:, None]

    @torch.inference_mode()
    def probs(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, Q) float32: each named class's probability against named + background, zero
        rows for rejected and empty regions (SAM-CP's Prompt I drops those)."""
        return self.restrict(self.distribution(embeddings))


__all__ = ["LabelsUnavailable", "NamedClass", "TextQueryClassifier", "parse_classes", "resolve_classes"]
