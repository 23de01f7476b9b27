"""Quiz progress in a small local JSON file, so a learner sees it after a restart.

The file is ``$COURSE_PROGRESS_FILE`` if set, else ``~/.mixed_precision_course/progress.json``:

    {"version": 1, "quizzes": {"00_start_here": {"v100": {"solved": true, "attempts": 2}}}}

Progress is a convenience, never a reason for a notebook to fail, and never a reason to lose data:

- Every read-modify-write holds a file lock (``filelock``, on ``<name>.lock`` beside the file, which
  stays there), so quizzes answered at once in several notebooks or processes lose no attempt.
- Writes are atomic (``course_utils.atomic``: a temporary file in the same folder, then
  ``os.replace``).
- A missing file means "nothing yet". A corrupt one (not UTF-8, not JSON, nested too deep, the
  wrong shape) is set aside with one warning, under the first free name of ``<name>.corrupt``,
  ``<name>.corrupt.1``, ``<name>.corrupt.2``...; an earlier backup is never overwritten.
- A file that cannot be read, or a corrupt one that cannot be set aside, is left as it is: the
  quiz goes on without saving (one warning). A file that cannot be written gives one warning too.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from course_utils.atomic import write_text_atomic

PROGRESS_ENV = "COURSE_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = pathlib.Path("~/.mixed_precision_course/progress.json")
VERSION = 1
LOCK_TIMEOUT_S = 10.0  # a save waits this long for another process's save, then gives up (warns)
MAX_BACKUPS = 1000

_warned: set[tuple[str, str]] = set()


class ProgressWarning(UserWarning):
    """The progress file could not be read or written; the quiz goes on without it."""


def progress_path() -> pathlib.Path:
    """The progress file in use (read from the environment at each call)."""
    return pathlib.Path(os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE).expanduser()


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """``{quiz_id: {question_id: {"solved": bool, "attempts": int}}}``; empty when unreadable."""
    path = progress_path()
    if not _exists(path):
        return {}  # nothing yet: no folder or lock file is created just to read
    try:
        with _locked(path):
            return _read(path, may_set_aside=True)[0]
    except OSError:  # no lock here (a read-only folder, a lock held too long): read, touch nothing
        return _read(path, may_set_aside=False)[0]


def solved(quiz_id: str) -> set[str]:
    """Ids of the questions of ``quiz_id`` answered right (in this or an earlier session)."""
    return {qid for qid, entry in load().get(quiz_id, {}).items() if entry["solved"]}


def record(quiz_id: str, question_id: str, correct: bool) -> None:
    """Count one attempt; a question once solved stays solved."""
    record_many(quiz_id, {question_id: correct})


def record_many(quiz_id: str, verdicts: Mapping[str, bool]) -> None:
    """Count one attempt of each question in ``verdicts`` (``{question_id: correct}``), in one
    locked read-modify-write: all of them are saved, or (with a warning) none."""

    def update(data: dict) -> None:
        questions = data.setdefault(quiz_id, {})
        for question_id, correct in verdicts.items():
            entry = questions.setdefault(question_id, {"solved": False, "attempts": 0})
            entry["attempts"] += 1
            entry["solved"] = entry["solved"] or bool(correct)

    _update(update)


def reset(quiz_id: str | None = None) -> None:
    """Forget the progress of one quiz, or of every quiz when ``quiz_id`` is None."""

    def update(data: dict) -> None:
        if quiz_id is None:
            data.clear()
        else:
            data.pop(quiz_id, None)

    _update(update)


def _update(change: Any) -> None:
    """Read, ``change(data)`` in place and save, all under the lock; warn (never raise) on OSError."""
    path = progress_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            data, replaceable = _read(path, may_set_aside=True)
            if not replaceable:
                return  # _read warned: the file there is kept as it is, nothing is saved
            change(data)
            _save(path, data)
    except OSError as exc:  # includes filelock.Timeout
        _warn_once(
            "write", path, f"cannot save quiz progress to {path} ({exc}); it will not be kept"
        )


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    import filelock

    with filelock.FileLock(path.with_name(path.name + ".lock"), timeout=LOCK_TIMEOUT_S):
        yield


def _exists(path: pathlib.Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return True  # cannot even tell: let _read say why


def _read(path: pathlib.Path, *, may_set_aside: bool) -> tuple[dict, bool]:
    """(progress, whether saving may replace the file there)."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}, True
    except OSError as exc:
        _warn_once(
            "read",
            path,
            f"cannot read the quiz progress file {path} ({exc}); starting fresh, and the file "
            "is left as it is (answers of this session are not saved)",
        )
        return {}, False
    try:
        return _parse(json.loads(raw.decode("utf-8"))), True
    except (ValueError, TypeError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; a deeply nested file
        # raises RecursionError in the JSON decoder
        kept = _set_aside(path) if may_set_aside else None
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        where = (
            f" (the old file is kept as {kept.name})"
            if kept
            else ", and the file is left as it is (answers of this session are not saved)"
        )
        _warn_once(
            "corrupt",
            path,
            f"the quiz progress file {path} is not valid ({reason}); starting fresh{where}",
        )
        return {}, kept is not None


def _parse(raw: Any) -> dict[str, dict[str, dict[str, Any]]]:
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ValueError(f'expected an object with "version": {VERSION}')
    quizzes = raw.get("quizzes")
    if not isinstance(quizzes, dict):
        raise ValueError('"quizzes" must be an object')
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for quiz_id, questions in quizzes.items():
        if not isinstance(questions, dict):
            raise ValueError(f"quizzes.{quiz_id} must be an object")
        out[quiz_id] = {}
        for question_id, entry in questions.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("solved"), bool)
                or not isinstance(entry.get("attempts"), int)
                or isinstance(entry.get("attempts"), bool)
                or entry["attempts"] < 0
            ):
                raise ValueError(f"quizzes.{quiz_id}.{question_id} must hold solved and attempts")
            out[quiz_id][question_id] = {"solved": entry["solved"], "attempts": entry["attempts"]}
    return out


def _save(path: pathlib.Path, data: dict) -> None:
    payload = json.dumps({"version": VERSION, "quizzes": data}, indent=1, sort_keys=True)
    write_text_atomic(path, payload)


def _set_aside(path: pathlib.Path) -> pathlib.Path | None:
    """Move a corrupt file to the first free ``.corrupt[.N]`` name; None if it cannot be moved.

    ``os.link`` fails rather than overwrite an existing backup; where hard links are not
    supported the name is checked first (safe: the caller holds the lock)."""
    for n in range(MAX_BACKUPS):
        kept = path.with_name(path.name + ".corrupt" + (f".{n}" if n else ""))
        try:
            os.link(path, kept, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            if kept.exists() or kept.is_symlink():
                continue
            try:
                os.rename(path, kept)
            except OSError:
                return None
            return kept
        try:
            os.unlink(path)
        except OSError:
            pass  # the backup exists; the next save replaces the file
        return kept
    return None


def _warn_once(kind: str, path: pathlib.Path, message: str) -> None:
    key = (kind, str(path))
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, ProgressWarning, stacklevel=3)
