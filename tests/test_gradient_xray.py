"""course_utils.gradient_xray: gradients collected per layer, range fractions against torch's
rounding, the zones, the plot; on a small random GPT-2."""

import math

import matplotlib
import pytest
import torch
from tiny_models import tiny_gpt2

from course_utils import formats as F
from course_utils.gradient_xray import (
    collect_gradients,
    format_zones,
    gpt2_layer_group,
    gradient_dtype_summary,
    gradient_dtypes,
    plot_gradient_xray,
    range_fractions,
    range_table,
    range_table_text,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def gpt2():
    model = tiny_gpt2(0, vocab_size=64, n_positions=16)
    ids = torch.randint(0, 64, (3, 2, 16), generator=torch.Generator().manual_seed(0))
    batches = [{"input_ids": x, "labels": x} for x in ids]
    return model, batches


def test_layer_groups():
    assert gpt2_layer_group("transformer.h.3.attn.c_attn.weight") == "block 3"
    assert gpt2_layer_group("transformer.h.12.mlp.c_fc") == "block 12"
    assert gpt2_layer_group("transformer.wte.weight") == "embeddings"
    assert gpt2_layer_group("transformer.wpe.weight") == "embeddings"
    assert gpt2_layer_group("transformer.ln_f.bias") == "final norm"
    assert gpt2_layer_group("lm_head") == "lm head"
    with pytest.raises(TypeError):
        gpt2_layer_group(3)


def test_collect_gradients_all_matches_a_plain_backward(gpt2):
    model, batches = gpt2
    sample = collect_gradients(model, batches, weights="all")
    assert list(sample.weights) == ["embeddings", "block 0", "block 1", "final norm"]
    assert list(sample.activations) == ["block 0", "block 1", "lm head"]  # the model's order
    n_params = sum(p.numel() for p in model.parameters())
    assert sample.weights_all().numel() == 3 * n_params  # one gradient per batch, not summed
    assert len(sample.losses) == 3
    # the first batch's block-0 gradients are those of an ordinary backward
    model.zero_grad()
    model(**batches[0]).loss.backward()
    block0 = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if ".h.0." in n])
    assert torch.equal(sample.weights["block 0"][: block0.numel()], block0)
    # activation gradients of the lm head: d loss / d logits, one per logit
    tokens = batches[0]["input_ids"].numel()
    assert sample.activations["lm head"].numel() == 3 * tokens * 64
    # the model is left clean: no grads, no hooks
    model.zero_grad(set_to_none=True)
    collect_gradients(model, batches[0], activations=False, weights="all")
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_collect_gradients_matmul_are_the_matmuls_own_gradients(gpt2):
    model, batches = gpt2
    sample = collect_gradients(model, batches[:1])  # weights="matmul", the default
    assert list(sample.weights) == ["block 0", "block 1", "lm head"]  # no LayerNorm, no wpe
    model.zero_grad()
    model(**batches[0]).loss.backward()
    # a block's matmul weights and biases, in module order: those of an ordinary backward
    block0 = torch.cat(
        [
            p.grad.flatten()
            for n, p in model.named_parameters()
            if ".h.0." in n and (".attn." in n or ".mlp." in n)
        ]
    )
    assert torch.allclose(sample.weights["block 0"], block0, rtol=1e-5, atol=1e-8)
    # the tied wte = lm_head.weight: only lm_head's piece; the rest is the embedding lookup's,
    # which is zero for tokens not in the batch
    wte = model.transformer.wte.weight
    assert model.lm_head.weight is wte
    piece = sample.weights["lm head"].view_as(wte)
    unseen = torch.ones(wte.shape[0], dtype=torch.bool)
    unseen[batches[0]["input_ids"].unique()] = False
    assert unseen.any() and torch.allclose(piece[unseen], wte.grad[unseen], atol=1e-9)
    assert not torch.allclose(piece[~unseen], wte.grad[~unseen], atol=1e-9)
    model.zero_grad(set_to_none=True)
    assert all(not m._forward_hooks for m in model.modules())


def test_gradient_dtypes_trace(gpt2):
    model, batches = gpt2
    for dtype, name in [(torch.float16, "float16"), (torch.bfloat16, "bfloat16")]:
        trace = gradient_dtypes(model, batches[0], dtype)
        assert trace["transformer.h.0.attn.c_attn.weight"] == (name,)
        assert trace["transformer.h.1.mlp.c_proj.bias"] == (name,)  # addmm casts the bias too
        assert trace["transformer.h.0.ln_1.weight"] == ("float32",)
        assert trace["transformer.wpe.weight"] == ("float32",)
        assert trace["transformer.wte.weight = lm_head.weight"] == (name, "float32")  # tied
        summary = gradient_dtype_summary(trace)
        assert summary[f"{name} + float32"] == ["wte.weight = lm_head.weight"]
        assert "h.*.ln_1.weight" in summary["float32"] and "ln_f.bias" in summary["float32"]
        assert len(summary[name]) == 8  # c_attn, c_proj, c_fc, mlp.c_proj: weight and bias
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="float16 or torch.bfloat16"):
        gradient_dtypes(model, batches[0], torch.float32)
    with pytest.raises(TypeError, match="nn.Module"):
        gradient_dtypes("model", batches[0])
    with pytest.raises(TypeError, match="dict"):
        gradient_dtypes(model, [batches[0]])
    with pytest.raises(ValueError, match="labels"):
        gradient_dtypes(model, {"input_ids": batches[0]["input_ids"]})
    with pytest.raises(TypeError, match="gradient_dtypes"):
        gradient_dtype_summary([("a", "float16")])


