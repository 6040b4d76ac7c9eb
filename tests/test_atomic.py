"""emolib.core.atomic: the one atomic write (a unique temporary name, nothing left behind on failure)."""
import os
import stat

import pytest

from emolib.core import atomic


def test_atomic_write_replaces_whole_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic.write_text(target, "one")
    atomic.write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    # Permissions as open() would give them, not mkstemp's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_two_writers_of_one_target_get_distinct_temporaries(tmp_path):
    target = tmp_path / "index.html"
    with atomic.atomic_write(target, "w") as a, atomic.atomic_write(target, "w") as b:
        temporaries = sorted(p.name for p in tmp_path.iterdir())
        assert len(temporaries) == 2                                  # distinct names, next to the target
        assert all(t.startswith(".index.html.") for t in temporaries)   # hidden: *.html globs skip them
        a.write("a")
        b.write("b")
    assert target.read_text() == "a"                                  # the last to finish wins, whole
    with pytest.raises(ValueError):
        with atomic.atomic_write(target, "a"):
            pass


def test_copy_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    assert atomic.copy_file(src, tmp_path / "dst.bin").read_bytes() == src.read_bytes()
