"""course_utils.memory: bytes per parameter and activation bytes, on a tiny GPT-2 on CPU."""

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.memory import (
    BatchSweep,
    MemoryAnatomy,
    activation_bytes,
    measure_memory,
    plot_batch_sweep,
    sweep_batch_sizes,
)
from course_utils.units import format_bytes

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


# ------------------------------------------------------------------ memory against the batch size
def test_batch_sweep_arithmetic():
    # fixed 100 and 10 bytes per row (from 1 row) against fixed 120 and 6 bytes per row
    sweep = BatchSweep((1, 4), {"fp32": 100, "bf16": 120}, {"fp32": (10, 40), "bf16": (6, 24)})
    assert sweep.totals("fp32") == [110, 140] and sweep.totals("bf16") == [126, 144]
    assert sweep.per_sequence("fp32") == 10 and sweep.per_sequence("bf16") == 6
    assert sweep.estimate("fp32", 10) == 200 and sweep.estimate("bf16", 10) == 180
    assert sweep.limit_ratio("bf16", "fp32") == pytest.approx(0.6)
    # 120 + 6b < 100 + 10b  <=>  b > 5
    assert sweep.crossover("bf16", "fp32") == 6
    assert sweep.crossover("fp32", "bf16") == 1  # fp32 takes fewer bytes at small batches
    same_slope = BatchSweep((1, 2), {"a": 10, "b": 0}, {"a": (5, 10), "b": (5, 10)})
    assert same_slope.crossover("a", "b") is None  # "a" never takes fewer bytes than "b"
    with pytest.raises(ValueError, match="was not measured"):
        sweep.estimate("fp16", 2)


@pytest.fixture(scope="module")
def sweep(anatomies) -> BatchSweep:
    batches = {r: batch(rows=r) for r in (1, 4)}
    parts = {p: anatomies[p] for p in ("fp32", "bf16")}
    return sweep_batch_sizes(tiny_gpt2(), batches, parts, device="cpu")


def test_sweep_measures_the_tiny_model(sweep, anatomies):
    assert sweep.batch_sizes == (1, 4)
    amp = anatomies["bf16"]
    assert sweep.fixed["bf16"] == amp.model_state + amp.weight_copies
    assert sweep.fixed["fp32"] == anatomies["fp32"].model_state
    # the 2-row anatomy lies on the line through 1 and 4 rows (activations are per row)
    assert sweep.estimate("bf16", 2) == pytest.approx(amp.total, rel=0.01)
    assert 0.5 < sweep.limit_ratio("bf16", "fp32") < 0.8


def test_plot_batch_sweep(sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_batch_sweep(sweep, up_to=64, seq_len=16)
    left, right = fig.axes
    assert "16 tokens" in left.get_xlabel() and "fp32" in right.get_ylabel()
    assert len(right.lines) == 5  # ratio line, measured points, fp32, limit, the 50% claim
    plt.close(fig)
    with pytest.raises(ValueError, match="was not measured"):
        plot_batch_sweep(sweep, precision="fp16")


@pytest.mark.parametrize(
    ("batches", "parts", "error", "match"),
    [
        ({1: batch(rows=1)}, None, ValueError, "at least two"),
        ({1: batch(rows=1), 3: batch(rows=2)}, None, ValueError, "has 2 rows, not 3"),
        ({0: batch(rows=1), 1: batch(rows=1)}, None, ValueError, "positive ints"),
        (None, {}, ValueError, "anatomy must map"),
        (None, {"fp32": 1.0}, TypeError, "MemoryAnatomy"),
    ],
)
def test_sweep_bad_input(batches, parts, error, match, anatomies):
    batches = batches or {1: batch(rows=1), 2: batch(rows=2)}
    parts = {"fp32": anatomies["fp32"]} if parts is None else parts
    with pytest.raises(error, match=match):
        sweep_batch_sizes(tiny_gpt2(), batches, parts, device="cpu")
