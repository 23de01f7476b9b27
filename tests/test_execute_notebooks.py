"""scripts/execute_notebooks.py: refuses to record timings on a busy machine."""

import importlib.util
import os

import pytest
from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "execute_notebooks", REPO_ROOT / "scripts" / "execute_notebooks.py"
)
execute_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute_notebooks)


def test_busy_machine_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(os, "getloadavg", lambda: (8.5, 8.0, 7.0))
    nb = REPO_ROOT / "notebooks" / "00_start_here.ipynb"
    assert execute_notebooks.main([str(nb), "--max-load", "2"]) == 3
    err = capsys.readouterr().err
    assert "refusing to execute 00_start_here.ipynb" in err and "load average 8.5 >= 2" in err


def test_idle_machine_is_accepted(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    assert execute_notebooks.busy_reason(2.0) is None


def test_unknown_notebook_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        execute_notebooks.main(["notebooks/99_missing.ipynb"])
    assert "no such notebook: notebooks/99_missing.ipynb" in capsys.readouterr().err
