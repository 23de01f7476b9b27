"""course_utils.scaling: our loss scalers against torch.amp.GradScaler, step for step."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.scaling import DynamicLossScaler, StaticLossScaler, to_float32

FLOAT32_MAX = torch.finfo(torch.float32).max


class Pair:
    """torch.amp.GradScaler("cpu") and our DynamicLossScaler, driven through the same public
    API (step + update) on the same gradients, plus a third scaler driven by update(found_inf)."""

    def __init__(self, **kwargs):
        self.param = torch.nn.Parameter(torch.zeros(3))
        self.optimizer = torch.optim.SGD([self.param], lr=0.0)
        self.torch_scaler = torch.amp.GradScaler("cpu", **kwargs)
        self.torch_scaler.scale(torch.ones(()))  # GradScaler creates its scale tensor lazily
        self.ours = DynamicLossScaler(**kwargs)
        self.ours_by_update = DynamicLossScaler(**kwargs)

    def iteration(self, bad: str | None) -> None:
        """One iteration whose gradient holds an inf or a NaN if ``bad`` says so."""
        value = {None: 1.0, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}[bad]
        for scaler in (self.torch_scaler, self.ours):
            self.param.grad = torch.tensor([0.5, value, 2.0])
            scaler.step(self.optimizer)
            scaler.update()
        self.ours_by_update.update(found_inf=bad is not None)

    def assert_same(self, where: str) -> None:
        expected = self.torch_scaler.state_dict()
        for ours in (self.ours, self.ours_by_update):
            assert ours.scale == expected["scale"], where
            assert ours.growth_tracker == expected["_growth_tracker"], where


def run_and_compare(sequence, **kwargs) -> Pair:
    pair = Pair(**kwargs)
    pair.assert_same("start")
    for i, bad in enumerate(sequence):
        pair.iteration(bad)
        pair.assert_same(f"after iteration {i}: {bad}")
    return pair


# Scales anywhere in float32's range, including non-powers of two and the extremes.
init_scales = st.one_of(
    st.sampled_from([2.0**16, 1.0, 2.0**-149, 2.0**127, FLOAT32_MAX, 3e38, 1e-40, 0.1]),
    st.floats(min_value=1e-45, max_value=FLOAT32_MAX, allow_nan=False, allow_infinity=False),
).filter(lambda x: to_float32(x) > 0)
growth_factors = st.one_of(
    st.sampled_from([2.0, 1.5, 1.1, 1.0000001, 3.0, 1e10]),
    st.floats(min_value=1.0, max_value=1e3, exclude_min=True),
)
backoff_factors = st.one_of(
    st.sampled_from([0.5, 0.25, 0.3, 0.9999999, 1e-10]),
    st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True),
)
events = st.lists(st.sampled_from([None, None, None, "inf", "nan", "-inf"]), max_size=60)


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(
    sequence=events,
    init_scale=init_scales,
    growth_factor=growth_factors,
    backoff_factor=backoff_factors,
    growth_interval=st.integers(min_value=1, max_value=6),
)
def test_dynamic_scaler_matches_grad_scaler(
    sequence, init_scale, growth_factor, backoff_factor, growth_interval
):
    run_and_compare(
        sequence,
        init_scale=init_scale,
        growth_factor=growth_factor,
        backoff_factor=backoff_factor,
        growth_interval=growth_interval,
    )


@pytest.mark.parametrize(
    ("sequence", "kwargs", "final_scale"),
    [
        # growth stops at float32's top: the next doubling would be inf, so the scale stays
        ([None] * 5, dict(init_scale=2.0**126, growth_interval=1), 2.0**127),
        (
            [None] * 3,
            dict(init_scale=3.2e38, growth_factor=1.1, growth_interval=1),
            to_float32(3.2e38),
        ),
        # backoff walks down through the subnormals to exactly 0, and 0 never grows again
        (["inf"] * 40 + [None] * 4, dict(init_scale=2.0**-120, growth_interval=2), 0.0),
        # an overflow one step before growth resets the count: no growth at all
        (([None] * 2 + ["inf"]) * 4, dict(init_scale=2.0**10, growth_interval=3), 2.0**6),
        # factors that are not powers of two: every product rounded to float32 like the kernel
        (
            ["inf", None, None] * 10,
            dict(init_scale=1000.0, growth_factor=1.3, backoff_factor=0.7, growth_interval=2),
            None,
        ),
        # the defaults: a NaN just before the 2000th clean step, then 2000 clean steps
        ([None] * 1999 + ["nan"] + [None] * 2000, {}, 2.0**16),
    ],
)
def test_dynamic_scaler_edge_cases(sequence, kwargs, final_scale):
    pair = run_and_compare(sequence, **kwargs)
    if final_scale is not None:
        assert pair.ours.scale == final_scale


def test_scale_is_float32_rounded_like_grad_scaler():
    ours = DynamicLossScaler(init_scale=0.1)
    assert ours.scale == to_float32(0.1) != 0.1
    pair = run_and_compare([None], init_scale=0.1, growth_factor=1.1, growth_interval=1)
    assert pair.ours.scale == to_float32(to_float32(0.1) * 1.1)


def test_unscale_step_skip_and_update():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scaler = DynamicLossScaler(init_scale=8.0, growth_interval=1)

    scaler.scale_loss((param * 3.0).sum()).backward()  # d/dparam = 3, scaled: 24
    assert torch.equal(param.grad, torch.tensor([24.0, 24.0]))
    assert scaler.unscale_(optimizer) is False
    assert torch.equal(param.grad, torch.tensor([3.0, 3.0]))
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(optimizer)
    assert scaler.step(optimizer) is True
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(optimizer)
    scaler.update()
    assert torch.equal(param.detach(), torch.tensor([-2.0, -2.0]))
    assert scaler.scale == 16.0  # growth_interval=1: grows after one clean step

    param.grad = torch.tensor([math.inf, 1.0])
    assert scaler.step(optimizer) is False  # unscale_ inside step found the inf
    scaler.update()
    assert torch.equal(param.detach(), torch.tensor([-2.0, -2.0]))  # skipped: weights unchanged
    assert scaler.scale == 8.0


def test_static_scaler_keeps_its_scale_and_skips_overflow():
    param = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scaler = StaticLossScaler(1024.0)
    for grad, stepped in [(1024.0, True), (math.nan, False), (2048.0, True)]:
        param.grad = torch.tensor([grad])
        assert scaler.step(optimizer) is stepped
        scaler.update()
        assert scaler.scale == 1024.0
    assert param.item() == pytest.approx(1.0 - 1.0 - 2.0)


def test_unscale_accepts_parameters_and_finds_nan():
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    params[0].grad = torch.tensor([4.0, 8.0])
    params[1].grad = torch.tensor([math.nan, 4.0])
    assert StaticLossScaler(4.0).unscale_(params) is True
    assert torch.equal(params[0].grad, torch.tensor([1.0, 2.0]))


def test_unscaling_fp16_gradients_is_refused():
    param = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
    param.grad = torch.ones(2, dtype=torch.float16)
    with pytest.raises(ValueError, match="FP16 gradients"):
        StaticLossScaler().unscale_([param])


def test_update_needs_an_overflow_check():
    with pytest.raises(RuntimeError, match="unscale_"):
        DynamicLossScaler().update()


def test_state_dict_is_interchangeable_with_grad_scaler():
    ours = DynamicLossScaler(init_scale=2.0**10, growth_interval=7)
    for found_inf in [False, False, True, False]:
        ours.update(found_inf)
    theirs = torch.amp.GradScaler("cpu")
    theirs.load_state_dict(ours.state_dict())
    assert theirs.state_dict() == ours.state_dict()
    back = DynamicLossScaler()
    back.load_state_dict(theirs.state_dict())
    assert (back.scale, back.growth_tracker, back.growth_interval) == (2.0**9, 1, 7)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(init_scale=0.0), ValueError),
        (dict(init_scale=math.inf), ValueError),
        (dict(init_scale=1e39), ValueError),  # inf in float32
        (dict(init_scale="big"), TypeError),
        (dict(growth_factor=1.0), ValueError),
        (dict(backoff_factor=1.0), ValueError),
        (dict(backoff_factor=0.0), ValueError),
        (dict(growth_interval=0), ValueError),
        (dict(growth_interval=2.5), TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        DynamicLossScaler(**kwargs)


def test_unscale_rejects_non_parameters():
    with pytest.raises(TypeError, match="optimizer or an iterable"):
        StaticLossScaler().unscale_(3.0)


@pytest.mark.parametrize(
    "change",
    [
        {"scale": float("nan")},
        {"scale": float("inf")},
        {"scale": 0.0},
        {"scale": "big"},
        {"growth_interval": 0},
        {"growth_interval": 2.5},
        {"growth_factor": float("nan")},
        {"growth_factor": 0.5},
        {"backoff_factor": 1.5},
        {"backoff_factor": float("nan")},
        {"_growth_tracker": -1},
        {"_growth_tracker": 1.5},
    ],
    ids=repr,
)
def test_load_state_dict_rejects_bad_values_and_changes_nothing(change):
    scaler = DynamicLossScaler(init_scale=2.0**10, growth_interval=7)
    before = scaler.state_dict()
    with pytest.raises((TypeError, ValueError)):
        scaler.load_state_dict(before | change)
    assert scaler.state_dict() == before


def test_load_state_dict_names_missing_keys():
    scaler = DynamicLossScaler()
    with pytest.raises(ValueError, match="growth_interval"):
        scaler.load_state_dict({"scale": 2.0})
    with pytest.raises(TypeError, match="dict"):
        scaler.load_state_dict(None)
    with pytest.raises(ValueError, match="scale"):
        StaticLossScaler().load_state_dict({})
