"""Atomic writes: the output appears whole or not at all, and no temporaries are left behind."""

import numpy as np
import pytest

from soscope.io_utils import atomic_dir, atomic_path, atomic_save_npy


def test_atomic_path_renames_on_success_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".txt"
        assert not tmp.exists() and not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_old_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_failure_without_existing_file_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5ad"
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half written")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_before_writing_leaves_nothing(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "out.txt"):
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_renames_into_place_on_success(tmp_path):
    target = tmp_path / "nested" / "data"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_dir() and not target.exists()
        (tmp / "a.npy").write_bytes(b"a")
    assert [p.name for p in target.iterdir()] == ["a.npy"]
    assert [p.name for p in target.parent.iterdir()] == ["data"]


def test_atomic_dir_failure_without_existing_directory_leaves_nothing(tmp_path):
    target = tmp_path / "data"
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "a.npy").write_bytes(b"a")
        (tmp / "sub").mkdir()
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_existing_file(tmp_path):
    target = tmp_path / "data"
    target.write_text("a file in the way")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert target.is_dir() and [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_atomic_dir_replaces_existing_directory(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with atomic_dir(target) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert [p.name for p in target.iterdir()] == ["stale.txt"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_atomic_dir_failure_keeps_old_directory_and_removes_temporary(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_atomic_save_npy_writes_exactly_the_path(tmp_path):
    target = tmp_path / "infer_subspot.npy"
    array = np.arange(6.0).reshape(2, 3)
    atomic_save_npy(target, array)
    np.testing.assert_array_equal(np.load(target), array)
    assert [p.name for p in tmp_path.iterdir()] == ["infer_subspot.npy"]
