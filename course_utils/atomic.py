"""One atomic file writer for the course: a result file is either the old one or the new one.

    from course_utils.atomic import write_json_atomic, write_text_atomic
    write_json_atomic("bench/bench-cpu.json", results)     # indent=2, trailing newline
    write_text_atomic("answer_key.md", text)

How: the data goes to a temporary file created with ``tempfile.mkstemp`` in the target's own
folder (``O_CREAT | O_EXCL``, so a name planted there, a symlink included, is never opened or
written through), is flushed to disk with ``fsync``, and then ``os.replace`` swaps it in. A full
disk, an I/O error or Ctrl-C before the swap leaves the previous file untouched and removes the
temporary file. A symlink at the target itself is replaced by the new file, not written through.
The new file keeps the permissions of the file it replaces; a new file gets the usual
``0o666 & ~umask`` (not ``mkstemp``'s private ``0o600``).

Used by the quiz progress file (``course_utils.quiz.progress``), ``scripts/make_answer_key.py`` and
``scripts/make_student_copy.py``; taught nowhere (machinery), tested in ``tests/test_atomic.py``.

Used by the quiz progress file (every notebook), checkpoints (notebook 06) and saved results (notebooks 07, 08).
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import tempfile
from typing import Any

__all__ = ["write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> pathlib.Path:
    """Replace ``path`` with ``data`` atomically; return ``path`` as a ``Path``.

    Raises ``TypeError`` for a bad argument, ``IsADirectoryError`` when ``path`` is a folder,
    ``FileNotFoundError`` when its folder does not exist (it is not created), and the ``OSError``
    of a failed write (the old file, if any, is then unchanged).
    """
    target = _target(path)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    folder = target.parent
    if target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {target}: there is no folder {folder}")
    mode = _mode_for(target)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data).cast("B")
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return target


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8"
) -> pathlib.Path:
    """Replace ``path`` with ``text`` atomically (no newline translation); return the path."""
    target = _target(path)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return write_bytes_atomic(target, text.encode(encoding))


def write_json_atomic(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, **dumps_kwargs: Any
) -> pathlib.Path:
    """Replace ``path`` with ``json.dumps(obj, indent=indent, **dumps_kwargs) + "\\n"``.

    The JSON is built before anything is written, so an object that cannot be serialised
    raises ``TypeError``/``ValueError`` and leaves the old file as it was.
    """
    target = _target(path)
    text = json.dumps(obj, indent=indent, **dumps_kwargs) + "\n"
    return write_text_atomic(target, text)


def _target(path: Any) -> pathlib.Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.fspath(path):
        raise ValueError("empty path: name the file to write")
    return pathlib.Path(path)


def _mode_for(target: pathlib.Path) -> int:
    """The permissions of the file being replaced, else those a plain ``open(..., "w")`` gives."""
    try:
        st = os.stat(target)  # follows a symlink: keep the mode of the file it showed
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux >= 4.7: read it without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_folder(folder: pathlib.Path) -> None:
    """Make the rename itself durable where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
