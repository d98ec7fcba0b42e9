"""Atomic writes: an output appears whole under its name, or not at all.

Each writer works on a hidden temporary sibling (same directory, so the final rename stays on
one file system) and renames it into place only when it has finished; on any error, or an
interrupt, the temporary is removed and an existing output is left as it was. Temporary names
keep the target's suffix, so libraries that choose a format by extension write the right one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; it becomes `path` only if the block succeeds.

    The temporary file is not created: the block writes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; it replaces `path` if the block succeeds.

    An existing `path` (file or directory) is moved aside first and deleted only once the new
    directory is in place, so a failure at any point leaves the old one intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


def _swap_in(new: Path, path: Path) -> None:
    if not path.exists():
        os.rename(new, path)
        return
    old = _temp_sibling(path)
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    _remove(old)


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """`np.save` through `atomic_path`: readers never see a half-written `.npy` file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