def test_collect_gradients_bad_input(gpt2):
    model, batches = gpt2
    with pytest.raises(TypeError, match="nn.Module"):
        collect_gradients("model", batches)
    with pytest.raises(TypeError, match="dicts"):
        collect_gradients(model, [])
    with pytest.raises(ValueError, match="labels"):
        collect_gradients(model, {"input_ids": batches[0]["input_ids"]})
    with pytest.raises(ValueError, match="matmul"):
        collect_gradients(model, batches, weights="biases")


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"])
def test_zones_are_where_torch_rounds(fmt):
    zones = {z.fate: z for z in format_zones(fmt)}
    spec = F.FORMATS[fmt]
    below_zero = 2 ** zones["zero"].high_log2
    assert F.round_to([below_zero], fmt).item() == 0  # the tie goes to even: 0
    assert F.round_to([below_zero * (1 + 2**-10)], fmt).item() == spec.min_subnormal
    assert 2 ** zones["normal"].low_log2 == spec.min_normal
    start = 2 ** zones["overflow"].low_log2
    assert F.round_to([start * (1 - 2**-20)], fmt).item() == spec.max
    assert F.round_to([start * 1.001], fmt).abs().item() in (math.inf, spec.max)


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"])
def test_range_fractions_against_rounding(fmt):
    spec = F.FORMATS[fmt]
    overflow = 2 ** format_zones(fmt)[-1].low_log2  # the smallest magnitude that overflows
    values = torch.tensor(
        [0.0, spec.min_subnormal / 4, spec.min_subnormal, spec.min_normal, 1.0, overflow]
    )
    out = range_fractions(values, fmt)
    assert out["count"] == 5  # the exact zero is left out
    assert (out["zero"], out["subnormal"], out["normal"], out["overflow"]) == (0.2, 0.2, 0.4, 0.2)
    # a loss scale moves the tiny ones up
    scaled = range_fractions(values, fmt, scale=4.0)
    assert scaled["zero"] == 0.0 and scaled["overflow"] == 0.2


def test_range_fractions_on_random_gradients():
    g = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 1e-6
    fp16 = range_fractions(g, "fp16")
    bf16 = range_fractions(g, "bf16")
    assert fp16["subnormal"] > 0.9 and bf16["normal"] == 1.0
    assert sum(fp16[k] for k in ("normal", "subnormal", "zero", "overflow")) == pytest.approx(1)
    rescued = range_fractions(g, "fp16", scale=2.0**16)
    assert rescued["normal"] > 0.99
    with pytest.raises(ValueError, match="positive"):
        range_fractions(g, "fp16", scale=0)
    with pytest.raises(TypeError):
        range_fractions([1.0], "fp16")
    with pytest.raises(ValueError, match="known formats"):
        range_fractions(g, "fp12")
    empty = range_fractions(torch.zeros(3), "fp16")
    assert empty["count"] == 0 and math.isnan(empty["zero"])


def test_range_table_text():
    g = torch.tensor([1e-9, 1e-6, 1e-3, 1.0])
    rows = range_table(g, ["fp16", "bf16"], [1.0, 2.0**16])
    assert [(r["format"], r["scale"]) for r in rows] == [
        ("fp16", 1.0), ("fp16", 65536.0), ("bf16", 1.0), ("bf16", 65536.0)
    ]  # fmt: skip
    text = range_table_text(rows)
    lines = text.splitlines()
    assert lines[0].split() == [
        "format",
        "loss",
        "scale",
        "normal",
        "subnormal",
        "zero",
        "overflow",
    ]
    assert lines[1].split() == ["fp16", "2^0", "50.00%", "25.00%", "25.00%", "0.00%"]
    assert lines[2].split() == [
        "fp16",
        "2^16",
        "75.00%",
        "0.00%",
        "0.00%",
        "25.00%",
    ]  # 1.0 x 2^16 overflows


def test_plot_gradient_xray(gpt2):
    import matplotlib.pyplot as plt

    model, batches = gpt2
    sample = collect_gradients(model, batches[:1])
    axes = plot_gradient_xray(sample, kinds=["activations", "weights"], fmt="fp16")
    assert len(axes) == 2  # one panel per kind of gradient, not one per format
    for ax in axes:
        labels = [p.get_label() for p in ax.patches if p.get_label()[:1] not in ("", "_")]
        assert labels == ["block 0", "block 1", "lm head"]
    assert axes[0].get_title(loc="left").startswith("activation gradients")
    assert axes[1].get_title(loc="left").startswith("matmul weight gradients")
    assert all("fp16" in ax.get_title(loc="left") for ax in axes)
    notes = " ".join(t.get_text() for t in axes[1].texts)
    assert "2^-134" in notes and "2^-126" in notes  # bf16's zones are off the axis, said where
    with pytest.raises(ValueError, match="kind"):
        plot_gradient_xray(sample, kinds=["biases"])
    with pytest.raises(ValueError, match="one axis per kind"):
        plot_gradient_xray(sample, kinds=["activations", "weights"], axes=[axes[0]])
    empty = collect_gradients(model, batches[:1], activations=False)
    with pytest.raises(ValueError, match="no activations"):
        plot_gradient_xray(empty)
    plt.close("all")
