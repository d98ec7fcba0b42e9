"""The one error type users see for bad input: it names the file and the problem."""

from __future__ import annotations

import sys
from pathlib import Path

INPUT_ERROR_STATUS = 2


class SoScopeInputError(ValueError):
    """Bad input data or configuration; the message says which file and what is wrong."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def exit_with(err: SoScopeInputError) -> None:
    """How both commands end on bad input: one line on stderr and exit status 2."""
    print(f"soscope: error: {err}", file=sys.stderr)
    sys.exit(INPUT_ERROR_STATUS)
