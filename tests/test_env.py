"""course_utils.setup: seeding, device choice, the one-line report."""

import random

import numpy as np
import pytest
import torch

from course_utils import setup
from course_utils.env import in_notebook_kernel, pick_device, seed_everything


def test_setup_returns_device_and_one_line_report(capsys):
    env = setup(seed=0)
    assert isinstance(env.device, torch.device)
    assert env.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "\n" not in env.report and env.report.startswith("device: ")
    assert "recommended: " in env.report
    assert capsys.readouterr().out.strip() == env.report


def test_setup_quiet_prints_nothing(capsys):
    setup(seed=1, quiet=True)
    assert capsys.readouterr().out == ""


def test_same_seed_same_numbers_everywhere():
    setup(seed=123, quiet=True)
    a = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    setup(seed=123, quiet=True)
    b = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    setup(seed=124, quiet=True)
    assert not torch.equal(torch.rand(3), b[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None, True])
def test_bad_seed_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        seed_everything(bad)


def test_pick_device_explicit_and_env(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_pick_device_bad_names():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            pick_device("cuda")


def test_in_notebook_kernel_is_false_outside_jupyter(monkeypatch):
    import IPython

    assert in_notebook_kernel() is False  # pytest: no IPython shell at all
    shell = type("Shell", (), {"kernel": None})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert in_notebook_kernel() is False  # a terminal IPython: a shell without a kernel
    shell.kernel = object()
    assert in_notebook_kernel() is True  # a Jupyter kernel
