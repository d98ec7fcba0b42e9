"""The one error type users see for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class SoScopeInputError(ValueError):
    """Bad input data or configuration; the message says which file and what is wrong."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")
