"""Each idea of the course is defined once: precision names and dtype maps in precision.py, byte
formatting in units.py, hiding library progress bars in env.py, the pass message in the exercise
registry. Every other module imports them (a scan of the source: a second definition fails here)."""

from __future__ import annotations

import ast
import pathlib

import pytest
from conftest import REPO_ROOT

NAMES = {"fp32", "bf16", "fp16", "tf32", "fp8", "float32", "bfloat16", "float16"}
DTYPE_ATTRS = {"float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"}
SOURCES = sorted(
    p
    for folder in ("course_utils", "scripts")
    for p in (REPO_ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def rel(path: pathlib.Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def parsed():
    for path in SOURCES:
        yield rel(path), ast.parse(path.read_text(), filename=str(path))


def is_torch_dtype(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr in DTYPE_ATTRS
        and isinstance(node.value, ast.Name)
        and node.value.id == "torch"
    )


def definitions(name: str) -> list[str]:
    return [
        where
        for where, tree in parsed()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    ]


@pytest.mark.parametrize(
    ("function", "home"),
    [
        ("format_bytes", "course_utils/units.py"),
        ("dtype_name", "course_utils/precision.py"),
        ("to_dtype", "course_utils/precision.py"),
        ("library_progress_bars_off", "course_utils/env.py"),
        ("in_notebook_kernel", "course_utils/env.py"),
    ],
)
def test_a_helper_is_defined_in_one_module(function, home):
    assert definitions(function) == [home]


def test_name_to_dtype_maps_live_in_precision_only():
    found = []
    for where, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and where != "course_utils/precision.py":
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if keys & NAMES and any(is_torch_dtype(v) for v in node.values):
                    found.append(f"{where}:{node.lineno}")
    assert found == [], "a precision-name -> dtype map outside precision.py"


def test_lists_of_precision_names_live_in_precision_only():
    """A module-level constant made only of precision names (two or more) is a second vocabulary;
    a list of other things that happens to include a format name (summation methods) is not."""
    found = []
    for where, tree in parsed():
        if where == "course_utils/precision.py":
            continue
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                node.value, (ast.Tuple, ast.List, ast.Set)
            ):
                values = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
                modes = NAMES | {"bf16-pure", "fp16-emulated", "bf16-emulated"}
                if len(values & NAMES) >= 2 and values <= modes:
                    found.append(f"{where}:{node.lineno}")
    assert found == []


def test_one_pass_message_and_one_way_to_hide_library_progress_bars():
    passes, hides = [], []
    for where, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == "Correct!":
                passes.append(where)
            if isinstance(node, ast.Attribute) and node.attr == "disable_progress_bar":
                hides.append(where)
    assert passes == ["course_utils/exercises/registry.py"]
    assert set(hides) == {"course_utils/env.py"}
