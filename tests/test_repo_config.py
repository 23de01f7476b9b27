"""The repository's own configuration: dependencies declared once and locked, the pre-commit hooks,
the JupyterLab settings the course ships."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import tomllib
import yaml
from conftest import REPO_ROOT

import course_utils


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    return pins


def test_every_declared_dependency_is_locked_with_an_exact_version():
    project = pyproject()["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = locked()
    for requirement in declared:
        name, _, version = requirement.partition("==")
        key = re.sub(r"[-_.]+", "-", name.lower())
        assert key in pins, (
            f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        )
        if version:
            assert pins[key] == version, f"{name}: pyproject says {version}, the lock {pins[key]}"
    assert pins["torch"] == "2.13.0"


def test_the_version_is_written_once():
    project = pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "course_utils.__version__"
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", course_utils.__version__)


def test_pre_commit_hooks_run_the_pinned_tools_and_pass_on_the_course():
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format", "quiz-banks"}
    for hook in hooks.values():
        assert hook["language"] == "system" and hook["entry"].startswith(".venv/bin/")
    banks = hooks["quiz-banks"]["entry"].replace(".venv/bin/python", sys.executable).split()
    assert subprocess.run(banks, cwd=REPO_ROOT, capture_output=True).returncode == 0


def test_jupyterlab_settings_turn_the_news_toast_off_and_make_installs_them():
    overrides = json.loads((REPO_ROOT / "lab" / "overrides.json").read_text())
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "cp lab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json" in makefile
