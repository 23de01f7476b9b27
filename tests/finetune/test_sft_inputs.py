"""Issue 13 (lesser): ``sft_config`` and ``lora_config`` refuse values that would train nothing
or diverge, and ``sft_config`` leaves no temporary folder behind."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import pytest

from course_utils import finetune

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lr", [math.nan, math.inf, -1.0, 0.0, "1e-3", True, None])
def test_sft_config_refuses_a_learning_rate_that_is_not_a_positive_finite_number(lr):
    with pytest.raises((ValueError, TypeError), match="learning_rate must be a positive"):
        finetune.sft_config(learning_rate=lr, output_dir="unused")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"r": 0}, "r must be a positive int"),
        ({"r": -8}, "r must be a positive int"),
        ({"r": 2.5}, "r must be a positive int"),
        ({"r": True}, "r must be a positive int"),
        ({"alpha": 0}, "alpha must be a positive"),
        ({"alpha": math.nan}, "alpha must be a positive"),
        ({"dropout": 1.0}, "dropout must be"),
        ({"dropout": -0.1}, "dropout must be"),
        ({"dropout": math.nan}, "dropout must be"),
        ({"target_modules": "c_attn"}, "a list of module names"),
        ({"target_modules": []}, "at least one module"),
        ({"target_modules": ["c_attn", 3]}, "a list of module names"),
    ],
)
def test_lora_config_refuses_bad_values(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        finetune.lora_config(**kwargs)


def test_lora_config_defaults_still_work():
    config = finetune.lora_config()
    assert config.r == 8 and config.lora_alpha == 16
    assert set(config.target_modules) == {"c_attn", "c_proj"}


def test_sft_config_leaves_no_temporary_folder_behind(tmp_path):
    """Two configs in one process get two different folders; none is left once it exits."""
    code = (
        "from course_utils import finetune\n"
        "a = finetune.sft_config().output_dir\n"
        "b = finetune.sft_config('bf16').output_dir\n"
        "import os\n"
        "assert a != b and os.path.isdir(a) and os.path.isdir(b), (a, b)\n"
        "print(a); print(b)\n"
    )
    env = dict(os.environ, TMPDIR=str(tmp_path), HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    folders = done.stdout.split()
    assert len(folders) == 2 and all(f.startswith(str(tmp_path)) for f in folders)
    assert not list(tmp_path.glob("course-sft-*")), "sft_config left temporary folders behind"


@pytest.mark.parametrize("seed", [-1, 2**32, "0", 1.5, True])
def test_sft_config_refuses_a_seed_that_set_seed_would_reject_at_train_time(seed):
    with pytest.raises(ValueError, match="seed must be an int"):
        finetune.sft_config(seed=seed, output_dir="unused")


@pytest.fixture(scope="module")
def loaded():
    from course_utils.models import load_model_and_tokenizer

    return load_model_and_tokenizer()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt": None}, TypeError, "prompt must be a string"),
        ({"prompt": ["Q?"]}, TypeError, "prompt must be a string"),
        ({"prompt": "Q?", "max_new_tokens": 0}, ValueError, "max_new_tokens must be a positive"),
        ({"prompt": "Q?", "max_new_tokens": 2.0}, ValueError, "max_new_tokens must be a positive"),
    ],
)
def test_generate_answer_bad_input_is_a_clear_error(loaded, kwargs, error, match):
    model, tokenizer = loaded
    with pytest.raises(error, match=match):
        finetune.generate_answer(model, tokenizer, **kwargs)
