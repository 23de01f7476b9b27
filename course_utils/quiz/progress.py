"""Quiz progress in a small local JSON file, so a learner sees it after a restart.

The file is ``$COURSE_PROGRESS_FILE`` if set, else ``~/.mixed_precision_course/progress.json``:

    {"version": 2, "learner_id": "3f2c...",
     "quizzes": {"00_start_here": {"v100": {"solved": true, "attempts": 2, "answer": "b"},
                                   "fp16_max": {"solved": false, "attempts": 1,
                                                "answer": 60000.0, "prediction": 60000.0}}}}

``learner_id`` (uuid4 hex, made once by ``learner_id()``) seeds each learner's choice order
(``course_utils.quiz.text.choice_order``). ``answer`` is the last answer checked (a widget shows it
again after a rerun); ``prediction`` is the first answer given to ``quiz.predict`` (kept as made: a
prediction is a commitment). A version 1 file (no learner id, no answers) is read as it is and
migrated to version 2 at the next save.

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
import math
import os
import pathlib
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from course_utils.atomic import write_text_atomic

PROGRESS_ENV = "COURSE_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = pathlib.Path("~/.mixed_precision_course/progress.json")
VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: no learner id, no answers (migrated at the next save)
LOCK_TIMEOUT_S = 10.0  # a save waits this long for another process's save, then gives up (warns)
MAX_BACKUPS = 1000

_warned: set[tuple[str, str]] = set()
_LEARNER_ID = re.compile(r"[0-9a-f]{32}")
_session_learner: str | None = None  # used only when no learner id can be read or saved


class ProgressWarning(UserWarning):
    """The progress file could not be read or written; the quiz goes on without it."""


def progress_path() -> pathlib.Path:
    """The progress file in use (read from the environment at each call)."""
    return pathlib.Path(os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE).expanduser()


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """``{quiz_id: {question_id: {"solved": bool, "attempts": int, ...}}}`` (maybe also
    ``"answer"`` and ``"prediction"``); empty when unreadable."""
    return _load_document()["quizzes"]


def entry(quiz_id: str, question_id: str) -> dict[str, Any] | None:
    """What is saved for one question (``solved``, ``attempts``, maybe ``answer`` and
    ``prediction``), or None when it was never answered."""
    return load().get(quiz_id, {}).get(question_id)


def learner_id() -> str:
    """This learner's id (uuid4 hex), made and saved once in the progress file.

    When the file cannot be written (one ProgressWarning says so), an id read from it is used,
    else one id for this Python session: the choice order then holds only until a restart."""
    saved_id = _load_document()["learner_id"]
    if saved_id:
        return saved_id  # the usual case: read, nothing written
    seen: list[tuple[str, bool]] = []  # (the id, whether it was in the file already)

    def update(doc: dict) -> None:
        existed = bool(doc.get("learner_id"))
        if not existed:
            doc["learner_id"] = uuid.uuid4().hex
        seen.append((doc["learner_id"], existed))

    saved = _update(update)
    if seen and (seen[0][1] or saved):
        return seen[0][0]
    return _load_document()["learner_id"] or _session_id()


def _session_id() -> str:
    global _session_learner
    if _session_learner is None:
        _session_learner = uuid.uuid4().hex
    return _session_learner


def _load_document() -> dict[str, Any]:
    path = progress_path()
    if not _exists(path):
        return {"learner_id": None, "quizzes": {}}  # nothing yet: no folder or lock is created
    try:
        with _locked(path):
            return _read(path, may_set_aside=True)[0]
    except OSError:  # no lock here (a read-only folder, a lock held too long): read, touch nothing
        return _read(path, may_set_aside=False)[0]


def solved(quiz_id: str) -> set[str]:
    """Ids of the questions of ``quiz_id`` answered right (in this or an earlier session)."""
    return {qid for qid, entry in load().get(quiz_id, {}).items() if entry["solved"]}


def record(quiz_id: str, question_id: str, correct: bool, *, answer: Any = None) -> None:
    """Count one attempt; a question once solved stays solved. ``answer`` (JSON: a choice id, a
    list of ids, a number, a bool) is kept as the question's last answer."""
    answers = None if answer is None else {question_id: answer}
    record_many(quiz_id, {question_id: correct}, answers=answers)


def record_many(
    quiz_id: str, verdicts: Mapping[str, bool], *, answers: Mapping[str, Any] | None = None
) -> None:
    """Count one attempt of each question in ``verdicts`` (``{question_id: correct}``), in one
    locked read-modify-write: all of them are saved, or (with a warning) none. ``answers``
    (``{question_id: answer}``) are kept as the questions' last answers."""
    kept = {qid: _json_answer(a) for qid, a in (answers or {}).items()}

    def update(doc: dict) -> None:
        questions = doc["quizzes"].setdefault(quiz_id, {})
        for question_id, correct in verdicts.items():
            entry = questions.setdefault(question_id, {"solved": False, "attempts": 0})
            entry["attempts"] += 1
            entry["solved"] = entry["solved"] or bool(correct)
            if kept.get(question_id) is not None:
                entry["answer"] = kept[question_id]

    _update(update)


