"""Issue 13 item 9: every course entry point that takes a device resolves it through
``course_utils.env.pick_device`` at the call, with its one message, before any work.

CUDA is hidden with monkeypatch, so these run the same on a CPU-only machine and on a GPU one."""

from __future__ import annotations

import pytest
import torch

from course_utils import data, finetune, models
from course_utils.precision import FORMATS, precision_context

NO_CUDA = "asked for, but this machine has no CUDA GPU"
UNKNOWN = "unknown device 'gpu0'"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_model_and_tokenizer()[1]


def test_load_model_and_tokenizer_refuses_cuda_before_loading(no_cuda, monkeypatch):
    def fail(*args, **kwargs):  # nothing is loaded for a device that cannot be used
        raise AssertionError("loaded a model for a device that is not there")

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fail)
    with pytest.raises(RuntimeError, match=NO_CUDA):
        models.load_model_and_tokenizer(device="cuda")
    with pytest.raises(ValueError, match=UNKNOWN):
        models.load_model_and_tokenizer(device="gpu0")


def test_token_batches_refuses_cuda_at_the_call_not_the_first_batch(no_cuda, tokenizer):
    with pytest.raises(RuntimeError, match=NO_CUDA):
        data.token_batches(tokenizer, batch_size=2, seq_len=16, device="cuda")
    with pytest.raises(ValueError, match=UNKNOWN):
        data.token_batches(tokenizer, batch_size=2, seq_len=16, device="gpu0")
    batch = next(data.token_batches(tokenizer, batch_size=2, seq_len=16, device="cpu"))
    assert batch["input_ids"].device.type == "cpu"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "bf16-pure", "fp16-emulated"])
def test_precision_context_refuses_cuda_instead_of_running_fp32(no_cuda, precision):
    with pytest.raises(RuntimeError, match=NO_CUDA):
        precision_context(precision, "cuda")


def test_precision_context_takes_a_device_or_its_type():
    with precision_context("bf16", torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision_context("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match=UNKNOWN):
        precision_context("bf16", "gpu0")


def test_finetune_entry_points_refuse_cuda(no_cuda):
    with pytest.raises(RuntimeError, match=NO_CUDA):
        finetune.sft_config("bf16", device="cuda")
    with pytest.raises(RuntimeError, match=NO_CUDA):
        finetune.available_precisions("cuda")
    with pytest.raises(ValueError, match=UNKNOWN):
        finetune.available_precisions("gpu0")
    assert finetune.available_precisions("cpu") == FORMATS


def test_a_gpu_number_past_the_last_gpu_is_refused(monkeypatch):
    from course_utils.env import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(RuntimeError, match=r"has 1 CUDA GPU\(s\): use 'cuda:0' .. 'cuda:0'"):
        pick_device("cuda:3")


def test_gradient_xray_and_finetune_runs_resolve_their_device(no_cuda):
    from course_utils.finetune import runs as finetune_runs
    from course_utils.gradient_xray import collect_gradients

    model = models.load_model_and_tokenizer()[0]
    batch = {"input_ids": torch.zeros(1, 4, dtype=torch.long)}
    batch["labels"] = batch["input_ids"]
    with pytest.raises(ValueError, match=UNKNOWN):
        collect_gradients(model, batch, device="gpu0")
    with pytest.raises(RuntimeError, match=NO_CUDA):
        finetune_runs.run_finetune_loop("fp32", steps=1, device="cuda")
