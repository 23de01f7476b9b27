"""course_utils.memory: bytes per parameter and activation bytes, on a tiny GPT-2 on CPU."""

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.memory import (
    MemoryAnatomy,
    activation_bytes,
    format_bytes,
    measure_memory,
)

pytestmark = pytest.mark.usefixtures("one_thread")

hf_logging.set_verbosity_error()


def batch(rows: int = 2, length: int = 16) -> dict:
    ids = torch.randint(0, 128, (rows, length), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


@pytest.fixture(scope="module")
def anatomies() -> dict[str, MemoryAnatomy]:
    model = tiny_gpt2()
    return {
        p: measure_memory(model, batch(), p, device="cpu") for p in ("fp32", "bf16", "bf16-pure")
    }


def test_bytes_per_parameter_of_the_model_state(anatomies):
    fp32, amp, pure = (anatomies[p].per_parameter() for p in ("fp32", "bf16", "bf16-pure"))
    assert (fp32["weights"], fp32["gradients"], fp32["optimizer_state"]) == (
        4.0,
        4.0,
        pytest.approx(8.0, abs=0.01),
    )
    assert (amp["weights"], amp["gradients"]) == (4.0, 4.0)  # master weights and grads stay fp32
    assert amp["optimizer_state"] == fp32["optimizer_state"]
    assert (pure["weights"], pure["gradients"]) == (2.0, 2.0)
    assert pure["optimizer_state"] == pytest.approx(4.0, abs=0.01)  # AdamW moments in bf16
    assert fp32["weight_copies"] == 0 and pure["weight_copies"] == 0


def test_autocast_adds_16_bit_weight_copies(anatomies):
    amp = anatomies["bf16"]
    model = tiny_gpt2()
    # every weight a matmul uses is cast: all but the position embeddings and layer norms
    cast = sum(p.numel() for n, p in model.named_parameters() if "ln_" not in n and "wpe" not in n)
    assert amp.weight_copies == 2 * cast
    assert 17.0 < amp.per_parameter()["model_state"] + amp.per_parameter()["weight_copies"] < 18.0


def test_activations_shrink_under_autocast_but_do_not_halve(anatomies):
    fp32, amp, pure = (anatomies[p].activations for p in ("fp32", "bf16", "bf16-pure"))
    assert 0.5 < amp / fp32 < 0.8  # the loss, layer norms and residual stream stay fp32
    assert pure < fp32


def test_activation_bytes_grow_in_proportion_to_batch_size():
    model = tiny_gpt2()
    sizes = [activation_bytes(model, batch(rows=r), "bf16", device="cpu") for r in (1, 2, 4)]
    assert sizes[1] == pytest.approx(2 * sizes[0], rel=0.01)  # all but a few bytes are per row
    assert sizes[2] == pytest.approx(4 * sizes[0], rel=0.01)
    assert activation_bytes(model, batch(), "fp32", device="cpu") == pytest.approx(
        measure_memory(model, batch(), "fp32", device="cpu").activations
    )


def test_measuring_leaves_the_model_alone():
    model = tiny_gpt2()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    measure_memory(model, batch(), "bf16-pure", device="cpu")
    activation_bytes(model, batch(), "bf16-pure", device="cpu")
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad is None and torch.equal(p, before[name])


def test_report_uses_stable_labels(anatomies):
    text = str(anatomies["bf16"])
    assert text.startswith("bf16 on cpu, batch (2, 16):")
    assert "weight_copies    mem:" in text and "bytes/param" in text and "cuda peak" not in text
    assert anatomies["bf16"].peak is None
    total = anatomies["bf16"]
    assert total.total == total.model_state + total.weight_copies + total.activations


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1.5 * 2**20, "1.5 MiB"),
        (1288490188, "1.2 GiB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(precision="fp16-emulated"), ValueError, "fp32's memory"),
        (dict(precision="int8"), ValueError, "unknown precision"),
        (dict(batch=[1, 2]), TypeError, "batch must be a dict"),
        (dict(model="gpt2"), TypeError, "nn.Module"),
        (dict(batch={"input_ids": torch.zeros(1, 4, dtype=torch.long)}), ValueError, "labels"),
    ],
)
def test_bad_input(kwargs, error, match):
    kwargs = {"model": tiny_gpt2(), "batch": batch(), "precision": "fp32"} | kwargs
    with pytest.raises(error, match=match):
        measure_memory(**kwargs, device="cpu")
    with pytest.raises(ValueError):
        format_bytes(-1)
