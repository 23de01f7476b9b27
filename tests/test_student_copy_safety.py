"""scripts/make_student_copy.py never overwrites without --force and never leaks an untagged
solution (issue 13, item 7)."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import nbformat
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "make_student_copy.py"
STUB = "answer = ...  # your answer"


def load_script():
    spec = importlib.util.spec_from_file_location("make_student_copy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code(source, tags=()):
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def notebook(*solution_cells):
    """stub, the given solution cells, check; each solution cell is (source, tags)."""
    cells = [nbformat.v4.new_markdown_cell("## Exercise"), code(STUB, ["exercise"])]
    cells += [code(src, tags) for src, tags in solution_cells]
    cells.append(code("check_answer(answer)"))
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(notebook(("answer = 42", ["solution"])), folder / "01_demo.ipynb")
    nbformat.write(notebook(("answer = 7", ["solution"])), folder / "02_demo.ipynb")
    return folder


def test_existing_notebooks_in_out_dir_are_not_overwritten_without_force(tmp_path, src, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "01_demo.ipynb").write_text("my edited copy")
    assert load_script().main([str(out), "--notebooks", str(src)]) == 1
    err = capsys.readouterr().err
    assert "01_demo.ipynb" in err and "--force" in err and "nothing was written" in err
    assert (out / "01_demo.ipynb").read_text() == "my edited copy"
    assert sorted(p.name for p in out.iterdir()) == ["01_demo.ipynb"]  # 02 not written either
    assert load_script().main([str(out), "--notebooks", str(src), "--force"]) == 0
    assert "answer = 42" not in (out / "01_demo.ipynb").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["01_demo.ipynb", "02_demo.ipynb"]


def test_the_command_line_exits_non_zero_when_it_refuses(tmp_path, src):
    out = tmp_path / "student"
    args = [sys.executable, str(SCRIPT), str(out), "--notebooks", str(src)]
    assert subprocess.run(args, capture_output=True, timeout=120).returncode == 0
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize(
    "cells",
    [
        [("answer = 42", [])],  # the only solution cell lost its tag
        [("helper = 6", ["solution"]), ("answer = helper * 7", [])],  # the second one did
        [("answer = 40", []), ("answer += 2", ["solution"])],  # the first one did
    ],
)
def test_an_untagged_solution_cell_fails_and_nothing_is_written(tmp_path, src, capsys, cells):
    nbformat.write(notebook(*cells), src / "03_leak.ipynb")
    out = tmp_path / "student"
    assert load_script().main([str(out), "--notebooks", str(src)]) == 1
    err = capsys.readouterr().err
    assert "03_leak.ipynb" in err and "not tagged 'solution'" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_a_clean_exercise_still_copies(tmp_path, src, capsys):
    out = tmp_path / "student"
    assert load_script().main([str(out), "--notebooks", str(src)]) == 0
    assert "wrote 2 student notebook(s)" in capsys.readouterr().out
    for name in ("01_demo.ipynb", "02_demo.ipynb"):
        text = (out / name).read_text()
        assert "answer = " not in text.replace("answer = ...", "")
    assert sorted(p.name for p in out.iterdir()) == ["01_demo.ipynb", "02_demo.ipynb"]


def test_the_course_notebooks_have_no_untagged_solution():
    mod = load_script()
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        assert mod.untagged_solutions(nbformat.read(path, as_version=4)) == [], path.name
