"""scripts/gpu_check.sh argument handling that runs on any machine (issue 13, lesser).

A dry run writes nothing (not even OUT_DIR); an empty step list is an error, not a pass.
"""

import os
import pathlib
import subprocess

import pytest

GPU_CHECK = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def run(*args):
    return subprocess.run(
        ["bash", str(GPU_CHECK), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHON": "false"},  # no step may really run
    )  # fmt: skip


def test_dry_run_does_not_create_the_output_folder(tmp_path):
    out = tmp_path / "not_yet" / "out"
    done = run(str(out), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"out {out}" in done.stdout and "[dry-run] env " in done.stdout
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("steps", [",", ",,", "", " "])
def test_an_empty_step_list_is_an_error(tmp_path, steps):
    done = run(str(tmp_path / "out"), "--steps", steps)
    assert done.returncode == 2
    assert "--steps needs at least one step" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--steps"], ["--steps="]])
def test_a_missing_step_list_is_an_error(tmp_path, args):
    done = run(str(tmp_path / "out"), *args)
    assert done.returncode == 2 and "--steps needs" in done.stderr


def test_an_empty_item_among_steps_is_ignored_but_an_unknown_one_is_not(tmp_path):
    done = run(str(tmp_path / "out"), "--dry-run", "--steps", "env,,bench")
    assert done.returncode == 0, done.stderr
    assert "[dry-run] env " in done.stdout and "[dry-run] bench " in done.stdout
    assert "[dry-run] unit " not in done.stdout
    bad = run(str(tmp_path / "out"), "--dry-run", "--steps", "env,bogus")
    assert bad.returncode == 2 and "unknown step 'bogus'" in bad.stderr


def test_help_prints_the_header_comment_only():
    done = run("--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout
    assert "set -uo pipefail" not in done.stdout and not done.stdout.startswith("#")


def test_the_distributed_step_runs_notebook_08s_worker_as_a_module(tmp_path):
    done = run(str(tmp_path / "out"), "--dry-run", "--steps", "distributed")
    assert done.returncode == 0, done.stderr
    assert "[dry-run] distributed " in done.stdout and "[dry-run] env " not in done.stdout
    body = GPU_CHECK.read_text()
    assert "-m course_utils.distributed.ddp" in body and "scripts/dist_" not in body
