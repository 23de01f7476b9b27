"""scripts/make_answer_key.py writes atomically and checks its output path first (issue 13, item 8)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "make_answer_key", REPO_ROOT / "scripts" / "make_answer_key.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "a_file" / "key.md", "not a folder"),
    ],
)
def test_a_bad_output_path_fails_before_any_work(tmp_path, monkeypatch, capsys, make_out, message):
    (tmp_path / "a_file").write_text("x")
    mod = load_script()
    monkeypatch.setattr(mod, "answer_key_markdown", lambda *_: pytest.fail("did the work first"))
    with pytest.raises(SystemExit) as exit_info:
        mod.main([str(make_out(tmp_path)), "--notebooks", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_failed_write_keeps_the_previous_key(tmp_path, monkeypatch, capsys):
    out = tmp_path / "answer_key.md"
    out.write_text("the previous key\n")
    mod = load_script()

    def disk_full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert mod.main([str(out), "--notebooks", str(tmp_path)]) == 1
    monkeypatch.undo()
    assert "No space left" in capsys.readouterr().err
    assert out.read_text() == "the previous key\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer_key.md"]


def test_the_key_shows_where_each_question_is_taught(tmp_path, monkeypatch):
    """Issue 14 item 5: each question shows its taught_in (notebook and section), and says when a
    question is a predict-first one or names no section."""
    feedback = "This confuses the range of a format with its precision, which differ."
    bank = {
        "id": "03_demo",
        "title": "Demo quiz",
        "questions": [
            {
                "id": "taught",
                "type": "true_false",
                "prompt": "True?",
                "answer": True,
                "wrong_feedback": feedback,
                "explanation": "Yes.",
                "hint": "Look.",
                "predict": True,
                "taught_in": {"notebook": "03_demo", "section": "4. `unscale_` before clipping"},
            },
            {
                "id": "untaught",
                "type": "single",
                "prompt": "Which?",
                "choices": [
                    {"id": "a", "text": "one", "correct": True},
                    {"id": "b", "text": "two", "feedback": feedback},
                ],
                "explanation": "One.",
                "hint": "Count.",
            },
        ],
    }
    (tmp_path / "03_demo.json").write_text(json.dumps(bank))
    monkeypatch.setenv("COURSE_QUIZ_DIR", str(tmp_path))
    text = load_script().answer_key_markdown(tmp_path / "no_notebooks")
    lines = text.splitlines()
    taught = lines.index(
        "### 1. `taught` (true/false, predict first: asked before the cell that shows it)"
    )
    assert lines[taught + 2] == (
        '*Taught in:* `notebooks/03_demo.ipynb`, section "4. `unscale_` before clipping"'
    )
    untaught = lines.index("### 2. `untaught` (single)")
    assert lines[untaught + 2].startswith("*Taught in:* not given")
