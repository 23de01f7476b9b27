"""course_utils.bf16_updates: the stall rule, stochastic rounding, Kahan compensation, and the
optimizer hooks, against torch's own bf16 arithmetic."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import formats as F
from course_utils.bf16_updates import (
    SUM_METHODS,
    UPDATE_RULES,
    Bf16Weights,
    WeightChangeTracker,
    accumulate,
    compare_update_rules,
    kahan_add,
    lost_update_fraction,
    plot_accumulation,
    plot_update_runs,
    stochastic_round_bf16,
    sum_errors,
    sum_errors_table,
    update_ratio,
    update_stalls,
)

finite_fp32 = st.floats(
    min_value=-(2.0**100), max_value=2.0**100, allow_nan=False, allow_infinity=False, width=32
)


@settings(max_examples=300, deadline=None)
@given(w=finite_fp32, update=finite_fp32)
def test_update_stalls_is_torch_bf16_addition(w, update):
    w_bf16 = torch.tensor(w).to(torch.bfloat16)
    after = (w_bf16.float() + torch.tensor(update)).to(torch.bfloat16)
    # update_stalls adds in float64 then rounds (via fp32): the same unless fp32 rounding of the
    # sum decides a bf16 tie, which needs |update| < ulp(w) * 2^-16; skip those
    if abs(update) > 0 and abs(update) < F.ulp(float(w_bf16), "bf16") * 2**-15:
        return
    assert update_stalls(w, update) == bool(after == w_bf16)


def test_update_stalls_examples():
    assert update_stalls(1.0, 1e-3) and not update_stalls(1.0, 5e-3)
    assert not update_stalls(1.0, -3e-3)  # the gap below 1.0 is half the gap above
    assert not update_stalls(1.0, 1e-3, "fp32") and update_stalls(1.0, 1e-4, "fp16")


def test_stochastic_rounding_lands_on_a_neighbour_and_is_unbiased():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([1 + 2**-9, -(1 + 3 * 2**-10), 3e-39, 1234.5678], dtype=torch.float32)
    down = x.to(torch.bfloat16)  # nearest: one of the two neighbours
    draws = torch.stack([stochastic_round_bf16(x, g).float() for _ in range(4000)])
    for j in range(len(x)):
        neighbours = {F.next_down(x[j].item(), "bf16"), F.next_up(x[j].item(), "bf16")}
        assert set(draws[:, j].tolist()) <= neighbours | {down[j].item()}
    # E[SR(x)] = x: the mean is within 4 standard errors
    spread = draws.std(0) / 4000**0.5
    assert torch.all((draws.mean(0) - x).abs() <= 4 * spread + 1e-45)
    # probability of rounding up = distance from below / gap (1 + 2^-9: a quarter of the gap)
    assert 0.2 < (draws[:, 0] > 1).float().mean().item() < 0.3


def test_stochastic_rounding_keeps_exact_values_and_specials():
    g = torch.Generator().manual_seed(1)
    exact = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.3895313892515355e38])
    assert torch.equal(stochastic_round_bf16(exact, g).float(), exact)
    assert torch.equal(stochastic_round_bf16(exact, g).float().signbit(), exact.signbit())
    special = stochastic_round_bf16(torch.tensor([float("inf"), -float("inf"), float("nan")]), g)
    assert special[0] == float("inf") and special[1] == -float("inf") and special[2].isnan()
    assert stochastic_round_bf16(exact, g).dtype is torch.bfloat16
    with pytest.raises(TypeError, match="fp32"):
        stochastic_round_bf16(torch.ones(2, dtype=torch.float64))
    with pytest.raises(TypeError):
        stochastic_round_bf16([1.0])


def test_kahan_add_keeps_what_rounding_lost():
    w = torch.ones(3, dtype=torch.bfloat16)
    c = torch.zeros(3, dtype=torch.bfloat16)
    u = torch.tensor([1e-3, -1e-3, 1e-2])
    new_w, c = kahan_add(w, c, u)
    assert new_w.dtype is torch.bfloat16 and c.dtype is torch.bfloat16
    assert new_w.float().tolist()[:2] == [1.0, 1.0]  # lost to rounding this time...
    assert c.float()[:2].tolist() == pytest.approx([1e-3, -1e-3], rel=1e-2)  # ...but kept
    assert (new_w.float() + c.float() - 1 - u).abs().max() < 1e-4
    with pytest.raises(TypeError, match="bf16"):
        kahan_add(w.float(), c, u)


def test_accumulate_one_number():
    paths = {m: accumulate(1.0, 1e-3, 1000, m) for m in ("fp32", "nearest", "stochastic", "kahan")}
    assert all(len(p) == 1001 and p[0] == 1.0 for p in paths.values())
    assert paths["nearest"][-1] == 1.0  # every update lost
    assert paths["fp32"][-1] == pytest.approx(2.0, abs=1e-3)
    assert paths["kahan"][-1] == pytest.approx(2.0, abs=2**-7)
    assert paths["stochastic"][-1] == pytest.approx(2.0, abs=0.25)  # right on average
    assert torch.equal(accumulate(1.0, 1e-3, 50, "stochastic"), paths["stochastic"][:51])
    with pytest.raises(ValueError, match="method"):
        accumulate(1.0, 1e-3, 10, "bf16")
    with pytest.raises(ValueError, match="steps"):
        accumulate(1.0, 1e-3, -1, "fp32")


def _model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.sign(p) * 0.5)  # weights of size ~0.5: ulp 2^-8, stalls below 2^-9
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    return model, x, y


def _run(rounding, steps=60, lr=3e-4):
    model, x, y = _model_and_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    if rounding != "fp32":
        Bf16Weights(optimizer, rounding)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_bf16_weights_stall_and_remedies():
    runs = {r: _run(r) for r in ("fp32", "nearest", "stochastic", "kahan")}
    for rounding in ("nearest", "stochastic", "kahan"):
        for p in runs[rounding][0].parameters():  # the weights hold bf16 values
            assert torch.equal(p, p.to(torch.bfloat16).float())
    drop = {r: losses[0] - losses[-1] for r, (_, losses) in runs.items()}
    assert drop["fp32"] > 0
    assert drop["nearest"] < 0.2 * drop["fp32"]  # updates lost: learning stalls
    assert drop["kahan"] > 0.8 * drop["fp32"]
    assert drop["stochastic"] > 0.5 * drop["fp32"]


def test_bf16_weights_nearest_matches_torch_bf16_sgd_step():
    """One SGD step: fp32 update then rounding to bf16 == torch's own update of bf16 weights
    (torch's SGD adds -lr * grad in the parameter's dtype)."""
    model, x, y = _model_and_data()
    twin = [p.detach().to(torch.bfloat16).clone().requires_grad_() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    Bf16Weights(optimizer, "nearest")
    torch.nn.functional.mse_loss(model(x), y).backward()
    for p, t in zip(model.parameters(), twin, strict=True):
        t.grad = p.grad.to(torch.bfloat16)
        p.grad = t.grad.float()  # the same (bf16-valued) gradient for both
    optimizer.step()
    torch.optim.SGD(twin, lr=0.1).step()
    for p, t in zip(model.parameters(), twin, strict=True):
        same = (p == t.float()).float().mean().item()
        assert same > 0.97  # torch rounds -lr*grad to bf16 before adding: rare 1-ulp differences


def test_bf16_weights_bad_input_and_remove():
    with pytest.raises(TypeError, match="optimizer"):
        Bf16Weights("sgd")
    param = torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="fp32"):
        Bf16Weights(torch.optim.SGD([param], lr=0.1))
    weight = torch.nn.Parameter(torch.full((2,), 1.0 + 2**-12))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    with pytest.raises(ValueError, match="rounding"):
        Bf16Weights(optimizer, "truncate")
    hooks = Bf16Weights(optimizer, "nearest")
    assert weight.tolist() == [1.0, 1.0]  # rounded at once
    hooks.remove()
    weight.grad = torch.full((2,), -1e-3)
    optimizer.step()
    assert weight.tolist() == pytest.approx([1.001, 1.001])  # fp32 again


def test_weight_change_tracker():
    model, x, y = _model_and_data()

    class State:
        pass

    state = State()
    state.model = model
    tracker = WeightChangeTracker()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    torch.nn.functional.mse_loss(model(x), y).backward()
    model[2].bias.grad.zero_()  # one parameter element that will not move
    tracker.on_before_optimizer_step(state)
    optimizer.step()
    tracker.on_step_end(state)
    total = sum(p.numel() for p in model.parameters())
    assert tracker.fractions == [pytest.approx((total - 1) / total)]


def test_lost_update_fraction():
    w = torch.tensor([1.0, 0.5, 0.01, 1e-4])
    # half an ulp: 2^-8 at 1.0, 2^-9 at 0.5, 2^-15 at 0.01 (in [2^-7, 2^-6)), 2^-21 at 1e-4
    assert lost_update_fraction(w, 1e-3) == 0.5  # lost at 1.0 and 0.5, not at 0.01 or 1e-4
    assert lost_update_fraction([w, torch.ones(4)], 1e-3) == 0.75
    assert lost_update_fraction(w, 1e-3, "fp32") == 0.0
    assert lost_update_fraction(w, 1e-6) == 0.75
    with pytest.raises(TypeError, match="tensor"):
        lost_update_fraction([], 1e-3)


def test_update_ratio_values():
    assert update_ratio("fp16") == (2.0**-10, 2.0**-12, 2.0**-11)  # Micikevicius et al.: 2^-11
    assert update_ratio("bf16") == (2.0**-7, 2.0**-9, 2.0**-8)
    assert update_ratio(torch.float32).never_lost_above == 2.0**-24
    with pytest.raises(ValueError, match="no torch dtype"):
        update_ratio("tf32")
    with pytest.raises(ValueError, match="known formats"):
        update_ratio("fp12")


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(["fp16", "bf16"]),
    mantissa=st.floats(min_value=1.0, max_value=2.0, exclude_max=True),
    exponent=st.integers(min_value=-10, max_value=10),
    ratio=st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_update_ratio_is_torch_rounding(fmt, mantissa, exponent, ratio, sign):
    r = update_ratio(fmt)
    w = F.round_to([mantissa * 2.0**exponent], fmt).item()  # a normal weight of the format
    below = ratio * r.always_lost_below  # an update under the lower ratio: always lost
    assert update_stalls(w, sign * below * w, fmt)
    # over the upper ratio: never lost (by a margin that survives update_stalls' rounding via fp32,
    # which would turn a sum a hair past the midpoint into the tie itself)
    above = r.never_lost_above * (1 + max(ratio, 2.0**-8))
    assert not update_stalls(w, sign * above * w, fmt)


def test_plots_draw_every_line():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {m: accumulate(1.0, 1e-3, 50, m) for m in ["fp32", "nearest", "stochastic", "kahan"]}
    ax = plot_accumulation(paths)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0].startswith("fp32") and labels[1].startswith("bf16 nearest: ends at 1")
    assert len({line.get_marker() for line in ax.get_lines()}) == 4  # told apart by markers
    with pytest.raises(TypeError, match="paths"):
        plot_accumulation({})

    class History:
        losses = [3.0, 2.0, 1.0]

        @staticmethod
        def column(name):
            return [1, 2, 3]

    class Tracker:
        fractions = [0.9, 0.9, 0.9]

    runs = {"fp32 master weights": (History, Tracker), "bf16 nearest": (History, Tracker)}
    loss_ax, diff_ax, moved_ax = plot_update_runs(runs)
    assert len(diff_ax.get_lines()) == 2 and diff_ax.get_lines()[1].get_ydata().tolist() == [
        0,
        0,
        0,
    ]
    assert "fp32 master weights" in diff_ax.get_ylabel()
    with pytest.raises(ValueError, match="reference"):
        plot_update_runs(runs, reference="fp64")
    with pytest.raises(TypeError, match="runs"):
        plot_update_runs([])
    plt.close("all")


# ----------------------------------------------------------------------------- sums in bf16


def test_sum_errors_grow_with_bf16_adds_and_not_in_fp32():
    signal = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    errors = sum_errors(signal, counts=(4, 256), generator=torch.Generator().manual_seed(1))
    assert list(errors) == [4, 256] and all(
        list(row) == list(SUM_METHODS) for row in errors.values()
    )
    for row in errors.values():
        assert row["fp32"] < 1e-6 and row["once"] < 2**-8  # bf16's half-ulp, relative
        assert row["bf16"] == row["all-reduce"]  # .grad in bf16 is the same elementwise adds
    assert (
        errors[256]["bf16"] > 10 * errors[256]["once"] and errors[4]["bf16"] < errors[256]["bf16"]
    )


def test_sum_errors_table_and_bad_input():
    errors = sum_errors(torch.ones(50), counts=(2,), generator=torch.Generator().manual_seed(0))
    table = sum_errors_table(errors).splitlines()
    assert (
        table[0].split()
        == "steps or ranks fp32 .grad bf16 .grad bf16 all-reduce rounded once".split()
    )
    assert table[1].split()[0] == "2" and all(cell.endswith("%") for cell in table[1].split()[1:])
    with pytest.raises(TypeError, match="1-D floating-point tensor"):
        sum_errors(torch.ones(3, 3))
    with pytest.raises(ValueError, match="positive ints"):
        sum_errors(torch.ones(3), counts=(0,))
    with pytest.raises(TypeError, match="dict that sum_errors returns"):
        sum_errors_table({})
    with pytest.raises(ValueError, match="lacks"):
        sum_errors_table({2: {"fp32": 0.0}})


def test_compare_update_rules_runs_every_rule_from_the_same_weights():
    from tiny_models import tiny_gpt2

    model = tiny_gpt2()
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids.clone()}
    before = [p.detach().clone() for p in model.parameters()]
    runs = compare_update_rules(model, batch, steps=2, lr=1e-3, progress=False)
    assert list(runs) == list(UPDATE_RULES)
    for history, tracker in runs.values():
        assert len(history.losses) == 2 and len(tracker.fractions) == 2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert runs["fp32 master weights"][1].fractions[0] > runs["bf16 nearest"][1].fractions[0]
    with pytest.raises(TypeError, match="one dict of tensors"):
        compare_update_rules(model, [batch], progress=False)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        compare_update_rules(model, batch, lr=0, progress=False)


def test_share_changed_counts_changed_values_of_trainable_parameters():
    from course_utils.bf16_updates import share_changed

    net = torch.nn.Linear(2, 2, bias=False)
    before = [p.detach().clone() for p in net.parameters()]
    assert share_changed(before, net.parameters()) == 0.0
    with torch.no_grad():
        net.weight[0, 0] += 1.0
    assert share_changed(before, net.parameters()) == 0.25