def record_prediction(
    quiz_id: str, question_id: str, answer: Any, correct: bool, *, replace: bool = False
) -> Any:
    """Keep ``answer`` as the learner's prediction (counted as one attempt, like a quiz answer)
    unless one is kept already (``replace=True`` replaces it: for one that no longer fits the
    question); return the prediction kept (None if it could not be saved)."""
    value = _json_answer(answer)
    if value is None:
        raise TypeError(
            f"a prediction is a choice id, a list of ids, a number or True/False, got "
            f"{type(answer).__name__}"
        )
    kept: list[tuple[Any, bool]] = []  # (the prediction there, whether it is new)

    def update(doc: dict) -> None:
        questions = doc["quizzes"].setdefault(quiz_id, {})
        entry = questions.setdefault(question_id, {"solved": False, "attempts": 0})
        new = replace or "prediction" not in entry
        if new:
            entry["prediction"] = value
            entry["answer"] = value
            entry["attempts"] += 1
            entry["solved"] = entry["solved"] or bool(correct)
        kept.append((entry["prediction"], new))

    saved = _update(update)
    if kept and (saved or not kept[0][1]):
        return kept[0][0]
    return None  # a new prediction that could not be saved


def _json_answer(answer: Any) -> Any:
    """An answer as JSON (str, list of str, finite float, bool), or None when it has no such form."""
    if isinstance(answer, bool | str):
        return answer
    if isinstance(answer, int | float):
        try:
            value = float(answer)
        except OverflowError:
            return None
        return value if math.isfinite(value) else None
    if isinstance(answer, list | tuple | set | frozenset) and all(
        isinstance(a, str) for a in answer
    ):
        return sorted(answer)
    return None


def reset(quiz_id: str | None = None) -> None:
    """Forget the progress of one quiz, or of every quiz when ``quiz_id`` is None (answers and
    predictions included; the learner id stays, so the choice order does not change)."""

    def update(doc: dict) -> None:
        if quiz_id is None:
            doc["quizzes"].clear()  # the learner id stays: the choice order does not change
        else:
            doc["quizzes"].pop(quiz_id, None)

    _update(update)


def _update(change: Any) -> bool:
    """Read, ``change(doc)`` in place and save, all under the lock; warn (never raise) on OSError.

    ``doc`` is ``{"learner_id": str | None, "quizzes": {...}}``. True when saved."""
    path = progress_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            data, replaceable = _read(path, may_set_aside=True)
            if not replaceable:
                return False  # _read warned: the file there is kept as it is, nothing is saved
            change(data)
            _save(path, data)
            return True
    except OSError as exc:  # includes filelock.Timeout
        _warn_once(
            "write", path, f"cannot save quiz progress to {path} ({exc}); it will not be kept"
        )
        return False


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
    """(document ``{"learner_id", "quizzes"}``, whether saving may replace the file there)."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return _empty(), True
    except OSError as exc:
        _warn_once(
            "read",
            path,
            f"cannot read the quiz progress file {path} ({exc}); starting fresh, and the file "
            "is left as it is (answers of this session are not saved)",
        )
        return _empty(), False
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
        return _empty(), kept is not None


def _empty() -> dict[str, Any]:
    return {"learner_id": None, "quizzes": {}}


def _parse(raw: Any) -> dict[str, Any]:
    """The document in ``raw``; ValueError when it is not a progress file of a known version.

    Optional fields that do not parse (a learner id that is not 32 hex digits, an answer of no
    answer shape) are dropped, not a reason to call the whole file corrupt."""
    if not isinstance(raw, dict) or raw.get("version") not in READ_VERSIONS:
        raise ValueError(f'expected an object with "version": {VERSION} (or 1)')
    learner = raw.get("learner_id")
    if not (isinstance(learner, str) and _LEARNER_ID.fullmatch(learner)):
        learner = None
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
            kept = {"solved": entry["solved"], "attempts": entry["attempts"]}
            for field in ("answer", "prediction"):
                value = _json_answer(entry.get(field))
                if value is not None:
                    kept[field] = value
            out[quiz_id][question_id] = kept
    return {"learner_id": learner, "quizzes": out}


def _save(path: pathlib.Path, doc: dict) -> None:
    payload = json.dumps(
        {"version": VERSION, "learner_id": doc["learner_id"], "quizzes": doc["quizzes"]},
        indent=1,
        sort_keys=True,
    )
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
