"""Lesson <-> code: every course_utils module starts with a docstring that says what it is for and
where the course teaches or uses it (a notebook), so a reader of the code finds the lesson."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO_ROOT

MODULES = sorted(
    p for p in (REPO_ROOT / "course_utils").rglob("*.py") if "__pycache__" not in p.parts
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_module_docstring_says_where_it_is_taught(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert doc.strip(), "no module docstring"
    assert "notebook" in doc.lower(), f"the docstring does not name a notebook: {doc[:120]!r}"
