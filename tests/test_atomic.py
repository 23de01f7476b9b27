"""course_utils.atomic: the course's one atomic file writer (issue 13, item 8)."""

from __future__ import annotations

import json
import os
import stat
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import atomic


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_text_and_json_and_returns_the_path(tmp_path):
    path = tmp_path / "out.txt"
    assert atomic.write_text_atomic(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    js = tmp_path / "out.json"
    atomic.write_json_atomic(str(js), {"b": 1, "a": [1.5, None]})
    assert js.read_text(encoding="utf-8") == json.dumps({"b": 1, "a": [1.5, None]}, indent=2) + "\n"
    atomic.write_json_atomic(js, {"x": 1}, indent=1, sort_keys=True)
    assert json.loads(js.read_text()) == {"x": 1}
    atomic.write_bytes_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert leftovers(tmp_path) == ["b.bin", "out.json", "out.txt"]  # no temporary files left


@settings(max_examples=30, deadline=None)
@given(text=st.text())
def test_any_text_round_trips(text):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.txt")
        atomic.write_text_atomic(path, text)
        with open(path, encoding="utf-8", newline="") as f:
            assert f.read() == text


def test_a_failure_mid_write_leaves_the_old_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    atomic.write_json_atomic(path, {"good": True})
    before = path.read_bytes()
    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, data[: len(data) // 2])  # half of it lands, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_json_atomic(path, {"good": False, "pad": "x" * 10_000})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == ["result.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failure_at_fsync_or_replace_leaves_the_old_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "r.txt"
    path.write_text("old")

    def boom(*_args, **_kwargs):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="I/O error"):
        atomic.write_text_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old" and leftovers(tmp_path) == ["r.txt"]


def test_an_interrupt_mid_write_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "r.txt"
    path.write_text("old")

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old" and leftovers(tmp_path) == ["r.txt"]


def test_json_that_cannot_be_serialised_writes_nothing(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic.write_json_atomic(path, {"when": object()})
    assert path.read_text() == '{"old": 1}' and leftovers(tmp_path) == ["r.json"]


def test_never_follows_a_symlink_planted_at_the_temp_name(tmp_path, monkeypatch):
    """A predictable temp name pointing elsewhere is skipped (O_EXCL), never written through."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    names = iter(["planted", "fresh"])
    # tempfile draws its random names here; fix them so the first one is the planted link
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    (out / ".r.txt.planted.tmp").symlink_to(victim)
    atomic.write_text_atomic(out / "r.txt", "new")
    assert victim.read_text() == "precious"
    assert (out / ".r.txt.planted.tmp").is_symlink() and (out / "r.txt").read_text() == "new"


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "r.txt"
    link.symlink_to(victim)
    atomic.write_text_atomic(link, "new")
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "new"


def test_mode_is_kept_for_an_existing_file_and_follows_the_umask_for_a_new_one(tmp_path):
    old = tmp_path / "old.txt"
    old.write_text("x")
    old.chmod(0o640)
    atomic.write_text_atomic(old, "y")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640
    previous = os.umask(0o022)
    try:
        atomic.write_text_atomic(tmp_path / "new.txt", "y")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # not mkstemp's 0o600


@pytest.mark.parametrize(
    ("path", "data", "error", "message"),
    [
        (None, "x", TypeError, "path must be a str or os.PathLike"),
        ("{tmp}/a.txt", b"bytes", TypeError, "text must be a str, got bytes"),
        ("{tmp}", "x", IsADirectoryError, "is a folder"),
        ("{tmp}/missing/a.txt", "x", FileNotFoundError, "no folder"),
        ("", "x", ValueError, "empty path"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, path, data, error, message):
    if isinstance(path, str):
        path = path.format(tmp=tmp_path)
    with pytest.raises(error, match=message):
        atomic.write_text_atomic(path, data)
    assert leftovers(tmp_path) == []


def test_write_bytes_rejects_text(tmp_path):
    with pytest.raises(TypeError, match="data must be bytes"):
        atomic.write_bytes_atomic(tmp_path / "a", "text")
