"""What every reader raises on a file it cannot take: each problem as one line (file, record,
reason), all of a file's problems together, so that a user fixes them in one pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem of a file being read.

    Attributes:
        file: the file (or folder) that has it.
        record: where in it (``annotation 17``, ``image 000001.jpg``, ``line 3``; ``""`` for the
            file as a whole).
        reason: what is wrong, in words a user can act on.
    """

    file: str
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.reason}" if self.record else f"{self.file}: {self.reason}"


class FormatReadError(ValueError):
    """A file (or dataset folder) cannot be read in the format asked for; nothing of it was taken.

    Attributes:
        problems: every problem found, one :class:`Problem` each (at least one).
    """

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ValueError("a FormatReadError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, file: str | Path, reason: str, record: str = "") -> FormatReadError:
        """The error of a single problem."""
        return cls([Problem(str(file), record, reason)])


class Problems:
    """Collects a reader's problems and raises them together.

    ``with Problems() as problems: ...; problems.add(file, record, reason)``: on leaving the
    block, a :class:`FormatReadError` is raised if any was added.
    """

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file: str | Path, record: str, reason: str) -> None:
        """Note one problem."""
        self.items.append(Problem(str(file), record, reason))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise :class:`FormatReadError` with every problem noted so far, if any.

        Raises:
            FormatReadError: at least one problem was noted.
        """
        if self.items:
            raise FormatReadError(self.items)

    def __enter__(self) -> Problems:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.raise_if_any()


__all__ = ["FormatReadError", "Problem", "Problems"]
