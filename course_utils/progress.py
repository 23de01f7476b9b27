"""Quiz progress in a small local JSON file, so a learner sees it after a restart.

The file is ``$COURSE_PROGRESS_FILE`` if set, else ``~/.mixed_precision_course/progress.json``:

    {"version": 1, "quizzes": {"00_start_here": {"v100": {"solved": true, "attempts": 2}}}}

Writes are atomic (a temporary file in the same folder, then ``os.replace``). Progress is a
convenience, never a reason for a notebook to fail: a missing file means "nothing yet", a corrupt
one is set aside (``<name>.corrupt``) with one warning, and a file that cannot be written gives
one warning and the quiz goes on without saving.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import warnings
from typing import Any

PROGRESS_ENV = "COURSE_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = pathlib.Path("~/.mixed_precision_course/progress.json")
VERSION = 1

_warned: set[tuple[str, str]] = set()


class ProgressWarning(UserWarning):
    """The progress file could not be read or written; the quiz goes on without it."""


def progress_path() -> pathlib.Path:
    """The progress file in use (read from the environment at each call)."""
    return pathlib.Path(os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE).expanduser()


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """``{quiz_id: {question_id: {"solved": bool, "attempts": int}}}``; empty when unreadable."""
    path = progress_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        _warn_once(
            "read", path, f"cannot read the quiz progress file {path} ({exc}); starting fresh"
        )
        return {}
    try:
        return _parse(json.loads(text))
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        kept = _set_aside(path)
        _warn_once(
            "corrupt",
            path,
            f"the quiz progress file {path} is not valid ({exc}); starting fresh"
            + (f" (the old file is kept as {kept.name})" if kept else ""),
        )
        return {}


def solved(quiz_id: str) -> set[str]:
    """Ids of the questions of ``quiz_id`` answered right (in this or an earlier session)."""
    return {qid for qid, entry in load().get(quiz_id, {}).items() if entry["solved"]}


def record(quiz_id: str, question_id: str, correct: bool) -> None:
    """Count one attempt; a question once solved stays solved."""
    data = load()
    entry = data.setdefault(quiz_id, {}).setdefault(question_id, {"solved": False, "attempts": 0})
    entry["attempts"] += 1
    entry["solved"] = entry["solved"] or bool(correct)
    _save(data)


def reset(quiz_id: str | None = None) -> None:
    """Forget the progress of one quiz, or of every quiz when ``quiz_id`` is None."""
    data = load()
    if quiz_id is None:
        data = {}
    else:
        data.pop(quiz_id, None)
    _save(data)


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
            ):
                raise ValueError(f"quizzes.{quiz_id}.{question_id} must hold solved and attempts")
            out[quiz_id][question_id] = {"solved": entry["solved"], "attempts": entry["attempts"]}
    return out


def _save(data: dict) -> None:
    path = progress_path()
    payload = json.dumps({"version": VERSION, "quizzes": data}, indent=1, sort_keys=True)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=path.parent,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        _warn_once(
            "write", path, f"cannot save quiz progress to {path} ({exc}); it will not be kept"
        )
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _set_aside(path: pathlib.Path) -> pathlib.Path | None:
    kept = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, kept)
    except OSError:
        return None
    return kept


def _warn_once(kind: str, path: pathlib.Path, message: str) -> None:
    key = (kind, str(path))
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, ProgressWarning, stacklevel=3)
