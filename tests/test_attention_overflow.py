"""course_utils.attention_overflow on a small random GPT-2: logits scale with the queries, fp16
overflows to NaN where bf16 stays finite, and the model is left as it was."""

import copy

import pytest
import torch
from tiny_models import tiny_gpt2

from course_utils.attention_overflow import (
    ONE_KEY,
    attention_logit_max,
    forward_report,
    query_key_max,
    scaled_queries,
)


@pytest.fixture(scope="module")
def gpt2_and_batch():
    model = tiny_gpt2(0, vocab_size=64, n_positions=16)
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    return model, {"input_ids": ids, "labels": ids}


def test_logit_max_is_the_eager_matmul_and_scales_with_the_queries(gpt2_and_batch):
    model, batch = gpt2_and_batch
    base = attention_logit_max(model, batch)
    assert len(base) == 2 and all(v > 0 for v in base)
    # layer 0 by hand: q and k from c_attn of the embedded input
    with torch.no_grad():
        h = model.transformer.wte(batch["input_ids"]) + model.transformer.wpe(torch.arange(16))
        q, k, _ = model.transformer.h[0].attn.c_attn(model.transformer.h[0].ln_1(h)).split(32, -1)
        q, k = (t.unflatten(-1, (2, 16)).transpose(1, 2) for t in (q, k))
        assert (q @ k.transpose(-1, -2)).abs().max().item() == pytest.approx(base[0], rel=1e-5)
    before = {n: p.clone() for n, p in model.named_parameters()}
    with scaled_queries(model, 1000.0):
        scaled = attention_logit_max(model, batch)
    assert scaled[0] == pytest.approx(1000 * base[0], rel=1e-4)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # restored exactly


def test_fp16_overflows_where_bf16_does_not(gpt2_and_batch):
    model, batch = gpt2_and_batch
    factor = 4 * 65504 / max(attention_logit_max(model, batch))
    implementation = model.config._attn_implementation
    with scaled_queries(model, factor):
        fp32 = forward_report(model, batch, torch.float32)
        bf16 = forward_report(model, batch, torch.bfloat16)
        fp16 = forward_report(model, batch, torch.float16)
    assert fp32.logits_finite and fp32.attention_nan_fraction == 0 and fp32.loss < 100
    assert bf16.logits_finite and bf16.attention_nan_fraction == 0
    assert bf16.max_attention_probability == pytest.approx(1.0)  # softmax saturates
    assert not fp16.logits_finite and fp16.attention_nan_fraction > 0
    assert fp16.loss != fp16.loss  # NaN
    assert "loss nan" in str(fp16)
    assert model.config._attn_implementation == implementation
    unscaled = forward_report(model, batch, torch.float16)
    assert unscaled.logits_finite and unscaled.attention_nan_fraction == 0


def test_sdpa_and_the_upcast_path_stay_finite_where_eager_fp16_overflows(gpt2_and_batch):
    model, batch = gpt2_and_batch
    # this random model's keys are tiny: grow them too, so that q and k fit in fp16 and only
    # their products (the logits) overflow
    model = copy.deepcopy(model)
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight[:, 32:64] *= 100
            block.attn.c_attn.bias[32:64] *= 100
    factor = 4 * 65504 / max(attention_logit_max(model, batch))
    with scaled_queries(model, factor):
        assert max(query_key_max(model, batch)) < 65504 / 2
        eager = forward_report(model, batch, torch.float16, "eager")
        sdpa = forward_report(model, batch, torch.float16, "sdpa")
        upcast = forward_report(model, batch, torch.float16, "eager", reorder_and_upcast_attn=True)
    assert not eager.logits_finite and "bmm(float16)" in eager.attention_ops
    assert eager.implementation == "eager"
    assert sdpa.logits_finite and sdpa.loss == sdpa.loss
    assert sdpa.attention_nan_fraction is None and sdpa.max_attention_probability is None
    assert sdpa.one_key_fraction is None
    assert any("scaled_dot_product" in op for op in sdpa.attention_ops)
    assert "not returned" in str(sdpa) and "sdpa" in str(sdpa)
    assert upcast.logits_finite and upcast.attention_nan_fraction == 0
    assert "baddbmm(float32)" in upcast.attention_ops
    assert upcast.implementation == "eager + reorder_and_upcast_attn"
    # the model is left as it was
    assert model.config._attn_implementation == "sdpa"
    assert not any(block.attn.reorder_and_upcast_attn for block in model.transformer.h)


def test_one_key_fraction_counts_the_rows_whose_top_probability_passes_one_key(gpt2_and_batch):
    model, batch = gpt2_and_batch
    model = copy.deepcopy(model)
    model.set_attn_implementation("eager")
    model.eval()
    with torch.no_grad():
        attentions = model(**batch, output_attentions=True).attentions
    tops = torch.cat([a.amax(-1).flatten() for a in attentions])
    report = forward_report(model, batch, torch.float32)
    assert report.one_key_fraction == pytest.approx((tops > ONE_KEY).float().mean().item())
    assert f"p > {ONE_KEY}" in str(report)
    # growing the queries sharpens every softmax: more rows put (nearly) all weight on one key
    factor = 4 * 65504 / max(attention_logit_max(model, batch))
    with scaled_queries(model, factor):
        grown = forward_report(model, batch, torch.float32)
        fp16 = forward_report(model, batch, torch.float16)
    assert grown.one_key_fraction > report.one_key_fraction
    # rows with NaN are left out of the count, so it stays a fraction (or NaN if none is left)
    assert fp16.one_key_fraction != fp16.one_key_fraction or 0 <= fp16.one_key_fraction <= 1


def test_bad_input(gpt2_and_batch):
    model, batch = gpt2_and_batch
    with pytest.raises(ValueError, match="positive"):
        with scaled_queries(model, -1.0):
            pass
    with pytest.raises(TypeError, match="number"):
        with scaled_queries(model, "10"):
            pass
    with pytest.raises(TypeError, match="GPT-2"):
        attention_logit_max(torch.nn.Linear(2, 2), batch)
    with pytest.raises(TypeError, match="GPT-2"):
        query_key_max(torch.nn.Linear(2, 2), batch)
    with pytest.raises(ValueError, match="dtype"):
        forward_report(model, batch, torch.float64)
    with pytest.raises(TypeError, match="input_ids"):
        forward_report(model, {"x": 1})
    with pytest.raises(ValueError, match="attn_implementation"):
        forward_report(model, batch, torch.float16, "flash")
    with pytest.raises(ValueError, match="eager-only"):
        forward_report(model, batch, torch.float16, "sdpa", reorder_and_upcast_attn=True)
    with pytest.raises(TypeError, match="bool"):
        forward_report(model, batch, torch.float16, "eager", reorder_and_upcast_attn="yes")
