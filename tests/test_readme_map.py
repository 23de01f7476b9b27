"""README's map of the course: every notebook's row names the course_utils modules it imports, its
exercises module and its quiz bank (all of which exist), and every relative link in the README and
CONTRIBUTING points to a file of the repository."""

from __future__ import annotations

import ast
import json
import re

import pytest
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALWAYS = {"setup", "quiz", "precision", "env", "exercises"}  # said once under the table


def map_rows() -> dict[str, list[str]]:
    section = README.split("### Where each lesson's code lives", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d\d", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def imported_modules(path) -> set[str]:
    """The first name after ``course_utils`` in every import of the notebook's code cells."""
    names = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        source = "\n".join(
            line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("course_utils")
            ):
                parts = node.module.split(".")
                if len(parts) > 1:
                    names.add(parts[1])
                else:
                    names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "course_utils" and len(parts) > 1:
                        names.add(parts[1])
    return names - ALWAYS


def test_every_notebook_has_a_row():
    assert sorted(map_rows()) == [p.name[:2] for p in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_a_row_names_what_its_notebook_imports_and_its_files_exist(notebook):
    modules, exercises, bank = map_rows()[notebook.name[:2]]
    named = set(re.findall(r"`([a-z_0-9]+)/?`", modules))
    missing = imported_modules(notebook) - named
    assert not missing, (
        f"{notebook.name} imports {sorted(missing)}; README's row names {sorted(named)}"
    )
    for name in named:
        assert (REPO_ROOT / "course_utils" / name).is_dir() or (
            REPO_ROOT / "course_utils" / f"{name}.py"
        ).is_file(), name
    assert (REPO_ROOT / "course_utils" / exercises.strip("`")).is_file()
    assert (REPO_ROOT / bank.strip("`")).is_file()


@pytest.mark.parametrize("doc", ["README.md", "CONTRIBUTING.md", "data/README.md"])
def test_relative_links_point_to_files_of_the_repository(doc):
    text = (REPO_ROOT / doc).read_text()
    base = (REPO_ROOT / doc).parent
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        assert (base / target).exists(), f"{doc} links to {target}, which does not exist"
