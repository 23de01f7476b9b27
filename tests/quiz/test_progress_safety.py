"""Quiz progress never loses or overwrites data (issue 13, items 4 and 5).

Many processes recording at once lose no attempt; a corrupt file is always kept (numbered
backups); a file that cannot be read or set aside is never overwritten; nothing a progress
file holds makes ``grade(record=True)`` or the widget raise.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import tempfile
import warnings

import pytest

from course_utils.quiz import core as quiz
from course_utils.quiz import progress


@pytest.fixture(autouse=True)
def private_progress(tmp_path, monkeypatch):
    path = tmp_path / "progress" / "progress.json"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    monkeypatch.setattr(progress, "_warned", set())
    return path


def names(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ item 4: no lost update
def _writer(index: int, records: int) -> None:
    warnings.simplefilter("error")  # a lock timeout or a failed save makes the child fail
    for attempt in range(records):
        progress.record("concurrency", f"p{index:02d}", correct=attempt == records - 1)


def test_many_processes_recording_at_once_lose_no_attempt(private_progress):
    n_procs, records = 30, 5
    ctx = multiprocessing.get_context("fork")  # forked children inherit the environment
    procs = [ctx.Process(target=_writer, args=(i, records)) for i in range(n_procs)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * n_procs
    saved = progress.load()["concurrency"]
    assert len(saved) == n_procs
    assert all(entry == {"solved": True, "attempts": records} for entry in saved.values())
    assert sum(e["attempts"] for e in saved.values()) == n_procs * records
    assert not [n for n in names(private_progress.parent) if n.endswith(".tmp")]


def test_one_grade_records_every_answer_in_one_write(private_progress, monkeypatch):
    writes = []
    real = progress._save
    monkeypatch.setattr(progress, "_save", lambda path, data: (writes.append(1), real(path, data)))
    quiz.grade("00_start_here", {"v100": "b", "t4": "a"}, record=True)
    assert len(writes) == 1
    assert progress.load()["00_start_here"] == {
        "t4": {"solved": False, "attempts": 1, "answer": "a"},
        "v100": {"solved": True, "attempts": 1, "answer": "b"},
    }


# -------------------------------------------------------------------------- item 5: corruption kept
def test_a_non_utf8_file_is_kept_as_a_backup_not_overwritten(private_progress):
    private_progress.parent.mkdir(parents=True)
    private_progress.write_bytes(b'\xff\xfe{"version": 1}')
    with pytest.warns(quiz.ProgressWarning, match="not valid.*kept as progress.json.corrupt"):
        quiz.grade("00_start_here", {"v100": "b"}, record=True)
    assert (private_progress.parent / "progress.json.corrupt").read_bytes() == (
        b'\xff\xfe{"version": 1}'
    )
    assert progress.solved("00_start_here") == {"v100"}


def test_each_corruption_gets_its_own_numbered_backup(private_progress, monkeypatch):
    private_progress.parent.mkdir(parents=True)
    bad = [b"{first", b"[]", b"\x80second", b'{"version": 2}']
    for i, content in enumerate(bad):
        monkeypatch.setattr(progress, "_warned", set())
        private_progress.write_bytes(content)
        with pytest.warns(quiz.ProgressWarning, match="not valid"):
            progress.record("q", f"a{i}", True)
    kept = ["progress.json.corrupt", *(f"progress.json.corrupt.{n}" for n in (1, 2, 3))]
    assert [(private_progress.parent / name).read_bytes() for name in kept] == bad
    assert progress.solved("q") == {"a3"}  # the fresh file after the last backup


def test_a_deeply_nested_file_is_corrupt_not_a_recursion_error(private_progress):
    private_progress.parent.mkdir(parents=True)
    deep = b"[" * 200_000 + b"]" * 200_000
    private_progress.write_bytes(deep)
    with pytest.warns(quiz.ProgressWarning, match="not valid"):
        score = quiz.grade("00_start_here", {"v100": "b"}, record=True)
    assert score.correct == 1
    assert (private_progress.parent / "progress.json.corrupt").read_bytes() == deep
    assert progress.solved("00_start_here") == {"v100"}


def test_a_file_that_cannot_be_read_is_never_overwritten(private_progress, monkeypatch):
    private_progress.parent.mkdir(parents=True)
    private_progress.write_text('{"version": 1, "quizzes": {"q": {}}}')
    real = pathlib.Path.read_bytes

    def denied(self):
        if self == private_progress:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    with pytest.warns(quiz.ProgressWarning, match="cannot read.*left as it is"):
        score = quiz.grade("00_start_here", {"v100": "b"}, record=True)
    assert score.correct == 1  # the quiz goes on
    monkeypatch.undo()
    assert private_progress.read_text() == '{"version": 1, "quizzes": {"q": {}}}'


def test_a_corrupt_file_that_cannot_be_set_aside_is_never_overwritten(
    private_progress, monkeypatch
):
    private_progress.parent.mkdir(parents=True)
    private_progress.write_bytes(b"{broken")

    def refuse(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "rename", refuse)
    with pytest.warns(quiz.ProgressWarning, match="not valid.*left as it is"):
        quiz.grade("00_start_here", {"v100": "b"}, record=True)
    monkeypatch.undo()
    assert private_progress.read_bytes() == b"{broken"


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 200_000,
        b'{"version": 1, "quizzes": {"q": {"a": {"solved": true, "attempts": 1e999}}}}',
        b'{"version": 1, "quizzes": {"q": {"a": {"solved": true, "attempts": -3}}}}',
        b'{"version": 1, "quizzes": {"q": {"a": {"solved": true, "attempts": '
        + b"9" * 5000
        + b"}}}}",
        b"\x00" * 100,
        b'{"version": 1, "quizzes": {"q": {"a": {"solved": true, "attempts": 1}}}}' * 2,
    ],
)
def test_no_progress_file_makes_the_widget_or_grade_raise(private_progress, content):
    from course_utils.quiz.bank import load_quiz
    from course_utils.quiz.widget import QuizView

    private_progress.parent.mkdir(parents=True)
    private_progress.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = QuizView(load_quiz("00_start_here"))
        view.questions[2].set_answer("b")
        assert view.questions[2].check() is True
        quiz.grade("00_start_here", {"t4": "b"}, record=True)
    assert all(issubclass(w.category, quiz.ProgressWarning) for w in caught)
    assert (private_progress.parent / "progress.json.corrupt").read_bytes() == content
    saved = json.loads(private_progress.read_text())
    assert saved["quizzes"]["00_start_here"]["v100"] == {
        "solved": True,
        "attempts": 1,
        "answer": "b",
    }


# ------------------------------------------------------------------------- fault injection (matrix)
FAULTS = {
    "mkstemp": (tempfile, "mkstemp"),
    "fchmod": (os, "fchmod"),
    "write": (os, "write"),
    "fsync": (os, "fsync"),
    "replace": (os, "replace"),
    "link": (os, "link"),
    "rename": (os, "rename"),
    "unlink": (os, "unlink"),
    "read_bytes": (pathlib.Path, "read_bytes"),
    "mkdir": (pathlib.Path, "mkdir"),
}
GOOD = b'{"quizzes": {"q": {"old": {"attempts": 2, "solved": true}}}, "version": 1}'
BAD = b"{not json"


def _start_with(private_progress, fault: str, start: str):
    """The progress folder with its starting file ("none", "good" or "corrupt"), and the OS
    call to break: (folder, owner, attribute name, a function that raises like a failing disk)."""
    folder = private_progress.parent
    folder.mkdir(parents=True)
    if start != "none":
        private_progress.write_bytes(GOOD if start == "good" else BAD)
    owner, name = FAULTS[fault]

    def fail(*_args, **_kwargs):
        raise OSError(5, f"injected {fault} failure")

    return folder, owner, name, fail


@pytest.mark.parametrize("start", ["none", "good", "corrupt"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_injection_never_raises_and_never_loses_data(
    private_progress, monkeypatch, fault, start
):
    """Each OS call the progress code makes fails once, with each starting file: the quiz goes
    on, and every byte that was there before is still there (in the file or a backup)."""
    folder, owner, name, fail = _start_with(private_progress, fault, start)
    monkeypatch.setattr(owner, name, fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = quiz.grade("00_start_here", {"v100": "b"}, record=True)
        progress.solved("00_start_here")
    monkeypatch.undo()
    assert score.correct == 1
    assert all(issubclass(w.category, quiz.ProgressWarning) for w in caught)
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "progress.json.lock"}
    assert not [n for n in kept if n.endswith(".tmp")]  # no temporary file left behind
    if start == "good":  # the old answers survive, whether the new one was saved or not
        saved = json.loads(kept["progress.json"])["quizzes"]
        assert saved["q"]["old"] == {"attempts": 2, "solved": True}
    if start == "corrupt":  # the corrupt bytes are kept, in place or as a backup
        assert BAD in kept.values()


@pytest.mark.parametrize("start", ["none", "good", "corrupt"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_injection_never_breaks_the_learner_id_or_a_prediction(
    private_progress, monkeypatch, fault, start
):
    """Making the learner id and saving a prediction go through the same locked,
    atomic path; each fault leaves a usable id (stable in the session) and loses no data."""
    folder, owner, name, fail = _start_with(private_progress, fault, start)
    monkeypatch.setattr(progress, "_session_learner", None)
    monkeypatch.setattr(quiz, "_session_predictions", {})
    monkeypatch.setattr(owner, name, fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = progress.learner_id(), progress.learner_id()
        quiz.predict("00_start_here", "v100", answer="a")
        prediction = quiz.prediction_of("00_start_here", "v100")
    monkeypatch.undo()
    assert first == second and len(first) == 32
    assert prediction == "a"
    assert all(issubclass(w.category, quiz.ProgressWarning) for w in caught)
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "progress.json.lock"}
    assert not [n for n in kept if n.endswith(".tmp")]
    if start == "good":
        saved = json.loads(kept["progress.json"])["quizzes"]
        assert saved["q"]["old"] == {"attempts": 2, "solved": True}
    if start == "corrupt":
        assert BAD in kept.values()


def _learner(queue) -> None:
    queue.put(progress.learner_id())


def test_processes_starting_at_once_agree_on_one_learner_id(private_progress):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_learner, args=(queue,)) for _ in range(12)]
    for proc in procs:
        proc.start()
    ids = {queue.get(timeout=60) for _ in procs}
    for proc in procs:
        proc.join(60)
    assert len(ids) == 1 and ids == {progress.learner_id()}
